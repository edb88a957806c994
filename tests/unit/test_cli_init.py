"""`bootstrap init phase certs|kubeconfig ...` end to end, checked with openssl and kubectl."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from openssl_readback import CHAINS, ext, subject, verify

from bootstrap.cli import main

REPO = Path(__file__).resolve().parents[2]
CONFIG = """\
apiVersion: bootstrap.dev/v1alpha1
kind: ClusterConfiguration
clusterName: demo
controlPlaneEndpoint: lb.example.com:8443
networking:
  serviceSubnet: 10.100.0.0/16
  dnsDomain: corp.local
apiServer:
  certSANs: ["10.9.9.9", "api.example.com"]
encryptionAlgorithm: ECDSA-P256
"""
NODE = ["--node-name", "cp-1", "--advertise-address", "10.0.0.11"]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    p = tmp_path / "cluster.yaml"
    p.write_text(CONFIG)
    return p


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_module_entry_point_certs_all_then_openssl_verify(tmp_path: Path, config: Path):
    d = tmp_path / "pki"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-m", "bootstrap", "init", "phase", "certs", "all",
                          "--config", str(config), "--cert-dir", str(d), *NODE],
                         capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    assert res.returncode == 0, res.stderr
    assert '[certs] Generating "apiserver" certificate and key' in res.stdout
    for leaf, ca in CHAINS.items():
        verify(d / ca, d / leaf)
    sans = ext(d / "apiserver.crt", "subjectAltName")
    for want in ("DNS:lb.example.com", "IP Address:10.100.0.1", "IP Address:10.9.9.9",
                 "DNS:api.example.com", "DNS:kubernetes.default.svc.corp.local", "DNS:cp-1",
                 "IP Address:10.0.0.11"):
        assert want in sans
    assert (d / "sa.key").stat().st_mode & 0o777 == 0o600


def test_single_phases_and_rerun(tmp_path: Path, config: Path):
    d = str(tmp_path / "pki")
    assert run("init", "phase", "certs", "ca", "--cert-dir", d).exit_code == 0
    res = run("init", "phase", "certs", "apiserver-kubelet-client", "--cert-dir", d,
              "--config", str(config))
    assert res.exit_code == 0, res.output
    verify(Path(d) / "ca.crt", Path(d) / "apiserver-kubelet-client.crt")
    res = run("init", "phase", "certs", "all", "--cert-dir", d, "--config", str(config), *NODE)
    assert res.exit_code == 0, res.output
    assert "Using existing ca certificate authority" in res.output
    assert "Using existing apiserver-kubelet-client certificate and key on disk" in res.output
    again = run("init", "phase", "certs", "all", "--cert-dir", d, "--config", str(config), *NODE)
    assert "Generating" not in again.output


def test_kubeconfig_all_and_kubectl(tmp_path: Path, config: Path):
    d, k = str(tmp_path / "pki"), str(tmp_path / "k")
    assert run("init", "phase", "certs", "all", "--cert-dir", d, *NODE).exit_code == 0
    res = run("init", "phase", "kubeconfig", "all", "--cert-dir", d, "--kubeconfig-dir", k,
              "--config", str(config), *NODE)
    assert res.exit_code == 0, res.output
    for name in ("admin", "super-admin", "kubelet", "controller-manager", "scheduler"):
        conf = Path(k) / f"{name}.conf"
        out = subprocess.run(["kubectl", "--kubeconfig", str(conf), "config", "view", "--raw",
                              "-o", "jsonpath={.users[0].user.client-certificate-data}"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        crt = tmp_path / f"{name}.crt"
        import base64
        crt.write_bytes(base64.b64decode(out.stdout))
        verify(Path(d) / "ca.crt", crt)
    assert subject(tmp_path / "kubelet.crt") == "subject=CN=system:node:cp-1,O=system:nodes"


def test_control_plane_endpoint_flag_overrides_config(tmp_path: Path, config: Path):
    d = tmp_path / "pki"
    assert run("init", "phase", "certs", "ca", "--cert-dir", str(d)).exit_code == 0
    res = run("init", "phase", "certs", "apiserver", "--cert-dir", str(d), "--config", str(config),
              "--control-plane-endpoint", "10.0.0.200:6443", *NODE)
    assert res.exit_code == 0, res.output
    assert "IP Address:10.0.0.200" in ext(d / "apiserver.crt", "subjectAltName")


def one_line_error(res) -> str:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    return lines[0]


def test_leaf_before_ca_is_one_line(tmp_path: Path):
    line = one_line_error(run("init", "phase", "certs", "front-proxy-client", "--cert-dir",
                              str(tmp_path)))
    assert "front-proxy-ca.crt does not exist" in line and "certs front-proxy-ca" in line


def test_bad_inputs_are_one_line_exit_2(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.replace("ECDSA-P256", "DSA-1024"))
    line = one_line_error(run("init", "phase", "certs", "ca", "--cert-dir", str(tmp_path / "p"),
                              "--config", str(bad)))
    assert "bad.yaml" in line
    line = one_line_error(run("init", "phase", "certs", "all", "--cert-dir", str(tmp_path / "p"),
                              "--node-name", "n", "--advertise-address", "nope"))
    assert "not an IP" in line
    line = one_line_error(run("init", "phase", "certs", "all", "--cert-dir", str(tmp_path / "p"),
                              *NODE, "--control-plane-endpoint", "host:99999"))
    assert "invalid port" in line


def test_external_ca_is_one_line(tmp_path: Path):
    d = tmp_path / "pki"
    assert run("init", "phase", "certs", "ca", "--cert-dir", str(d)).exit_code == 0
    (d / "ca.key").unlink()
    res = run("init", "phase", "certs", "ca", "--cert-dir", str(d))
    assert "Using existing ca keyless certificate authority" in res.output
    line = one_line_error(run("init", "phase", "certs", "apiserver", "--cert-dir", str(d), *NODE))
    assert "external CA mode" in line


def test_help_is_derived_from_the_declaration():
    res = run("init", "--help")
    assert res.exit_code == 0
    assert re.search(r"certs\s+Certificate generation", res.output)
    assert re.search(r"/etcd-healthcheck-client\s+Generate", res.output)
    assert re.search(r"/super-admin\s+Generate", res.output)
    sub = run("init", "phase", "kubeconfig", "--help").output
    listed = [ln.split()[0] for ln in sub.split("Commands:")[1].splitlines()
              if re.match(r"^  \S", ln)]
    assert listed == [
        "all", "admin", "super-admin", "kubelet", "controller-manager", "scheduler"]


def test_plain_init_lists_every_phase_and_bad_flags_are_one_line(tmp_path: Path):
    res = run("init", "--help")
    for phase in ("preflight", "etcd", "control-plane", "kubelet-start", "wait-control-plane",
                  "upload-config", "upload-certs", "mark-control-plane", "bootstrap-token",
                  "kubelet-finalize", "addons", "show-join-command"):
        assert re.search(rf"^  {phase}\s", res.output, re.M), phase
    bad = run("init", "--skip-phases", "nope", "--cert-dir", str(tmp_path))
    assert bad.exit_code == 2 and bad.output.count("\n") == 1 and "unknown phase" in bad.output
    assert not any(tmp_path.iterdir())


def test_default_advertise_address_needs_a_default_route(monkeypatch):
    import bootstrap.flows.init as init_flow
    from bootstrap.errors import UserError

    class NoRoute:
        def __init__(self, *a):
            pass

        def connect(self, addr):
            raise OSError(101, "Network is unreachable")

        def close(self):
            pass

    monkeypatch.setattr(init_flow.socket, "socket", NoRoute)
    with pytest.raises(UserError) as exc:
        init_flow.default_advertise_address()
    assert "no default route" in exc.value.line() and "--advertise-address" in exc.value.line()


def test_default_node_name_is_lowercased_hostname(monkeypatch):
    import bootstrap.flows.init as init_flow

    monkeypatch.setattr(init_flow.socket, "gethostname", lambda: "CP-1.Example")
    assert init_flow.default_node_name() == "cp-1.example"
