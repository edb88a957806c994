"""Kubeconfigs: kubeadm's five files, embedded CA and client credentials, reuse rules."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
import yaml
from openssl_readback import subject, verify

from bootstrap.config.model import ClusterConfig
from bootstrap.errors import UserError
from bootstrap.pki import ensure_all, ensure_kubeconfig, ensure_kubeconfigs

NODE, IP = "cp-1", "192.168.50.11"

EXPECTED = {
    "admin.conf": ("kubernetes-admin", "CN=kubernetes-admin,O=kubeadm:cluster-admins"),
    "super-admin.conf": ("kubernetes-super-admin", "CN=kubernetes-super-admin,O=system:masters"),
    "kubelet.conf": (f"system:node:{NODE}", f"CN=system:node:{NODE},O=system:nodes"),
    "controller-manager.conf": ("system:kube-controller-manager",
                                "CN=system:kube-controller-manager"),
    "scheduler.conf": ("system:kube-scheduler", "CN=system:kube-scheduler"),
}


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    pki = tmp_path / "pki"
    cfg = ClusterConfig(cluster_name="demo", control_plane_endpoint="lb.example.com:7443")
    ensure_all(pki, cfg, NODE, IP)
    ensure_kubeconfigs(tmp_path, pki, cfg, NODE, IP)
    return tmp_path, pki


def _extract(conf: Path, tmp: Path) -> tuple[dict, Path]:
    doc = yaml.safe_load(conf.read_text())
    user = doc["users"][0]["user"]
    crt = tmp / (conf.name + ".crt")
    crt.write_bytes(base64.b64decode(user["client-certificate-data"]))
    return doc, crt


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_kubeconfig_contents(dirs, name: str, tmp_path: Path):
    kdir, pki = dirs
    conf = kdir / name
    assert conf.stat().st_mode & 0o777 == 0o600
    doc, crt = _extract(conf, tmp_path)
    user, subj = EXPECTED[name]
    assert doc["kind"] == "Config" and doc["current-context"] == f"{user}@demo"
    assert doc["users"][0]["name"] == user
    cluster = doc["clusters"][0]
    assert cluster["name"] == "demo"
    ca_data = base64.b64decode(cluster["cluster"]["certificate-authority-data"])
    assert ca_data == (pki / "ca.crt").read_bytes()
    local = name in ("controller-manager.conf", "scheduler.conf")
    want = f"https://{IP}:6443" if local else "https://lb.example.com:7443"
    assert cluster["cluster"]["server"] == want
    verify(pki / "ca.crt", crt)
    assert subject(crt) == f"subject={subj}"


def test_kubectl_reads_them(dirs):
    kdir, _ = dirs
    for name in EXPECTED:
        res = subprocess.run(["kubectl", "--kubeconfig", str(kdir / name), "config", "view",
                              "-o", "json"], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        view = json.loads(res.stdout)
        assert view["clusters"][0]["cluster"]["server"].startswith("https://")
        assert view["users"][0]["user"]["client-certificate-data"] in ("DATA+OMITTED", "REDACTED")


def test_server_without_endpoint_is_advertise_address(tmp_path: Path):
    ensure_all(tmp_path / "pki", ClusterConfig(), NODE, "fd00::5")
    ensure_kubeconfig("admin", tmp_path, tmp_path / "pki", ClusterConfig(), NODE, "fd00::5")
    doc = yaml.safe_load((tmp_path / "admin.conf").read_text())
    assert doc["clusters"][0]["cluster"]["server"] == "https://[fd00::5]:6443"


def test_reuse_leaves_files_untouched(dirs):
    kdir, pki = dirs
    cfg = ClusterConfig(cluster_name="demo", control_plane_endpoint="lb.example.com:7443")
    before = {n: ((kdir / n).stat().st_mtime_ns, (kdir / n).read_bytes()) for n in EXPECTED}
    outs = ensure_kubeconfigs(kdir, pki, cfg, NODE, IP)
    assert not any(o.created for o in outs)
    assert before == {n: ((kdir / n).stat().st_mtime_ns, (kdir / n).read_bytes()) for n in EXPECTED}


def test_wrong_server_is_an_error(dirs):
    kdir, pki = dirs
    with pytest.raises(UserError) as exc:
        ensure_kubeconfig("admin", kdir, pki, ClusterConfig(cluster_name="demo"), NODE, IP)
    assert "admin.conf" in exc.value.line() and "points at https://lb.example.com:7443" in exc.value.line()


def test_other_ca_is_an_error(dirs, tmp_path: Path):
    kdir, _ = dirs
    other = tmp_path / "other-pki"
    ensure_all(other, ClusterConfig(), NODE, IP)
    cfg = ClusterConfig(cluster_name="demo", control_plane_endpoint="lb.example.com:7443")
    with pytest.raises(UserError) as exc:
        ensure_kubeconfig("scheduler", kdir, other, cfg, NODE, IP)
    assert "different CA" in exc.value.line()


def test_garbage_kubeconfig_is_an_error(dirs):
    kdir, pki = dirs
    (kdir / "kubelet.conf").write_text("apiVersion: v1\nkind: Config\n")
    with pytest.raises(UserError) as exc:
        ensure_kubeconfig("kubelet", kdir, pki, ClusterConfig(), NODE, IP)
    assert "kubelet.conf" in exc.value.line() and "\n" not in exc.value.line()


def test_external_ca_cannot_write_new_kubeconfig(dirs):
    kdir, pki = dirs
    (pki / "ca.key").unlink()
    (kdir / "admin.conf").unlink()
    cfg = ClusterConfig(cluster_name="demo", control_plane_endpoint="lb.example.com:7443")
    with pytest.raises(UserError) as exc:
        ensure_kubeconfig("admin", kdir, pki, cfg, NODE, IP)
    assert "external CA mode" in exc.value.line()
    assert not (kdir / "admin.conf").exists()
    # existing, valid ones are still fine
    assert not ensure_kubeconfig("scheduler", kdir, pki, cfg, NODE, IP).created
