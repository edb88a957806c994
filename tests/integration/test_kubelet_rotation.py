"""Kubelet client certificate rotation against the real API server and controller
manager: a node whose client certificate lives one minute renews it through a CSR
with its own identity (approved as selfnodeclient, signed by csrsigning) before it
expires, and the kubeconfig it uses keeps working with the new one."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bootstrap.agents.kubelet import tlsbootstrap as tb
from bootstrap.api.client import Client
from bootstrap.pki import load_ca
from bootstrap.pki.certs import cert_to_pem
from bootstrap.pki.keys import signature_hash

from .cluster import ROOT, free_port, running_cluster

pytestmark = pytest.mark.timeout(300)

NODE = "rot-1"
LIFETIME = timedelta(seconds=60)


def short_lived(ca, key) -> x509.Certificate:
    """The node's client certificate as csrsigning makes it, but a minute long."""
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{NODE}")])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(ca.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + LIFETIME)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .sign(ca.key, signature_hash()))


@pytest.fixture
def cluster():
    with running_cluster() as c:
        kc = c.kubeconfig("system:kube-controller-manager")
        log = open(c.base / "cm.log", "wb")
        p = c.pki
        proc = subprocess.Popen([
            sys.executable, "-m", "bootstrap.agents.controllers", f"--kubeconfig={kc}",
            "--controllers=csrsigning,csrapproving", "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}", f"--cluster-signing-cert-file={p.path('ca.crt')}",
            f"--cluster-signing-key-file={p.path('ca.key')}", "--leader-elect=false"],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            yield c
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            log.close()


def test_short_lived_client_certificate_is_rotated_before_it_expires(cluster, tmp_path):
    ca = load_ca(cluster.pki.dir, "ca")
    key = tb.new_key()
    old = short_lived(ca, key)
    cert_dir = tmp_path / "pki"
    current = tb.store_pair(cert_dir, "kubelet-client", cert_to_pem(old), tb.key_pem(key))
    # The kubelet's own kubeconfig shape: client-certificate and -key name the current file.
    boot = tmp_path / "bootstrap-kubelet.conf"
    boot.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": cluster.server.url,
                                               "certificate-authority": cluster.pki.path(
                                                   "ca.crt")}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "unused"}}]}))
    kubeconfig = tmp_path / "kubelet.conf"
    tb.write_kubeconfig(kubeconfig, boot, current)

    async def rotate_once():
        client = Client.from_kubeconfig(kubeconfig)
        rotated = asyncio.Event()
        mgr = tb.CertificateManager(client, NODE, cert_dir, "kubelet-client", tb.CLIENT_SIGNER,
                                    tb.CLIENT_USAGES, on_rotate=lambda p: rotated.set())
        task = asyncio.create_task(mgr.run())
        try:
            await asyncio.wait_for(rotated.wait(), 240)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await client.close()
        # A fresh client from the same kubeconfig authenticates with the new certificate.
        again = Client.from_kubeconfig(kubeconfig)
        try:
            csrs = await again.list(tb.CSRS)
        finally:
            await again.close()
        return csrs

    csrs = asyncio.run(rotate_once())
    new = tb.load_cert(cert_dir / "kubelet-client-current.pem")
    assert new.serial_number != old.serial_number and new.public_key() != old.public_key()
    assert new.subject == old.subject and new.issuer == ca.cert.subject
    assert new.not_valid_after_utc > old.not_valid_after_utc + timedelta(days=1)
    mine = [c for c in csrs["items"] if c["spec"]["username"] == f"system:node:{NODE}"]
    assert len(mine) == 1 and mine[0]["spec"]["signerName"] == tb.CLIENT_SIGNER
    # Asked for with the old certificate while it was still valid (a node whose
    # certificate had expired could not have authenticated its CSR at all).
    created = datetime.fromisoformat(mine[0]["metadata"]["creationTimestamp"].replace(
        "Z", "+00:00"))
    assert created < old.not_valid_after_utc
    conds = {c["type"] for c in mine[0]["status"]["conditions"]}
    assert "Approved" in conds
