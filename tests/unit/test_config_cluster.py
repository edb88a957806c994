"""Cluster configuration: defaults, round trip, every validation rule."""

from __future__ import annotations

import textwrap
from datetime import timedelta

import pytest
import yaml

from bootstrap.config.cluster import (
    default_config,
    dump_cluster_config,
    load_cluster_config,
    parse_cluster_config,
)
from bootstrap.config.duration import format_duration, parse_duration
from bootstrap.config.model import ClusterConfig, LocalEtcd
from bootstrap.errors import UserError

HEAD = "apiVersion: bootstrap.dev/v1alpha1\nkind: ClusterConfiguration\n"


def parse(body: str) -> ClusterConfig:
    return parse_cluster_config(HEAD + textwrap.dedent(body), "c.yaml")


def error(body: str, *, head: str = HEAD) -> str:
    with pytest.raises(UserError) as exc:
        parse_cluster_config(head + textwrap.dedent(body), "c.yaml")
    line = exc.value.line()
    assert "\n" not in line
    assert line.startswith("c.yaml")
    return line


def test_defaults_match_kubeadm_and_the_issue():
    cfg = default_config()
    assert cfg == load_cluster_config(None)
    assert cfg.cluster_name == "kubernetes"
    assert cfg.networking.service_subnet == "10.96.0.0/12"
    assert cfg.networking.dns_domain == "cluster.local"
    assert cfg.networking.api_service_ip == "10.96.0.1"
    assert cfg.etcd.local == LocalEtcd() and cfg.etcd.external is None
    assert cfg.certificate_validity_period == timedelta(days=365)
    assert cfg.ca_certificate_validity_period == timedelta(days=3650)
    assert cfg.encryption_algorithm == "ECDSA-P256"


def test_dump_uses_v1beta4_names_and_round_trips(tmp_path):
    text = dump_cluster_config(default_config())
    doc = yaml.safe_load(text)
    assert doc["apiVersion"] == "bootstrap.dev/v1alpha1"
    assert doc["kind"] == "ClusterConfiguration"
    assert doc["networking"] == {"podSubnet": "10.244.0.0/16", "serviceSubnet": "10.96.0.0/12",
                                 "dnsDomain": "cluster.local"}
    assert doc["certificateValidityPeriod"] == "8760h0m0s"
    assert doc["caCertificateValidityPeriod"] == "87600h0m0s"
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert load_cluster_config(path) == default_config()
    assert load_cluster_config(str(path)).source == str(path)


def test_full_file_round_trips_with_every_field(tmp_path):
    cfg = parse("""
        clusterName: prod
        kubernetesVersion: v1.32.0
        controlPlaneEndpoint: "lb.example.com:6443"
        networking:
          podSubnet: 10.32.0.0/12,fd00:10:32::/56
          serviceSubnet: 10.16.0.0/16,fd00:10:96::/108
          dnsDomain: prod.internal
        etcd:
          external:
            endpoints: [https://10.0.0.1:2379, "https://[2001:db8::1]:2379"]
            caFile: /etc/kubernetes/pki/etcd/ca.crt
            certFile: /etc/kubernetes/pki/apiserver-etcd-client.crt
            keyFile: /etc/kubernetes/pki/apiserver-etcd-client.key
        apiServer:
          certSANs: [lb.example.com, "*.apps.example.com", 10.0.0.100, "2001:db8::100"]
          extraArgs:
            - {name: audit-log-path, value: /var/log/audit.log}
            - {name: anonymous-auth, value: "false"}
        certificateValidityPeriod: 2160h
        caCertificateValidityPeriod: 43800h0m0s
        encryptionAlgorithm: RSA-3072
    """)
    assert cfg.control_plane_endpoint == "lb.example.com:6443"
    assert [str(n) for n in cfg.networking.pod_networks] == ["10.32.0.0/12", "fd00:10:32::/56"]
    assert cfg.networking.api_service_ip == "10.16.0.1"
    assert cfg.etcd.local is None
    assert cfg.etcd.external.endpoints == ("https://10.0.0.1:2379", "https://[2001:db8::1]:2379")
    assert cfg.api_server.extra_args == {"audit-log-path": "/var/log/audit.log",
                                         "anonymous-auth": "false"}
    assert cfg.certificate_validity_period == timedelta(days=90)
    assert cfg.ca_certificate_validity_period == timedelta(days=1825)
    path = tmp_path / "again.yaml"
    path.write_text(dump_cluster_config(cfg))
    again = load_cluster_config(path)
    assert again == cfg


