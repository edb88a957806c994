"""check-expiration rows and renewal (keeps key, subject, SANs, usages; extends expiry)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from openssl_readback import (
    dates,
    ext,
    pubkey_der_of_cert,
    pubkey_der_of_key,
    subject,
    verify,
)

from bootstrap.config.model import ClusterConfig
from bootstrap.errors import UserError
from bootstrap.pki import ensure_all, ensure_kubeconfigs
from bootstrap.pki.expiry import RENEWABLE, check_expiration, renew, renew_all, short_duration

NODE, IP = "cp-1", "10.0.0.1"
SHORT = ClusterConfig(certificate_validity_period=timedelta(days=2),
                      control_plane_endpoint="lb.example.com")


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    pki = tmp_path / "pki"
    ensure_all(pki, SHORT, NODE, IP)
    ensure_kubeconfigs(tmp_path, pki, SHORT, NODE, IP)
    return tmp_path, pki


def test_renewable_names_are_kubeadms():
    assert RENEWABLE == (
        "admin.conf", "apiserver", "apiserver-etcd-client", "apiserver-kubelet-client",
        "controller-manager.conf", "etcd-healthcheck-client", "etcd-peer", "etcd-server",
        "front-proxy-client", "scheduler.conf", "super-admin.conf")


def test_check_expiration_rows(dirs):
    kdir, pki = dirs
    rows, cas = check_expiration(pki, kdir)
    assert [r.name for r in rows] == list(RENEWABLE)
    by = {r.name: r for r in rows}
    assert by["apiserver"].ca == "ca" and by["etcd-peer"].ca == "etcd-ca"
    assert by["front-proxy-client"].ca == "front-proxy-ca" and by["admin.conf"].ca == "ca"
    assert by["apiserver"].expires == dates(pki / "apiserver.crt")[1]
    assert timedelta(days=1) < by["apiserver"].residual <= timedelta(days=2)
    assert not any(r.externally_managed or r.missing for r in rows)
    assert [c.name for c in cas] == ["ca", "front-proxy-ca", "etcd-ca"]
    assert cas[0].expires == dates(pki / "ca.crt")[1]


def test_check_expiration_external_ca_and_missing(dirs):
    kdir, pki = dirs
    (pki / "etcd/ca.key").unlink()
    (kdir / "super-admin.conf").unlink()
    rows, cas = check_expiration(pki, kdir)
    by = {r.name: r for r in rows + cas}
    assert by["etcd-server"].externally_managed and by["etcd-ca"].externally_managed
    assert not by["apiserver"].externally_managed
    assert by["super-admin.conf"].missing


@pytest.mark.parametrize("delta,text", [
    (timedelta(seconds=30), "30s"), (timedelta(minutes=5), "5m"), (timedelta(hours=47), "47h"),
    (timedelta(days=364, hours=23), "364d"), (timedelta(days=3649), "9y"),
    (timedelta(days=-3), "<invalid>"),
])
def test_short_duration(delta, text):
    assert short_duration(delta) == text


def test_renew_keeps_key_and_names_and_extends(dirs):
    kdir, pki = dirs
    crt = pki / "apiserver.crt"
    sans, subj, eku = ext(crt, "subjectAltName"), subject(crt), ext(crt, "extendedKeyUsage")
    key_before = (pki / "apiserver.key").read_bytes()
    old_end = dates(crt)[1]
    renew("apiserver", pki, kdir, ClusterConfig())  # default validity: one year
    assert (pki / "apiserver.key").read_bytes() == key_before
    assert ext(crt, "subjectAltName") == sans and subject(crt) == subj
    assert ext(crt, "extendedKeyUsage") == eku
    new_end = dates(crt)[1]
    assert new_end - old_end > timedelta(days=300)
    assert abs(new_end - (datetime.now(UTC) + timedelta(days=365))) < timedelta(minutes=5)
    verify(pki / "ca.crt", crt)


def test_renew_with_new_key(dirs):
    kdir, pki = dirs
    before = pubkey_der_of_cert(pki / "etcd/peer.crt")
    renew("etcd-peer", pki, kdir, new_key=True)
    after = pubkey_der_of_cert(pki / "etcd/peer.crt")
    assert after != before and after == pubkey_der_of_key(pki / "etcd/peer.key")
    assert (pki / "etcd/peer.key").stat().st_mode & 0o777 == 0o600
    verify(pki / "etcd/ca.crt", pki / "etcd/peer.crt")


def test_renew_kubeconfig_keeps_server_and_user(dirs, tmp_path: Path):
    kdir, pki = dirs
    conf = kdir / "admin.conf"
    before = yaml.safe_load(conf.read_text())
    renew("admin.conf", pki, kdir, ClusterConfig())
    after = yaml.safe_load(conf.read_text())
    assert after["clusters"] == before["clusters"] and after["contexts"] == before["contexts"]
    assert after["users"][0]["user"]["client-key-data"] == before["users"][0]["user"]["client-key-data"]
    assert after["users"][0]["user"]["client-certificate-data"] != \
        before["users"][0]["user"]["client-certificate-data"]
    assert conf.stat().st_mode & 0o777 == 0o600
    rows, _ = check_expiration(pki, kdir)
    assert next(r for r in rows if r.name == "admin.conf").residual > timedelta(days=300)


def test_renew_all(dirs):
    kdir, pki = dirs
    (kdir / "super-admin.conf").unlink()
    renewed, skipped = renew_all(pki, kdir, ClusterConfig())
    assert skipped == ["super-admin.conf"] and len(renewed) == len(RENEWABLE) - 1
    rows, _ = check_expiration(pki, kdir)
    assert all(r.residual > timedelta(days=300) for r in rows if not r.missing)


def test_renew_errors(dirs):
    kdir, pki = dirs
    shutil.copy(pki / "etcd/ca.key", pki / "keep")
    (pki / "etcd/ca.key").unlink()
    with pytest.raises(UserError, match="externally managed"):
        renew("etcd-server", pki, kdir)
    (pki / "front-proxy-client.crt").unlink()
    with pytest.raises(UserError, match="nothing to renew"):
        renew("front-proxy-client", pki, kdir)
    with pytest.raises(UserError, match="unknown certificate"):
        renew("kubelet.conf", pki, kdir)
