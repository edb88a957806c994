"""kubespray's variables drive cluster up when no --config is given; the file wins when given."""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import pytest
import yaml
from test_cluster_up_flow import Connector

from bootstrap.errors import UserError
from bootstrap.flows import cluster_up as cu
from bootstrap.pki.certs import cert_sans, read_cert_file

INI = """\
cp1 ansible_host=10.9.0.1 ip=10.9.0.1
cp2 ansible_host=10.9.0.2 ip=10.9.0.2
cp3 ansible_host=10.9.0.3 ip=10.9.0.3
w1 ansible_host=10.9.0.4 ip=10.9.0.4

[kube_control_plane]
cp1
cp2
cp3

[etcd]
cp1
cp2
cp3

[kube_node]
w1
"""

K8S_CLUSTER = """\
kube_config_dir: /etc/kubernetes
kube_cert_dir: "{{ kube_config_dir }}/ssl"
kube_network_plugin: cni
kube_service_addresses: 10.233.0.0/18
kube_pods_subnet: 10.233.64.0/18
kube_network_node_prefix: 24
cluster_name: prod.example
supplementary_addresses_in_ssl_keys: [203.0.113.7, api.prod.example]
etcd_data_dir: /data/etcd
"""


def write_inventory(root: Path, extra: str = "") -> Path:
    """The inventory dir; ``extra`` lines replace the sample's lines of the same names."""
    (root / "group_vars" / "k8s_cluster").mkdir(parents=True)
    names = {line.split(":")[0] for line in extra.splitlines()}
    lines = [ln for ln in K8S_CLUSTER.splitlines(True) if ln.split(":")[0] not in names]
    (root / "group_vars" / "k8s_cluster" / "k8s-cluster.yml").write_text("".join(lines) + extra)
    (root / "inventory.ini").write_text(INI)
    return root / "inventory.ini"


def apiserver_sans(state: Path, host: str = "cp1") -> set[str]:
    dns, ips = cert_sans(read_cert_file(state / "pki" / "nodes" / host / "apiserver.crt"))
    return set(dns) | {str(ip) for ip in ips}


def test_kubespray_variables_are_the_cluster_configuration(tmp_path):
    inv = write_inventory(tmp_path)
    connect = Connector()
    result = cu.cluster_up(str(inv), tags="pki,control-plane", connect=connect)
    assert not result.recap.failed
    sans = apiserver_sans(tmp_path / "artifacts")
    # kube_service_addresses: the kubernetes Service IP; cluster_name is the DNS domain.
    assert {"10.233.0.1", "kubernetes.default.svc.prod.example", "203.0.113.7",
            "api.prod.example"} <= sans
    assert "10.96.0.1" not in sans
    # What the hosts' `bootstrap init` gets.
    cfg = yaml.safe_load((tmp_path / "artifacts" / "kubeadm-config.yaml").read_text())
    assert cfg["clusterName"] == "prod.example"
    assert cfg["networking"] == {"serviceSubnet": "10.233.0.0/18",
                                 "podSubnet": "10.233.64.0/18", "dnsDomain": "prod.example"}
    assert {"203.0.113.7", "api.prod.example"} <= set(cfg["apiServer"]["certSANs"])
    assert cfg["etcd"]["local"]["dataDir"] == "/data/etcd"
    # kube_cert_dir is the kubespray name for kubeadm's pki dir: linked on every host.
    for host in ("cp1", "w1"):
        assert any("/etc/kubernetes/ssl" in cmd for cmd in connect.conns[host].commands), host


def test_etcd_data_dir_reaches_the_etcd_stage(tmp_path):
    connect = Connector()
    cu.cluster_up(str(write_inventory(tmp_path)), tags="etcd", dry_run=True, connect=connect)
    assert any("/data/etcd/member" in cmd for cmd in connect.conns["cp1"].commands)


def test_the_config_file_wins_over_the_inventory_with_a_warning(tmp_path):
    inv = write_inventory(tmp_path)
    config = tmp_path / "cluster.yaml"
    config.write_text(textwrap.dedent("""\
        apiVersion: kubeadm.k8s.io/v1beta4
        kind: ClusterConfiguration
        networking:
          serviceSubnet: 10.96.0.0/16
    """))
    result = cu.cluster_up(str(inv), config_path=str(config), tags="pki", connect=Connector())
    sans = apiserver_sans(tmp_path / "artifacts")
    assert "10.96.0.1" in sans and "10.233.0.1" not in sans
    assert "kubernetes.default.svc.prod.example" in sans  # the rest still from the inventory
    assert any("networking.serviceSubnet" in w and "kube_service_addresses" in w
               for w in result.warnings), result.warnings


@pytest.mark.parametrize("extra, needle", [
    ("kube_network_plugin: calico\n", "kube_network_plugin: 'calico' is not supported"),
    ("kube_config_dir: /etc/kubernetes/conf\n", "'/etc/kubernetes/conf' is inside /etc/kubernetes"),
])
def test_settings_cluster_up_cannot_apply_are_refused_before_any_host(tmp_path, extra, needle):
    inv = write_inventory(tmp_path, extra)
    connect = Connector()
    with pytest.raises(UserError) as ei:
        cu.cluster_up(str(inv), tags="pki", connect=connect)
    line = ei.value.line()
    assert needle in line and "k8s-cluster.yml" in line, line
    assert ei.value.exit_code == 2 and connect.conns == {}
    assert not (tmp_path / "artifacts").exists()


def test_without_kubespray_variables_the_defaults_hold(tmp_path):
    (tmp_path / "inventory.ini").write_text(INI)
    cu.cluster_up(str(tmp_path / "inventory.ini"), tags="pki", connect=Connector())
    sans = apiserver_sans(tmp_path / "artifacts")
    assert {"10.96.0.1", "kubernetes.default.svc.cluster.local"} <= sans
    assert ipaddress.ip_address("10.96.0.1")


def test_kube_config_dir_elsewhere_is_a_link_to_etc_kubernetes(tmp_path):
    inv = write_inventory(tmp_path, "kube_config_dir: /srv/kube\n")
    connect = Connector()
    cu.cluster_up(str(inv), tags="kube-config-dir", connect=connect)
    for conn in connect.conns.values():
        assert any("ln -sfn -- /etc/kubernetes /srv/kube" in c for c in conn.commands), conn.commands


def test_kube_config_dir_at_the_default_adds_no_link(tmp_path):
    inv = write_inventory(tmp_path)
    connect = Connector()
    cu.cluster_up(str(inv), tags="kube-config-dir", connect=connect)
    for conn in connect.conns.values():
        assert not any("ln -sfn -- /etc/kubernetes " in c for c in conn.commands)
