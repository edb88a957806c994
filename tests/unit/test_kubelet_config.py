"""Kubelet flags and KubeletConfiguration: upstream names and defaults, one-line errors."""

from __future__ import annotations

import pytest
import yaml

from bootstrap.agents.kubelet import main
from bootstrap.agents.kubelet.config import load
from bootstrap.errors import UserError


def write(tmp_path, doc) -> str:
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump(doc) if isinstance(doc, dict) else doc)
    return str(p)


BASE = {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration"}


def test_defaults():
    cfg = load([])
    assert cfg.runtime_endpoint == "unix:///run/containerd/containerd.sock"
    assert cfg.root_dir == "/var/lib/kubelet" and cfg.cert_dir == "/var/lib/kubelet/pki"
    assert (cfg.port, cfg.read_only_port, cfg.max_pods) == (10250, 0, 110)
    assert cfg.node_status_update_frequency == 10 and cfg.node_status_report_frequency == 300
    assert cfg.node_lease_duration_seconds == 40 and cfg.sync_frequency == 60
    assert cfg.cgroup_driver == "cgroupfs" and cfg.authorization_mode == "Webhook"


def test_file_fields_and_flag_overrides(tmp_path):
    path = write(tmp_path, {**BASE, "clusterDNS": ["10.96.0.10"], "clusterDomain": "k.local",
                            "staticPodPath": "/etc/kubernetes/manifests", "cgroupDriver": "systemd",
                            "authentication": {"x509": {"clientCAFile": "/ca.crt"},
                                               "webhook": {"enabled": False},
                                               "anonymous": {"enabled": True}},
                            "authorization": {"mode": "AlwaysAllow"}, "maxPods": 30,
                            "podCIDR": "10.244.3.0/24", "syncFrequency": "1m30s",
                            "nodeStatusUpdateFrequency": "5s", "serverTLSBootstrap": True,
                            "evictionHard": {"memory.available": "200Mi"}})
    cfg = load(["--config", path, "--node-ip", "10.0.0.9", "--hostname-override", "Node-A",
                "--root-dir", "/srv/kubelet"])
    assert cfg.cluster_dns == ["10.96.0.10"] and cfg.cluster_domain == "k.local"
    assert cfg.cgroup_driver == "systemd" and cfg.client_ca_file == "/ca.crt"
    assert not cfg.webhook_authn and cfg.anonymous_auth and cfg.authorization_mode == "AlwaysAllow"
    assert cfg.max_pods == 30 and cfg.pod_cidr == "10.244.3.0/24"
    assert cfg.sync_frequency == 90 and cfg.node_status_update_frequency == 5
    assert cfg.server_tls_bootstrap and cfg.eviction_hard == {"memory.available": "200Mi"}
    assert cfg.node_name == "node-a" and cfg.cert_dir == "/srv/kubelet/pki"


@pytest.mark.parametrize("doc, match", [
    ({**BASE, "clusterDNS": ["not-an-ip"]}, "clusterDNS: 'not-an-ip' is not an IP address"),
    ({**BASE, "cgroupDriver": "docker"}, "cgroupDriver must be cgroupfs or systemd"),
    ({**BASE, "syncFrequency": "10d"}, "syncFrequency: invalid duration"),
    ({**BASE, "maxPods": 0}, "maxPods: expected an integer >= 1"),
    ({**BASE, "podCIDR": "10.244.3.1/24"}, "invalid CIDR"),
    ({**BASE, "authorization": {"mode": "RBAC"}}, "authorization.mode must be Webhook"),
    ({**BASE, "evictionHard": {"memory.free": "1Mi"}}, "unsupported eviction signal"),
    ({**BASE, "bogusField": 1}, 'unknown field "bogusField"'),
    ({**BASE, "readOnlyPort": 10255}, "readOnlyPort 10255 is not supported"),
    ({"apiVersion": "v1", "kind": "KubeletConfiguration"}, "expected apiVersion"),
    ("{{not yaml", "not valid YAML"),
])
def test_bad_config_is_one_clear_error(tmp_path, doc, match):
    with pytest.raises(UserError, match=match):
        load(["--config", write(tmp_path, doc)])


def test_bad_flags():
    with pytest.raises(UserError, match="--node-ip"):
        load(["--node-ip", "300.1.1.1"])
    with pytest.raises(UserError, match="--container-runtime-endpoint"):
        load(["--container-runtime-endpoint", "tcp://1.2.3.4:1"])
    with pytest.raises(UserError, match="--node-labels"):
        load(["--node-labels", "novalue"])
    assert load(["--node-labels", "a=b,c=d"]).node_labels == {"a": "b", "c": "d"}


def test_main_prints_one_line_and_exits_2(tmp_path, capsys):
    rc = main(["--config", str(tmp_path / "missing.yaml")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "cannot read the kubelet config file" in err
    assert "Traceback" not in err


def test_main_without_credentials_exits_2(tmp_path, capsys):
    rc = main(["--kubeconfig", str(tmp_path / "nope.conf")])
    err = capsys.readouterr().err
    assert rc == 2 and "no usable kubeconfig" in err and err.count("\n") == 1
