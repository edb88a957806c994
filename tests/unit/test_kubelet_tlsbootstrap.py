"""TLS bootstrap through FakeClient: CSR shape, waiting for the signer, files written."""

from __future__ import annotations

import asyncio
import base64
import os
from datetime import timedelta

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bootstrap.agents.kubelet import tlsbootstrap as tb
from bootstrap.api.fake import FakeClient
from bootstrap.config.model import ClusterConfig
from bootstrap.pki import CLIENT_AUTH, CertSpec, ensure_cas, load_ca
from bootstrap.pki.certs import cert_to_pem, sign_leaf

CSRS = "certificatesigningrequests"


@pytest.fixture
def ca(tmp_path):
    ensure_cas(tmp_path / "pki", ClusterConfig())
    return load_ca(tmp_path / "pki", "ca")


async def signer(client: FakeClient, ca, *, deny: bool = False, hours: float = 1.0):
    """The controller manager's approver + signer, reduced to what the test needs."""
    while True:
        for csr in client.objects(CSRS):
            if (csr.get("status") or {}).get("conditions"):
                continue
            req = x509.load_pem_x509_csr(base64.b64decode(csr["spec"]["request"]))
            cn = req.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
            status: dict = {"conditions": [{"type": "Denied" if deny else "Approved",
                                            "status": "True", "message": "by the test"}]}
            if not deny:
                usage = ExtendedKeyUsageOID.SERVER_AUTH \
                    if csr["spec"]["signerName"] == tb.SERVING_SIGNER else CLIENT_AUTH
                cert = sign_leaf(CertSpec(cn, ("system:nodes",), (usage,)), req.public_key(),
                                 ca.cert, ca.key, timedelta(hours=hours))
                status["certificate"] = base64.b64encode(cert_to_pem(cert)).decode()
            csr["status"] = status
            await client.update(("certificates.k8s.io", "v1", CSRS), csr,
                                subresource="status")
        await asyncio.sleep(0.01)


def bootstrap_kubeconfig(tmp_path) -> object:
    path = tmp_path / "bootstrap-kubelet.conf"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "b",
        "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443",
                                               "certificate-authority": "ca.crt"}}],
        "contexts": [{"name": "b", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "abcdef.0123456789abcdef"}}]}))
    return path