def test_extra_args_map_form_is_read_and_dumped_as_v1beta4_list():
    cfg = parse("""
        etcd:
          local:
            dataDir: /data/etcd
            extraArgs: {quota-backend-bytes: "8589934592"}
    """)
    assert cfg.etcd.local == LocalEtcd("/data/etcd", {"quota-backend-bytes": "8589934592"})
    doc = yaml.safe_load(dump_cluster_config(cfg))
    assert doc["etcd"]["local"]["extraArgs"] == [{"name": "quota-backend-bytes",
                                                  "value": "8589934592"}]


def test_partial_file_keeps_defaults_for_the_rest():
    cfg = parse("networking: {podSubnet: 192.168.0.0/16}\n")
    assert cfg.networking.pod_subnet == "192.168.0.0/16"
    assert cfg.networking.service_subnet == "10.96.0.0/12"
    assert cfg.etcd == default_config().etcd


def test_other_documents_are_checked_not_ignored():
    # Component configs are accepted now (bootstrap.config.kubeadm), but only
    # under their own apiVersion; unknown kinds are still refused.
    text = HEAD + "clusterName: two\n---\napiVersion: x/v1\nkind: KubeletConfiguration\n"
    with pytest.raises(UserError, match=r"c.yaml:5: KubeletConfiguration apiVersion is 'x/v1' "
                                        r"\(set apiVersion: kubelet.config.k8s.io/v1beta1\)"):
        parse_cluster_config(text, "c.yaml")
    text = HEAD + "---\napiVersion: example.com/v1\nkind: Widget\n"
    with pytest.raises(UserError, match=r"c.yaml:4: apiVersion: is 'example.com/v1'"):
        parse_cluster_config(text, "c.yaml")
    with pytest.raises(UserError, match="2 ClusterConfiguration documents"):
        parse_cluster_config(HEAD + "---\n" + HEAD, "c.yaml")
    text = HEAD + "clusterName: one\n---\n"
    assert parse_cluster_config(text, "c.yaml").cluster_name == "one"


