"""kubeadm's own configuration files (v1beta3, v1beta4) as --config, migrate,
print defaults and images list."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bootstrap.cli import main
from bootstrap.config.cluster import default_config, load_cluster_config
from bootstrap.config.kubeadm import JoinSettings, load_config_file, parse_config_text
from bootstrap.config.kubeadm_convert import migrate
from bootstrap.errors import UserError

DATA = Path(__file__).parent / "data" / "kubeadm"
V3 = DATA / "v1beta3-ha.yaml"
V4 = DATA / "v1beta4-all-kinds.yaml"


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_v1beta3_file_is_mapped_with_a_warning_per_unimplemented_field():
    f = load_config_file(str(V3))
    cfg = f.cluster
    assert f.api_version == "kubeadm.k8s.io/v1beta3"
    assert (cfg.cluster_name, cfg.kubernetes_version, cfg.control_plane_endpoint) == \
        ("prod", "v1.30.2", "lb.prod.example:6443")
    assert cfg.networking.service_subnet == "10.96.0.0/16"
    assert cfg.etcd.local.extra_args == {"quota-backend-bytes": "8589934592",
                                         "snapshot-count": "10000"}
    assert cfg.api_server.extra_args["authorization-mode"] == "Node,RBAC"
    assert cfg.api_server.cert_sans == ("lb.prod.example", "10.100.0.100")
    assert cfg.controller_manager.node_cidr_mask_size == 24
    assert cfg.bind_port == 6444
    assert f.init.node_name == "cp-1" and f.init.advertise_address == "10.100.0.1"
    assert f.init.bootstrap_tokens == ("9a08jv.c0izixklcxtmnze7",)
    assert f.join.api_server_endpoint == "lb.prod.example:6443"
    assert f.join.ca_cert_hashes[0].startswith("sha256:7c2e")
    assert f.kubelet == {"cgroupDriver": "systemd", "clusterDomain": "cluster.local",
                         "maxPods": 150}
    assert f.kube_proxy == {"mode": "iptables", "clusterCIDR": "10.244.0.0/16"}
    fields = [w.split(": ")[1] for w in f.warnings]
    assert fields == [
        "ClusterConfiguration.imageRepository", "ClusterConfiguration.apiServer.extraVolumes",
        "ClusterConfiguration.apiServer.timeoutForControlPlane",
        "ClusterConfiguration.scheduler.extraArgs",
        "InitConfiguration.nodeRegistration.criSocket",
        "InitConfiguration.nodeRegistration.kubeletExtraArgs",
        "InitConfiguration.bootstrapTokens[0].description",
        "InitConfiguration.bootstrapTokens[0].ttl", "JoinConfiguration.discovery.timeout",
        "KubeletConfiguration.serializeImagePulls", "KubeProxyConfiguration.ipvs"]
    assert f.warnings[0] == f"{V3}:23: ClusterConfiguration.imageRepository: not implemented " \
                            "by bootstrap; ignored"
    assert cfg.warnings == f.warnings


def test_v1beta4_file_with_every_kind():
    f = load_config_file(str(V4))
    cfg = f.cluster
    assert cfg.etcd.external.endpoints[2] == "https://192.0.2.23:2379"
    assert cfg.api_server.extra_args == {"audit-log-maxage": "7"}
    assert cfg.certificate_validity_period == timedelta(days=90)
    assert cfg.encryption_algorithm == "RSA-2048"
    assert f.init.skip_phases == ("addons/kube-proxy",)
    assert f.join == JoinSettings(tls_bootstrap_token="abcdef.0123456789abcdef",
                                  discovery_file="/etc/kubernetes/discovery.conf",
                                  control_plane=True, advertise_address="192.0.2.11",
                                  bind_port=6443)
    assert (f.reset.force, f.reset.skip_phases) == (True, ("cleanup-node",))
    assert (f.upgrade.kubernetes_version, f.upgrade.etcd_upgrade,
            f.upgrade.certificate_renewal) == ("v1.32.1", False, True)
    assert [w.split(": ")[1] for w in f.warnings] == [
        "ClusterConfiguration.apiServer.extraEnvs", "ClusterConfiguration.dns.disabled",
        "InitConfiguration.nodeRegistration.kubeletExtraArgs",
        "InitConfiguration.timeouts.controlPlaneComponentHealthCheck",
        "JoinConfiguration.timeouts.discovery", "ResetConfiguration.cleanupTmpDir",
        "UpgradeConfiguration.apply.forceUpgrade", "UpgradeConfiguration.plan.allowRCUpgrades"]


def test_load_cluster_config_logs_the_warnings(caplog):
    cfg = load_cluster_config(V4)
    assert cfg.cluster_name == "lab"
    assert len([r for r in caplog.records if r.name == "bootstrap.config"]) == 8


def head(version: str, kind: str = "ClusterConfiguration") -> str:
    return f"apiVersion: kubeadm.k8s.io/{version}\nkind: {kind}\n"


@pytest.mark.parametrize("text,fragment", [
    (head("v1beta3") + "apiServer:\n  extraArgs:\n  - {name: v, value: '2'}\n",
     "c.yaml:4: ClusterConfiguration.apiServer.extraArgs: v1beta3 extraArgs is a map"),
    (head("v1beta4") + "apiServer:\n  extraArgs: {v: '2'}\n",
     "c.yaml:4: ClusterConfiguration.apiServer.extraArgs: v1beta4 extraArgs is a list of "
     "name/value (write [{name: flag, value: \"...\"}], or convert with bootstrap config "
     "migrate)"),
    (head("v1beta3", "ResetConfiguration"),
     "c.yaml:2: ResetConfiguration is not in kubeadm.k8s.io/v1beta3"),
    (head("v1beta4", "Widget"), "c.yaml:2: kind 'Widget' is not a kubeadm kind"),
    (head("v1beta4") + "---\n" + head("v1beta3", "InitConfiguration"),
     "c.yaml:4: apiVersion kubeadm.k8s.io/v1beta3 mixed with kubeadm.k8s.io/v1beta4"),
    (head("v1beta4") + "networking: {podSubnet: 10.0.0/8}\n",
     "c.yaml:3: networking.podSubnet: '10.0.0/8' is not a valid CIDR"),
    (head("v1beta4", "InitConfiguration") + "localAPIEndpoint: {bindPort: 0}\n",
     "InitConfiguration.localAPIEndpoint.bindPort: 0 is not a port number"),
    (head("v1beta4") + "---\napiVersion: kubeproxy.config.k8s.io/v1alpha1\n"
     "kind: KubeProxyConfiguration\nmode: ipvs\n",
     "c.yaml:6: KubeProxyConfiguration.mode 'ipvs' is not supported"),
    (head("v1beta4") + "---\n" + head("v1beta4"), "c.yaml:5: 2 ClusterConfiguration documents"),
    (head("v1beta4", "JoinConfiguration") + "skipPhases: preflight\n",
     "JoinConfiguration.skipPhases: must be a list of phase names"),
])
def test_bad_kubeadm_input_is_one_line(text, fragment):
    with pytest.raises(UserError) as exc:
        parse_config_text(text, "c.yaml")
    line = exc.value.line()
    assert "\n" not in line and fragment in line, line


def test_v1beta4_only_and_unknown_fields_are_warnings_not_silent():
    f = parse_config_text(head("v1beta3") + "encryptionAlgorithm: RSA-2048\nclustrName: x\n"
                          "---\n" + head("v1beta4".replace("4", "3"), "JoinConfiguration")
                          + "dryRun: true\n", "c.yaml")
    assert f.cluster.encryption_algorithm == "ECDSA-P256"
    assert f.warnings == (
        "c.yaml:3: ClusterConfiguration.encryptionAlgorithm: not a v1beta3 field; ignored",
        "c.yaml:4: ClusterConfiguration.clustrName: unknown field; ignored (did you mean "
        "'clusterName'?)",
        "c.yaml:8: JoinConfiguration.dryRun: not a v1beta3 field; ignored")
    f = parse_config_text(head("v1beta4") + "apiServer: {timeoutForControlPlane: 4m}\n", "c.yaml")
    assert f.warnings == ("c.yaml:3: ClusterConfiguration.apiServer.timeoutForControlPlane: not "
                          "a v1beta4 field; ignored (v1beta4 moved it to "
                          "InitConfiguration.timeouts.controlPlaneComponentHealthCheck)",)


def test_our_own_api_version_stays_strict_and_valid():
    ours = "apiVersion: bootstrap.dev/v1alpha1\nkind: ClusterConfiguration\n"
    assert parse_config_text(ours + "clusterName: a\n", "c.yaml").cluster.cluster_name == "a"
    with pytest.raises(UserError, match="imageRepository: is a kubeadm field"):
        parse_config_text(ours + "imageRepository: x\n", "c.yaml")
    # Ours together with kubeadm's node-local kinds and component configs.
    f = parse_config_text(ours + "---\n" + head("v1beta4", "InitConfiguration")
                          + "localAPIEndpoint: {bindPort: 7443}\n", "c.yaml")
    assert f.cluster.bind_port == 7443


def test_migrate_v1beta3_to_v1beta4_as_kubeadm(tmp_path):
    out = list(yaml.safe_load_all(migrate(V3.read_text(), str(V3))))
    assert [d["kind"] for d in out] == ["InitConfiguration", "ClusterConfiguration",
                                        "JoinConfiguration", "KubeletConfiguration",
                                        "KubeProxyConfiguration"]
    init, cluster, join = out[0], out[1], out[2]
    assert {d["apiVersion"] for d in out[:3]} == {"kubeadm.k8s.io/v1beta4"}
    assert out[3]["apiVersion"] == "kubelet.config.k8s.io/v1beta1"
    assert cluster["etcd"]["local"]["extraArgs"] == [
        {"name": "quota-backend-bytes", "value": "8589934592"},
        {"name": "snapshot-count", "value": "10000"}]
    assert cluster["scheduler"]["extraArgs"] == [{"name": "bind-address", "value": "0.0.0.0"}]
    assert "timeoutForControlPlane" not in cluster["apiServer"]
    assert init["timeouts"] == {"controlPlaneComponentHealthCheck": "4m0s"}
    assert init["nodeRegistration"]["kubeletExtraArgs"] == [{"name": "v", "value": "4"}]
    assert join["timeouts"] == {"discovery": "5m0s",
                                "controlPlaneComponentHealthCheck": "4m0s"}
    assert "timeout" not in join["discovery"]
    # The result is a valid v1beta4 file mapping to the same cluster configuration.
    new = tmp_path / "new.yaml"
    result = run("config", "migrate", "--old-config", str(V3), "--new-config", str(new))
    assert result.exit_code == 0, result.output
    assert load_config_file(str(new)).cluster == load_config_file(str(V3)).cluster
    # A timeout with no InitConfiguration in the file gets one, as kubeadm's output has.
    text = migrate(head("v1beta3") + "apiServer: {timeoutForControlPlane: 2m}\n", "c.yaml")
    assert list(yaml.safe_load_all(text))[0] == {
        "apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "InitConfiguration",
        "timeouts": {"controlPlaneComponentHealthCheck": "2m"}}


def test_migrate_refuses_what_it_cannot_convert(tmp_path):
    ours = tmp_path / "ours.yaml"
    ours.write_text("apiVersion: bootstrap.dev/v1alpha1\nkind: ClusterConfiguration\n")
    result = CliRunner().invoke(main, ["config", "migrate", "--old-config", str(ours)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {ours}:1: already bootstrap's own " \
                                    "bootstrap.dev/v1alpha1; nothing to migrate"
    old = tmp_path / "v2.yaml"
    old.write_text(head("v1beta2"))
    result = CliRunner().invoke(main, ["config", "migrate", "--old-config", str(old)])
    assert result.exit_code == 2 and "apiVersion 'kubeadm.k8s.io/v1beta2' cannot be migrated" \
        in result.stderr and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("which,kinds", [
    ("init", ["ClusterConfiguration", "InitConfiguration"]),
    ("join", ["JoinConfiguration"]),
    ("reset", ["ResetConfiguration"]),
    ("upgrade", ["UpgradeConfiguration"]),
])
def test_print_defaults_read_back_without_warnings(which, kinds, tmp_path):
    result = run("config", "print", f"{which}-defaults", "--component-configs",
                 "KubeletConfiguration,KubeProxyConfiguration")
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(result.stdout))
    assert [d["kind"] for d in docs] == kinds + ["KubeletConfiguration",
                                                 "KubeProxyConfiguration"]
    path = tmp_path / "d.yaml"
    path.write_text(result.stdout)
    f = load_config_file(str(path))
    assert f.warnings == () and f.cluster == default_config()
    assert f.kubelet["clusterDNS"] == ["10.96.0.10"]


def test_print_defaults_unknown_component_is_one_line():
    result = CliRunner().invoke(main, ["config", "print", "init-defaults",
                                       "--component-configs", "KubeletConfig"])
    assert result.exit_code == 2
    assert result.stderr == "error: --component-configs: unknown component config " \
                            "'KubeletConfig' (use KubeletConfiguration, KubeProxyConfiguration)\n"


def test_images_list_names_pause_and_busybox(tmp_path):
    result = run("config", "images", "list")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["registry.k8s.io/pause:3.9",
                                          "docker.io/library/busybox:1.35"]
    result = run("config", "images", "list", "--config", str(V4))
    assert result.exit_code == 0 and "dns.disabled" in result.stderr


def test_validate_accepts_kubeadm_files_and_prints_warnings():
    result = run("config", "validate", "--config", str(V3))
    assert result.exit_code == 0
    assert f"{V3}: ok (kubeadm.k8s.io/v1beta3)" in result.stdout
    assert "also: InitConfiguration, JoinConfiguration, KubeletConfiguration" in result.stdout
    assert len(result.stderr.splitlines()) == 11
    assert all(line.startswith(f"warning: {V3}:") for line in result.stderr.splitlines())


def test_kubeadm_docs_example_reads(tmp_path):
    # The shape kubeadm's docs give for `kubeadm init --config` with a kubelet config.
    text = textwrap.dedent("""
        apiVersion: kubeadm.k8s.io/v1beta4
        kind: ClusterConfiguration
        kubernetesVersion: v1.32.0
        networking:
          podSubnet: 192.168.0.0/16
        ---
        apiVersion: kubelet.config.k8s.io/v1beta1
        kind: KubeletConfiguration
        cgroupDriver: systemd
    """)
    f = parse_config_text(text, "c.yaml")
    assert f.cluster.networking.pod_subnet == "192.168.0.0/16"
    assert f.kubelet == {"cgroupDriver": "systemd"} and f.warnings == ()