async def test_bootstrap_writes_cert_current_link_and_kubeconfig(tmp_path, ca):
    client = FakeClient()
    task = asyncio.create_task(signer(client, ca))
    try:
        current = await asyncio.wait_for(tb.bootstrap_client_cert(
            lambda _path: client, "node-1", bootstrap_kubeconfig(tmp_path),
            tmp_path / "kubelet.conf", tmp_path / "pki-node"), 10)
    finally:
        task.cancel()
    csr = client.objects(CSRS)[0]
    assert csr["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"
    assert csr["spec"]["usages"] == ["digital signature", "client auth"]
    req = x509.load_pem_x509_csr(base64.b64decode(csr["spec"]["request"]))
    assert req.subject.rfc4514_string() == "CN=system:node:node-1,O=system:nodes"
    assert current.name == "kubelet-client-current.pem" and current.is_symlink()
    assert os.readlink(current).startswith("kubelet-client-2")
    assert current.resolve().stat().st_mode & 0o777 == 0o600
    data = current.read_bytes()
    assert b"BEGIN CERTIFICATE" in data and b"PRIVATE KEY" in data
    cfg = yaml.safe_load((tmp_path / "kubelet.conf").read_text())
    user = cfg["users"][0]["user"]
    assert user == {"client-certificate": str(current), "client-key": str(current)}
    cluster = cfg["clusters"][0]["cluster"]
    assert cluster["server"] == "https://10.0.0.1:6443"
    assert cluster["certificate-authority"] == str((tmp_path / "ca.crt").resolve())
    assert tb.kubeconfig_usable(tmp_path / "kubelet.conf")


async def test_denied_csr_is_an_error(tmp_path, ca):
    client = FakeClient()
    task = asyncio.create_task(signer(client, ca, deny=True))
    try:
        with pytest.raises(tb.BootstrapError, match="was denied"):
            await asyncio.wait_for(tb.bootstrap_client_cert(
                lambda _p: client, "node-1", bootstrap_kubeconfig(tmp_path),
                tmp_path / "kubelet.conf", tmp_path / "pki-node"), 10)
    finally:
        task.cancel()
    assert not (tmp_path / "kubelet.conf").exists()


async def test_serving_cert_rotation_with_sans(tmp_path, ca):
    client = FakeClient()
    rotated = []
    mgr = tb.CertificateManager(client, "node-1", tmp_path, "kubelet-server", tb.SERVING_SIGNER,
                                tb.SERVING_USAGES, dns=["node-1"], ips=["10.0.0.5"],
                                on_rotate=rotated.append)
    task = asyncio.create_task(signer(client, ca))
    try:
        path = await asyncio.wait_for(mgr.ensure(), 10)
        assert rotated == [path]
        again = await mgr.ensure()          # fresh: no new CSR
        assert len(client.objects(CSRS)) == 1 and again == path
    finally:
        task.cancel()
    csr = client.objects(CSRS)[0]
    req = x509.load_pem_x509_csr(base64.b64decode(csr["spec"]["request"]))
    sans = req.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["node-1"]
    assert [str(i) for i in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    assert csr["spec"]["usages"] == ["digital signature", "server auth"]


def test_rotation_due_at_80_percent(tmp_path, ca):
    key = tb.new_key()
    cert = sign_leaf(CertSpec("system:node:n", ("system:nodes",), (CLIENT_AUTH,)),
                     key.public_key(), ca.cert, ca.key, timedelta(days=10))
    start = cert.not_valid_before_utc.timestamp()
    end = cert.not_valid_after_utc.timestamp()
    at = start + 0.8 * (end - start)
    assert tb.rotation_due(cert, at - 100) == pytest.approx(100)
    assert tb.rotation_due(cert, at + 1) == 0


def test_unusable_kubeconfigs(tmp_path):
    assert not tb.kubeconfig_usable(tmp_path / "missing")
    (tmp_path / "k").write_text("users: []\n")
    assert not tb.kubeconfig_usable(tmp_path / "k")
    (tmp_path / "k").write_text(yaml.safe_dump({"users": [{"name": "u", "user": {
        "client-certificate": str(tmp_path / "nope.pem")}}]}))
    assert not tb.kubeconfig_usable(tmp_path / "k")


def _leaf(ca, hours: float, usage=CLIENT_AUTH):
    key = tb.new_key()
    cert = sign_leaf(CertSpec("system:node:n", ("system:nodes",), (usage,)), key.public_key(),
                     ca.cert, ca.key, timedelta(hours=hours))
    return cert, key


def test_rotation_deadline_is_drawn_between_70_and_90_percent(ca):
    cert, _ = _leaf(ca, 240)
    start = cert.not_valid_before_utc.timestamp()
    life = cert.not_valid_after_utc.timestamp() - start
    assert tb.rotation_deadline(cert, 0.0) == pytest.approx(start + 0.7 * life)
    assert tb.rotation_deadline(cert, 0.5) == pytest.approx(start + 0.8 * life)
    assert tb.rotation_deadline(cert, 0.999999) == pytest.approx(start + 0.9 * life)


def test_the_deadline_is_drawn_once_per_certificate(tmp_path, ca):
    draws = iter([0.0, 0.9, 0.5])
    mgr = tb.CertificateManager(FakeClient(), "n", tmp_path, "kubelet-client", tb.CLIENT_SIGNER,
                                tb.CLIENT_USAGES, rand=lambda: next(draws))
    first, _ = _leaf(ca, 10)
    once = mgr.deadline(first)
    assert mgr.deadline(first) == once  # asking again does not re-roll the dice
    second, _ = _leaf(ca, 10)
    assert mgr.deadline(second) == pytest.approx(tb.rotation_deadline(second, 0.9))


async def test_client_cert_rotates_via_csr_at_its_deadline_on_a_fake_clock(tmp_path, ca):
    """The manager sleeps (at most an hour at a time) until the drawn deadline, sends
    no CSR before it, then rotates with the node's own identity and reloads."""
    cert, key = _leaf(ca, 10)
    tb.store_pair(tmp_path, "kubelet-client", cert_to_pem(cert), tb.key_pem(key))
    now = [cert.not_valid_before_utc.timestamp() + 60]
    sleeps: list[float] = []
    seen_at: list[float] = []
    client = FakeClient()
    rotated = asyncio.Event()

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if not client.objects(CSRS):
            seen_at.append(now[0])
        now[0] += seconds
        await asyncio.sleep(0)

    mgr = tb.CertificateManager(client, "n", tmp_path, "kubelet-client", tb.CLIENT_SIGNER,
                                tb.CLIENT_USAGES, clock=lambda: now[0], rand=lambda: 0.25,
                                sleep=fake_sleep, on_rotate=lambda p: rotated.set())
    deadline = tb.rotation_deadline(cert, 0.25)
    # The new certificate lives long enough that the fake clock never reaches its deadline.
    signing = asyncio.create_task(signer(client, ca, hours=1000))
    loop = asyncio.create_task(mgr.run())
    try:
        await asyncio.wait_for(rotated.wait(), 30)
    finally:
        loop.cancel()
        signing.cancel()
        await asyncio.gather(loop, signing, return_exceptions=True)
    assert all(s <= 3600 for s in sleeps)
    assert now[0] >= deadline and max(seen_at) < deadline
    csrs = client.objects(CSRS)
    assert len(csrs) == 1 and csrs[0]["spec"]["signerName"] == tb.CLIENT_SIGNER
    new = tb.load_cert(tmp_path / "kubelet-client-current.pem")
    assert new.serial_number != cert.serial_number
    assert new.public_key() != cert.public_key()  # a new key for every certificate


async def test_no_serving_certificate_yet_fails_handshakes_until_one_is_loaded(tmp_path, ca):
    import ssl

    from bootstrap.agents.kubelet import server as srv

    ctx = srv.server_context(None, None, "")
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    client_ctx = ssl.create_default_context()
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    try:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _r, w = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=client_ctx), 10)
            w.close()
        cert, key = _leaf(ca, 1, ExtendedKeyUsageOID.SERVER_AUTH)
        path = tb.store_pair(tmp_path, "kubelet-server", cert_to_pem(cert), tb.key_pem(key))
        from bootstrap.agents.kubelet import _reload_serving_cert

        _reload_serving_cert(ctx, path)
        _r, w = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=client_ctx), 10)
        peer = w.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert x509.load_der_x509_certificate(peer).serial_number == cert.serial_number
        w.close()
    finally:
        server.close()
        await server.wait_closed()