@pytest.mark.parametrize("body,expected", [
    ("networking:\n  podSubnet: 10.244.0/16\n",
     "c.yaml:4: networking.podSubnet: '10.244.0/16' is not a valid CIDR"),
    ("networking:\n  podSubnet: 10.244.1.0/16\n", "did you mean 10.244.0.0/16?"),
    ("networking:\n  podSubnet: 10.96.0.0/16\n",
     "networking.serviceSubnet: 10.96.0.0/12 overlaps networking.podSubnet 10.96.0.0/16"),
    ("networking:\n  podSubnet: 10.1.0.0/16,10.2.0.0/16\n", "at most one IPv4 and one IPv6"),
    ("networking:\n  podSubnet: 10.1.0.0/25\n", "too small to give each node a /24"),
    ("networking:\n  serviceSubnet: 10.0.0.0/8\n", "networking.serviceSubnet: 10.0.0.0/8 is too large"),
    ("networking:\n  dnsDomain: Cluster_Local\n",
     "networking.dnsDomain: 'Cluster_Local' is not a DNS domain"),
    ("networking:\n  pod_subnet: 10.0.0.0/16\n",
     "networking.pod_subnet: unknown field (did you mean 'podSubnet'?)"),
    ("networking: [a]\n", "networking: must be a mapping, got a list"),
    ("clusterNmae: x\n", "clusterNmae: unknown field (did you mean 'clusterName'?)"),
    ("imageRepository: registry.k8s.io\n", "imageRepository: is a kubeadm field bootstrap"),
    ("clusterName: 'has space'\n", "clusterName: 'has space' is not a valid name"),
    ("kubernetesVersion: 1.32\n", "kubernetesVersion: must be a string, got a number 1.32"),
    ("kubernetesVersion: latest\n", "kubernetesVersion: 'latest' is not a version"),
    ("controlPlaneEndpoint: 'lb:99999'\n", "controlPlaneEndpoint: 99999 is not a port number"),
    ("controlPlaneEndpoint: 'lb example'\n", "controlPlaneEndpoint: 'lb example' is neither"),
    ("controlPlaneEndpoint: 'fe80::1:6443x'\n", "controlPlaneEndpoint:"),
    ("etcd:\n  local: {}\n  external: {endpoints: [https://a:2379]}\n",
     "etcd: both etcd.local and etcd.external are set"),
    ("etcd:\n  external: {endpoints: [https://a:2379], caFile: /a, certFile: /b}\n",
     "etcd.external.keyFile: is required"),
    ("etcd:\n  external: {endpoints: https://a:2379, caFile: /a, certFile: /b, keyFile: /c}\n",
     "etcd.external.endpoints: must be a list of URLs"),
    ("etcd:\n  external: {endpoints: [http://a:2379], caFile: /a, certFile: /b, keyFile: /c}\n",
     "etcd.external.endpoints[0]: 'http://a:2379' is not an https:// URL"),
    ("etcd:\n  external: {endpoints: [https://a:2379], caFile: a.crt, certFile: /b, keyFile: /c}\n",
     "etcd.external.caFile: 'a.crt' is not an absolute path"),
    ("etcd:\n  external: {endpoints: [https://a:2379], cafile: /a, certFile: /b, keyFile: /c}\n",
     "etcd.external.cafile: unknown field (did you mean 'caFile'?)"),
    ("etcd:\n  local: {dataDir: var/lib/etcd}\n", "etcd.local.dataDir: 'var/lib/etcd' is not an"),
    ("etcd:\n  local:\n    extraArgs: [{name: snapshot-count, value: 10000}]\n",
     "etcd.local.extraArgs.snapshot-count: must be a string, got a number 10000 (quote the value)"),
    ("apiServer:\n  extraArgs: [{name: --v, value: '2'}]\n", "'--v' is not a flag name"),
    ("apiServer:\n  extraArgs: [{flag: v, value: '2'}]\n",
     "apiServer.extraArgs[0]: must have exactly the keys name and value"),
    ("apiServer:\n  extraArgs:\n  - {name: v, value: '2'}\n  - {name: v, value: '3'}\n",
     "apiServer.extraArgs.v: is given twice"),
    ("apiServer:\n  certSANs: lb.example.com\n", "apiServer.certSANs: must be a list"),
    ("apiServer:\n  certSANs: ['bad name!']\n",
     "apiServer.certSANs[0]: 'bad name!' is neither an IP address nor a DNS name"),
    ("certificateValidityPeriod: 365d\n", "Go durations have no days: 365d is 8760h"),
    ("certificateValidityPeriod: 8760\n", "certificateValidityPeriod: must be a Go duration"),
    ("certificateValidityPeriod: '-1h'\n", "certificateValidityPeriod: '-1h' must be positive"),
    ("certificateValidityPeriod: 0s\n", "must be positive"),
    ("certificateValidityPeriod: 90000h\n",
     "certificateValidityPeriod: 90000h0m0s is longer than caCertificateValidityPeriod 87600h0m0s"),
    ("caCertificateValidityPeriod: ten years\n", "caCertificateValidityPeriod: 'ten years' is not"),
    ("encryptionAlgorithm: RSA\n", "encryptionAlgorithm: 'RSA' is not supported (use one of"),
])
def test_invalid_values_give_one_line_with_file_field_and_fix(body, expected):
    assert expected in error(body)


