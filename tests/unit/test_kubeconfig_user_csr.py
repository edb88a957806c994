"""`bootstrap kubeconfig user` and `bootstrap certs generate-csr`, as kubeadm's."""

from __future__ import annotations

import base64
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from openssl_readback import openssl, verify

from bootstrap.cli import main
from bootstrap.config.model import ClusterConfig
from bootstrap.pki import catalog

NODE = ["--node-name", "cp-1", "--advertise-address", "10.0.0.11"]
SERVER = "https://10.0.0.11:6443"


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    d = tmp_path / "pki"
    assert run("init", "phase", "certs", "all", "--cert-dir", str(d), *NODE).exit_code == 0
    return d


def client_of(kubeconfig: str) -> tuple[dict, x509.Certificate, object]:
    doc = yaml.safe_load(kubeconfig)
    user = doc["users"][0]["user"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))
    key = serialization.load_pem_private_key(base64.b64decode(user["client-key-data"]), None)
    return doc, cert, key


def test_user_kubeconfig_is_signed_by_the_cluster_ca(pki, tmp_path):
    res = run("kubeconfig", "user", "--client-name", "jane", "--org", "dev", "--org", "ops,qa",
              "--cert-dir", str(pki), "--server", SERVER)
    assert res.exit_code == 0, res.output
    doc, cert, key = client_of(res.output)
    assert doc["current-context"] == "jane@kubernetes"
    assert doc["clusters"][0]["cluster"]["server"] == SERVER
    ca_pem = base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"])
    assert ca_pem.strip() == (pki / "ca.crt").read_bytes().strip()
    subject = cert.subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "jane"
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == \
        ["dev", "ops", "qa"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert cert.public_key().public_bytes(*der) == key.public_key().public_bytes(*der)
    left = cert.not_valid_after_utc - datetime.now(UTC)
    assert timedelta(days=364) < left <= timedelta(days=365)
    # Checked by openssl, not by our code: the chain ends at the cluster CA.
    leaf = tmp_path / "jane.crt"
    leaf.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    verify(pki / "ca.crt", leaf)


def test_validity_period_and_endpoint_from_the_config(pki, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
                   "clusterName: prod\ncontrolPlaneEndpoint: api.prod.example:8443\n")
    res = run("kubeconfig", "user", "--client-name", "ci", "--config", str(cfg), "--cert-dir",
              str(pki), "--validity-period", "24h")
    assert res.exit_code == 0, res.output
    doc, cert, _ = client_of(res.output)
    assert doc["clusters"][0]["name"] == "prod"
    assert doc["clusters"][0]["cluster"]["server"] == "https://api.prod.example:8443"
    assert cert.not_valid_after_utc - datetime.now(UTC) <= timedelta(hours=24)


def test_user_kubeconfig_for_an_inventory_made_by_cluster_up(tmp_path):
    from test_cluster_up_flow import INVENTORY, Connector

    from bootstrap.flows import cluster_up as cu

    inv = tmp_path / "hosts.yaml"
    inv.write_text(INVENTORY)
    cu.cluster_up(str(inv), tags="pki,loadbalancer", connect=Connector())
    admin = yaml.safe_load((tmp_path / "artifacts" / "admin.conf").read_text())
    res = run("kubeconfig", "user", "-i", str(inv), "--client-name", "bob")
    assert res.exit_code == 0, res.output
    doc, cert, _ = client_of(res.output)
    assert doc["clusters"][0]["cluster"] == admin["clusters"][0]["cluster"]  # same CA, server
    leaf = tmp_path / "bob.crt"
    leaf.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    verify(tmp_path / "artifacts" / "pki" / "ca.crt", leaf)


@pytest.mark.parametrize("args, needle", [
    (["--client-name", "", "--server", SERVER], "is not a user name"),
    (["--client-name", "x", "--server", "http://10.0.0.1:6443"], "not an https:// URL"),
    (["--client-name", "x", "--server", SERVER, "--validity-period", "soon"],
     "--validity-period"),
    (["--client-name", "x", "--server", SERVER, "--validity-period", "-1h"], "positive"),
    (["--client-name", "x"], "no API server"),
    (["--server", SERVER], "Missing option '--client-name'"),
])
def test_bad_input_is_one_line_exit_2(pki, args, needle):
    res = run("kubeconfig", "user", "--cert-dir", str(pki), *args)
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output


def test_no_ca_or_no_ca_key_is_refused(tmp_path, pki):
    res = run("kubeconfig", "user", "--client-name", "x", "--cert-dir", str(tmp_path / "none"),
              "--server", SERVER)
    assert res.exit_code == 2 and "ca" in res.output
    (pki / "ca.key").unlink()  # external CA mode: nothing here may sign
    res = run("kubeconfig", "user", "--client-name", "x", "--cert-dir", str(pki),
              "--server", SERVER)
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "client-certificate-data" not in res.output


def _csr(path: Path) -> x509.CertificateSigningRequest:
    return x509.load_pem_x509_csr(path.read_bytes())


def test_generate_csr_writes_keys_and_csrs_for_every_certificate(tmp_path):
    d, k = tmp_path / "pki", tmp_path / "kube"
    res = run("certs", "generate-csr", "--cert-dir", str(d), "--kubeconfig-dir", str(k), *NODE)
    assert res.exit_code == 0, res.output
    node = catalog.Node("cp-1", "10.0.0.11")
    for name, leaf in catalog.LEAVES.items():
        csr = _csr(d / f"{leaf.base}.csr")
        assert csr.is_signature_valid
        spec = catalog.leaf_spec(name, ClusterConfig(), node if leaf.per_node else None)
        assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == \
            spec.common_name
        if spec.dns_names:
            sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert set(sans.get_values_for_type(x509.DNSName)) == set(spec.dns_names)
            assert set(sans.get_values_for_type(x509.IPAddress)) == set(spec.ips)
        key = d / leaf.key
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        # The key is the CSR's: openssl agrees.
        assert openssl("req", "-in", str(d / f"{leaf.base}.csr"), "-noout", "-pubkey") == \
            openssl("pkey", "-in", str(key), "-pubout")
    assert not (d / "ca.key").exists() and not (d / "ca.crt").exists()  # the CA is external
    for f in ("admin.conf", "super-admin.conf", "kubelet.conf", "controller-manager.conf",
              "scheduler.conf"):
        csr = _csr(k / f"{f}.csr")
        doc = yaml.safe_load((k / f).read_text())
        user = doc["users"][0]["user"]
        assert set(user) == {"client-key-data"}  # the signed certificate comes later
        key = serialization.load_pem_private_key(base64.b64decode(user["client-key-data"]), None)
        der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        assert csr.public_key().public_bytes(*der) == key.public_key().public_bytes(*der)
        assert stat.S_IMODE((k / f).stat().st_mode) == 0o600
    admin = _csr(k / "admin.conf.csr").subject
    assert admin.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == \
        "kubeadm:cluster-admins"
    assert "[certs] Generated CSR and key for apiserver" in res.output


def test_generate_csr_again_keeps_matching_pairs_and_refuses_half_pairs(tmp_path):
    d, k = tmp_path / "pki", tmp_path / "kube"
    args = ["certs", "generate-csr", "--cert-dir", str(d), "--kubeconfig-dir", str(k), *NODE]
    assert run(*args).exit_code == 0
    before = (d / "apiserver.key").read_bytes(), (k / "admin.conf").read_bytes()
    res = run(*args)
    assert res.exit_code == 0 and "Using the existing CSR and key for apiserver" in res.output
    assert ((d / "apiserver.key").read_bytes(), (k / "admin.conf").read_bytes()) == before
    (d / "front-proxy-client.csr").unlink()
    res = run(*args)
    assert res.exit_code == 2 and "front-proxy-client.key exists without its CSR" in res.output
    (d / "front-proxy-client.key").unlink()
    (d / "apiserver.key").write_bytes((d / "etcd" / "peer.key").read_bytes())
    res = run(*args)
    assert res.exit_code == 2 and "does not match its key" in res.output


def test_generate_csr_with_external_etcd_has_no_etcd_requests(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
                   "etcd:\n  external:\n    endpoints: [https://10.0.0.20:2379]\n"
                   "    caFile: /etc/etcd/ca.crt\n    certFile: /etc/etcd/c.crt\n"
                   "    keyFile: /etc/etcd/c.key\n")
    d = tmp_path / "pki"
    res = run("certs", "generate-csr", "--cert-dir", str(d), "--kubeconfig-dir",
              str(tmp_path / "k"), "--config", str(cfg), *NODE)
    assert res.exit_code == 0, res.output
    assert (d / "apiserver.csr").exists() and not (d / "etcd").exists()
    assert not (d / "apiserver-etcd-client.csr").exists()


def test_generate_csr_bad_address_writes_nothing(tmp_path):
    res = run("certs", "generate-csr", "--cert-dir", str(tmp_path / "pki"), "--kubeconfig-dir",
              str(tmp_path / "k"), "--node-name", "cp-1", "--advertise-address", "not-an-ip")
    assert res.exit_code == 2 and "not an IP address" in res.output
    assert not (tmp_path / "pki").exists() and not (tmp_path / "k").exists()


def test_the_api_servers_authenticator_sees_the_user_and_refuses_another_clusters(tmp_path, pki):
    from bootstrap.agents.apiserver.auth.authn import Authenticator

    other = tmp_path / "other"
    assert run("init", "phase", "certs", "ca", "--cert-dir", str(other)).exit_code == 0
    authn = Authenticator(client_ca_file=pki / "ca.crt")
    mine = run("kubeconfig", "user", "--client-name", "jane", "--org", "dev", "--cert-dir",
               str(pki), "--server", SERVER)
    user = authn.authenticate_certificate(client_of(mine.output)[1])
    assert user is not None and user.name == "jane"
    assert set(user.groups) == {"dev", "system:authenticated"}
    # Same name and groups, signed by another cluster's CA: not this cluster's user.
    forged = run("kubeconfig", "user", "--client-name", "jane", "--org", "dev", "--cert-dir",
                 str(other), "--server", SERVER)
    assert forged.exit_code == 0, forged.output
    assert authn.authenticate_certificate(client_of(forged.output)[1]) is None
