"""kubeadm's certificate set: files, modes, subjects, usages, SANs, validity, reuse, errors.

Everything is read back with the real openssl binary (openssl_readback), never
with the code under test.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from openssl_readback import CHAINS, dates, ext, openssl, subject, text, verify

from bootstrap.config.model import APIServer, ClusterConfig, Etcd, ExternalEtcd, Networking
from bootstrap.errors import UserError
from bootstrap.pki import ensure_all, ensure_ca, ensure_cas, ensure_leaf, ensure_sa_key

NODE, IP = "cp-1", "192.168.50.11"

ALL_FILES = [
    "ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "apiserver-kubelet-client.crt",
    "apiserver-kubelet-client.key", "front-proxy-ca.crt", "front-proxy-ca.key",
    "front-proxy-client.crt", "front-proxy-client.key", "etcd/ca.crt", "etcd/ca.key",
    "etcd/server.crt", "etcd/server.key", "etcd/peer.crt", "etcd/peer.key",
    "etcd/healthcheck-client.crt", "etcd/healthcheck-client.key", "apiserver-etcd-client.crt",
    "apiserver-etcd-client.key", "sa.key", "sa.pub",
]


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    d = tmp_path / "pki"
    ensure_all(d, ClusterConfig(), NODE, IP)
    return d


def test_complete_set_with_kubeadm_names_and_modes(pki: Path):
    present = sorted(str(p.relative_to(pki)) for p in pki.rglob("*") if p.is_file())
    assert present == sorted(ALL_FILES)
    for rel in ALL_FILES:
        mode = (pki / rel).stat().st_mode & 0o777
        assert mode == (0o600 if rel.endswith(".key") else 0o644), rel
    assert (pki / "etcd").stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize("leaf,ca", sorted(CHAINS.items()))
def test_every_chain_verifies_with_openssl(pki: Path, leaf: str, ca: str):
    verify(pki / ca, pki / leaf)


@pytest.mark.parametrize("leaf,wrong_ca", [
    ("apiserver.crt", "etcd/ca.crt"), ("front-proxy-client.crt", "ca.crt"),
    ("etcd/server.crt", "ca.crt"),
])
def test_chains_do_not_cross(pki: Path, leaf: str, wrong_ca: str):
    import subprocess
    res = subprocess.run(["openssl", "verify", "-CAfile", str(pki / wrong_ca), str(pki / leaf)],
                         capture_output=True)
    assert res.returncode != 0


LEAF_SUBJECTS = {
    "apiserver.crt": ("CN=kube-apiserver", "TLS Web Server Authentication"),
    "apiserver-kubelet-client.crt": ("CN=kube-apiserver-kubelet-client,O=kubeadm:cluster-admins",
                                     "TLS Web Client Authentication"),
    "front-proxy-client.crt": ("CN=front-proxy-client", "TLS Web Client Authentication"),
    "etcd/server.crt": (f"CN={NODE}", "TLS Web Server Authentication, TLS Web Client Authentication"),
    "etcd/peer.crt": (f"CN={NODE}", "TLS Web Server Authentication, TLS Web Client Authentication"),
    "etcd/healthcheck-client.crt": ("CN=kube-etcd-healthcheck-client",
                                    "TLS Web Client Authentication"),
    "apiserver-etcd-client.crt": ("CN=kube-apiserver-etcd-client", "TLS Web Client Authentication"),
}


@pytest.mark.parametrize("leaf", sorted(LEAF_SUBJECTS))
def test_leaf_subject_and_usages(pki: Path, leaf: str):
    want_subject, want_eku = LEAF_SUBJECTS[leaf]
    assert subject(pki / leaf) == f"subject={want_subject}"
    assert want_eku in ext(pki / leaf, "extendedKeyUsage")
    ku = ext(pki / leaf, "keyUsage")
    assert "critical" in ku and "Digital Signature, Key Encipherment" in ku
    assert "Certificate Sign" not in ku
    assert "CA:FALSE" in ext(pki / leaf, "basicConstraints")


@pytest.mark.parametrize("ca,cn", [("ca.crt", "kubernetes"), ("front-proxy-ca.crt", "front-proxy-ca"),
                                   ("etcd/ca.crt", "etcd-ca")])
def test_cas(pki: Path, ca: str, cn: str):
    assert subject(pki / ca) == f"subject=CN={cn}"
    assert "CA:TRUE" in ext(pki / ca, "basicConstraints")
    assert "Certificate Sign" in ext(pki / ca, "keyUsage")
    start, end = dates(pki / ca)
    assert abs((end - start) - timedelta(days=3650)) < timedelta(minutes=1)
    # backdated a few minutes like kubeadm, so small clock skew does not matter
    assert start < datetime.now(UTC) - timedelta(minutes=4)


def test_leaf_validity_default_one_year_and_starts_with_ca(pki: Path):
    start, end = dates(pki / "apiserver.crt")
    assert start == dates(pki / "ca.crt")[0]
    assert abs(end - (datetime.now(UTC) + timedelta(days=365))) < timedelta(minutes=5)


def _sans(cert: Path) -> set[str]:
    body = ext(cert, "subjectAltName").splitlines()[1]
    return {s.strip() for s in body.split(",")}


def test_apiserver_sans_default(pki: Path):
    assert _sans(pki / "apiserver.crt") == {
        f"DNS:{NODE}", "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
        "DNS:kubernetes.default.svc.cluster.local", "IP Address:10.96.0.1", f"IP Address:{IP}",
    }


def test_apiserver_sans_from_config(tmp_path: Path):
    cfg = ClusterConfig(
        control_plane_endpoint="lb.example.com:8443",
        networking=Networking(service_subnet="10.100.0.0/16", dns_domain="corp.local"),
        api_server=APIServer(cert_sans=("10.9.9.9", "api.example.com", "fd00::9")),
    )
    ensure_all(tmp_path, cfg, NODE, IP)
    sans = _sans(tmp_path / "apiserver.crt")
    for want in ("DNS:kubernetes.default.svc.corp.local", "IP Address:10.100.0.1",
                 "DNS:lb.example.com", "IP Address:10.9.9.9", "DNS:api.example.com",
                 "IP Address:FD00:0:0:0:0:0:0:9"):
        assert want in sans


def test_ip_control_plane_endpoint_is_an_ip_san(tmp_path: Path):
    ensure_all(tmp_path, ClusterConfig(control_plane_endpoint="10.0.0.100"), NODE, IP)
    assert "IP Address:10.0.0.100" in _sans(tmp_path / "apiserver.crt")


@pytest.mark.parametrize("leaf", ["etcd/server.crt", "etcd/peer.crt"])
def test_etcd_sans(pki: Path, leaf: str):
    assert _sans(pki / leaf) == {f"DNS:{NODE}", "DNS:localhost", f"IP Address:{IP}",
                                 "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1"}


def test_validity_and_rsa_from_config(tmp_path: Path):
    cfg = ClusterConfig(certificate_validity_period=timedelta(days=30),
                        ca_certificate_validity_period=timedelta(days=730),
                        encryption_algorithm="RSA-2048")
    ensure_cas(tmp_path, cfg)
    ensure_leaf("apiserver-kubelet-client", tmp_path, None, cfg)
    ensure_sa_key(tmp_path, cfg)
    s, e = dates(tmp_path / "ca.crt")
    assert abs((e - s) - timedelta(days=730)) < timedelta(minutes=1)
    _, e = dates(tmp_path / "apiserver-kubelet-client.crt")
    assert abs(e - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=5)
    assert "Public-Key: (2048 bit)" in text(tmp_path / "apiserver-kubelet-client.crt")
    assert "rsaEncryption" in text(tmp_path / "ca.crt")
    assert "Private-Key: (2048 bit" in openssl("pkey", "-in", str(tmp_path / "sa.key"), "-noout", "-text")
    verify(tmp_path / "ca.crt", tmp_path / "apiserver-kubelet-client.crt")


def test_default_keys_are_ecdsa_p256_and_sa_pub_matches(pki: Path):
    assert "prime256v1" in text(pki / "apiserver.crt")
    assert "prime256v1" in openssl("pkey", "-in", str(pki / "sa.key"), "-noout", "-text")
    derived = openssl("pkey", "-in", str(pki / "sa.key"), "-pubout")
    assert derived.strip() == (pki / "sa.pub").read_text().strip()


def _snapshot(d: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p): (p.stat().st_mtime_ns, p.read_bytes()) for p in d.rglob("*") if p.is_file()}


def test_second_run_reuses_everything(pki: Path):
    before = _snapshot(pki)
    outcomes = ensure_all(pki, ClusterConfig(), NODE, IP)
    assert [o.created for o in outcomes] == [False] * len(outcomes)
    assert _snapshot(pki) == before


def test_missing_leaf_is_recreated_alone(pki: Path):
    (pki / "front-proxy-client.crt").unlink()
    (pki / "front-proxy-client.key").unlink()
    created = [o.name for o in ensure_all(pki, ClusterConfig(), NODE, IP) if o.created]
    assert created == ["front-proxy-client"]
    verify(pki / "front-proxy-ca.crt", pki / "front-proxy-client.crt")


def _err(fn, *args, **kw) -> str:
    with pytest.raises(UserError) as exc:
        fn(*args, **kw)
    line = exc.value.line()
    assert "\n" not in line
    return line


def test_key_that_does_not_match_is_an_error(pki: Path):
    shutil.copy(pki / "front-proxy-client.key", pki / "apiserver.key")
    before = _snapshot(pki)
    line = _err(ensure_all, pki, ClusterConfig(), NODE, IP)
    assert str(pki / "apiserver.crt") in line and "does not match" in line and "delete" in line
    assert _snapshot(pki) == before  # nothing overwritten


def test_cert_not_signed_by_present_ca_is_an_error(pki: Path, tmp_path: Path):
    other = tmp_path / "other"
    ensure_cas(other, ClusterConfig())
    for f in ("ca.crt", "ca.key"):
        shutil.copy(other / f, pki / f)
    line = _err(ensure_leaf, "apiserver-kubelet-client", pki, None, ClusterConfig())
    assert "apiserver-kubelet-client.crt" in line and "not signed by the CA" in line


def test_missing_sans_is_an_error(pki: Path):
    line = _err(ensure_leaf, "apiserver", pki, None, ClusterConfig(), "cp-2", IP)
    assert "lacks SANs cp-2" in line and "apiserver.crt" in line


def _expired_leaf(pki: Path) -> None:
    ca_cert = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    t = datetime.now(UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver-kubelet-client")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(t - timedelta(days=10)).not_valid_after(t - timedelta(days=1))
            .sign(ca_key, hashes.SHA256()))
    (pki / "apiserver-kubelet-client.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (pki / "apiserver-kubelet-client.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def test_expired_leaf_is_an_error_pointing_at_renew(pki: Path):
    _expired_leaf(pki)
    line = _err(ensure_leaf, "apiserver-kubelet-client", pki, None, ClusterConfig())
    assert "expired" in line and "bootstrap certs renew apiserver-kubelet-client" in line


def test_half_pairs_are_errors(pki: Path):
    (pki / "apiserver.key").unlink()
    assert "without its key" in _err(ensure_leaf, "apiserver", pki, None, ClusterConfig(), NODE, IP)
    (pki / "apiserver.crt").unlink()
    (pki / "front-proxy-client.crt").unlink()
    assert "without its certificate" in _err(ensure_leaf, "front-proxy-client", pki, None,
                                             ClusterConfig())
    (pki / "sa.key").unlink()
    assert "sa.pub" in _err(ensure_sa_key, pki, ClusterConfig())


def test_garbage_files_are_one_line_errors(pki: Path):
    (pki / "apiserver.crt").write_text("not a certificate\n")
    assert "cannot parse certificate" in _err(ensure_leaf, "apiserver", pki, None, ClusterConfig(),
                                              NODE, IP)
    (pki / "ca.key").write_text("junk")
    assert "cannot parse private key" in _err(ensure_ca, "ca", pki, ClusterConfig())


def test_external_ca_reuses_valid_leaves_and_refuses_to_sign(pki: Path):
    (pki / "ca.key").unlink()
    outcomes = ensure_all(pki, ClusterConfig(), NODE, IP)
    assert not any(o.created for o in outcomes)
    (pki / "apiserver.crt").unlink()
    (pki / "apiserver.key").unlink()
    line = _err(ensure_leaf, "apiserver", pki, None, ClusterConfig(), NODE, IP)
    assert "external CA mode" in line and "ca.crt" in line
    assert not (pki / "apiserver.crt").exists()


def test_ca_key_without_cert_is_an_error(tmp_path: Path):
    ensure_cas(tmp_path, ClusterConfig())
    (tmp_path / "ca.crt").unlink()
    assert "without its certificate" in _err(ensure_ca, "ca", tmp_path, ClusterConfig())


def test_per_node_leaf_needs_node(tmp_path: Path):
    ensure_cas(tmp_path, ClusterConfig())
    assert "--advertise-address" in _err(ensure_leaf, "etcd-server", tmp_path, None, ClusterConfig())
    assert "not an IP" in _err(ensure_leaf, "etcd-server", tmp_path, None, ClusterConfig(),
                               NODE, "not-an-ip")


def test_multi_node_leaves_from_shared_cas(tmp_path: Path):
    shared = tmp_path / "cluster"
    cfg = ClusterConfig()
    ensure_cas(shared, cfg)
    nodes = {"cp-1": "10.0.0.1", "cp-2": "10.0.0.2", "cp-3": "10.0.0.3"}
    for name, ip in nodes.items():
        for leaf in ("apiserver", "etcd-server", "etcd-peer", "apiserver-etcd-client"):
            ensure_leaf(leaf, tmp_path / name, shared, cfg, name, ip)
    for name, ip in nodes.items():
        node_dir = tmp_path / name
        assert not (node_dir / "ca.crt").exists()  # CAs stay in the shared dir
        verify(shared / "ca.crt", node_dir / "apiserver.crt")
        verify(shared / "etcd/ca.crt", node_dir / "etcd/peer.crt")
        assert subject(node_dir / "etcd/server.crt") == f"subject=CN={name}"
        assert f"IP Address:{ip}" in _sans(node_dir / "etcd/peer.crt")


def test_external_etcd_skips_etcd_certs(tmp_path: Path):
    cfg = ClusterConfig(etcd=Etcd(local=None, external=ExternalEtcd(
        endpoints=("https://10.0.0.9:2379",), ca_file="/x/ca.crt", cert_file="/x/c.crt",
        key_file="/x/c.key")))
    ensure_all(tmp_path, cfg, NODE, IP)
    assert not (tmp_path / "etcd").exists()
    assert not (tmp_path / "apiserver-etcd-client.crt").exists()
    assert (tmp_path / "front-proxy-client.crt").exists()


def test_writes_are_atomic_no_temp_files_left(pki: Path):
    assert not [p for p in pki.rglob(".*") if p.is_file()]
    assert os.access(pki / "ca.key", os.R_OK)


def test_expired_ca_is_an_error(tmp_path: Path):
    # validity shorter than the 5-minute backdate: the CA is already expired
    ensure_ca("ca", tmp_path, ClusterConfig(ca_certificate_validity_period=timedelta(minutes=1)))
    before = _snapshot(tmp_path)
    line = _err(ensure_ca, "ca", tmp_path, ClusterConfig())
    assert "CA certificate expired" in line and str(tmp_path / "ca.crt") in line
    assert _snapshot(tmp_path) == before