@pytest.mark.parametrize("head,expected", [
    ("kind: ClusterConfiguration\n", "c.yaml:1: apiVersion: is missing (set apiVersion: "),
    ("apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterConfiguration\n",
     "c.yaml:1: apiVersion: is 'kubeadm.k8s.io/v1beta2' (set apiVersion: bootstrap.dev/v1alpha1, "
     "kubeadm.k8s.io/v1beta4 or kubeadm.k8s.io/v1beta3)"),
    ("apiVersion: bootstrap.dev/v1alpha1\nkind: InitConfiguration\n",
     "kind: is 'InitConfiguration' (set kind: ClusterConfiguration)"),
    ("- a\n- b\n", "expected a mapping with apiVersion"),
    ("# only a comment\n", "the file is empty"),
])
def test_document_shape_errors(head, expected):
    assert expected in error("", head=head)


def test_yaml_syntax_error_points_at_line_and_column():
    line = error("networking:\n  podSubnet: [10.0.0.0/16\n")
    assert line.startswith("c.yaml:5:1: invalid YAML")


def test_duplicate_keys_are_errors_not_silently_last_wins():
    line = error("clusterName: a\nclusterName: b\n")
    assert line.startswith("c.yaml:4:1: invalid YAML: duplicate key 'clusterName' (first on line 3)")


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        load_cluster_config(tmp_path / "nope.yaml")
    with pytest.raises(UserError, match="is a directory"):
        load_cluster_config(tmp_path)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UserError, match="not UTF-8"):
        load_cluster_config(binary)


@pytest.mark.parametrize("text,expected", [
    ("8760h0m0s", timedelta(hours=8760)),
    ("8760h", timedelta(hours=8760)),
    ("1h30m", timedelta(minutes=90)),
    ("1.5h", timedelta(minutes=90)),
    ("90s", timedelta(seconds=90)),
    ("300ms", timedelta(milliseconds=300)),
    ("1500us", timedelta(microseconds=1500)),
    ("2\u00b5s", timedelta(microseconds=2)),
    ("0", timedelta(0)),
    ("-2m", -timedelta(minutes=2)),
    ("+3h", timedelta(hours=3)),
])
def test_parse_go_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "h", "10", "1d", "1y", "1h 30m", "abc", "1hh"])
def test_reject_non_go_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("td,expected", [
    (timedelta(days=365), "8760h0m0s"),
    (timedelta(days=3650), "87600h0m0s"),
    (timedelta(minutes=90), "1h30m0s"),
    (timedelta(seconds=90), "1m30s"),
    (timedelta(seconds=5), "5s"),
    (timedelta(seconds=1, milliseconds=500), "1.5s"),
    (timedelta(milliseconds=250), "250ms"),
    (timedelta(microseconds=7), "7\u00b5s"),
    (timedelta(0), "0s"),
    (-timedelta(hours=1), "-1h0m0s"),
])
def test_format_like_go(td, expected):
    assert format_duration(td) == expected
    assert parse_duration(expected) == td


def test_node_cidr_mask_size_sets_the_smallest_pod_subnet():
    ok = parse("networking: {podSubnet: 10.1.0.0/25}\n"
               "controllerManager:\n  extraArgs: [{name: node-cidr-mask-size, value: '26'}]\n")
    assert ok.controller_manager.node_cidr_mask_size == 26
    assert "too small to give each node a /28 (node-cidr-mask-size)" in error(
        "networking: {podSubnet: 10.1.0.0/29}\n"
        "controllerManager:\n  extraArgs: [{name: node-cidr-mask-size, value: '28'}]\n")
    assert "node-cidr-mask-size: 'x' is not a prefix length" in error(
        "controllerManager:\n  extraArgs: [{name: node-cidr-mask-size, value: x}]\n")
