"""Kubelet TLS bootstrap and certificate rotation (pkg/kubelet/certificate/bootstrap).

With only a bootstrap kubeconfig (a bootstrap token): a new ECDSA P-256 key, a
CSR for ``CN=system:node:<node>, O=system:nodes`` to the signer
kubernetes.io/kube-apiserver-client-kubelet, wait until it is approved and
signed, write ``kubelet-client-<stamp>.pem`` (certificate and key) in the cert
dir with ``kubelet-client-current.pem`` pointing at it, and a kubeconfig at
--kubeconfig whose client-certificate and client-key both name the current
file, as upstream. Rotation requests a new certificate with the node's own
credentials at a random point between 70% and 90% of the certificate's
lifetime, drawn once per certificate (upstream's jitteryDuration), so nodes
that joined together do not all renew at once. The serving certificate
(serverTLSBootstrap) goes the same way through the
kubernetes.io/kubelet-serving signer with the node's names and IPs as SANs;
until one is issued the kubelet serves nothing on its port but keeps running
(upstream: "no serving certificate available"), since nothing approves
serving CSRs by default.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
import os
import random
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bootstrap.api.errors import APIError

log = logging.getLogger(__name__)

CSRS = ("certificates.k8s.io", "v1", "certificatesigningrequests")
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
SERVING_SIGNER = "kubernetes.io/kubelet-serving"
CLIENT_USAGES = ["digital signature", "client auth"]
SERVING_USAGES = ["digital signature", "server auth"]
# The rotation deadline is notBefore + (ROTATE_FROM + ROTATE_SPREAD * u) * lifetime,
# u uniform in [0, 1): upstream's wait.Jitter(total, 0.2) - 0.3 * total.
ROTATE_FROM = 0.7
ROTATE_SPREAD = 0.2


class BootstrapError(Exception):
    pass


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def csr_pem(key, node: str, *, dns: list[str] = (), ips: list[str] = ()) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node}")])
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i))
                                             for i in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def csr_object(request_pem: bytes, signer: str, usages: list[str],
               expiration_seconds: int | None = None) -> dict:
    spec = {"request": base64.b64encode(request_pem).decode(), "signerName": signer,
            "usages": usages}
    if expiration_seconds:
        spec["expirationSeconds"] = expiration_seconds
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": "csr-" + secrets.token_hex(4)}, "spec": spec}


async def request_certificate(client, csr: dict, *, timeout: float = 900.0,
                              poll: float = 1.0) -> bytes:
    """Create the CSR and wait for the signed certificate (PEM)."""
    created = await client.create(CSRS, csr)
    name = created["metadata"]["name"]
    log.info("waiting for certificate signing request %s to be approved and signed", name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj = await client.get(CSRS, name)
        status = obj.get("status") or {}
        for cond in status.get("conditions") or []:
            if cond.get("type") in ("Denied", "Failed") and cond.get("status", "True") == "True":
                raise BootstrapError(f"certificate signing request {name} was "
                                     f"{cond['type'].lower()}: {cond.get('message', '')}")
        if status.get("certificate"):
            return base64.b64decode(status["certificate"])
        await asyncio.sleep(poll)
    raise BootstrapError(f"timed out waiting for certificate signing request {name}")


def _stamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%d-%H-%M-%S")


def store_pair(cert_dir: Path, prefix: str, cert: bytes, key: bytes,
               now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Path:
    """``<prefix>-<stamp>.pem`` (0600, cert then key) and ``<prefix>-current.pem``
    linked to it, replaced atomically."""
    cert_dir.mkdir(parents=True, exist_ok=True)
    path = cert_dir / f"{prefix}-{_stamp(now())}.pem"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(cert + (b"" if cert.endswith(b"\n") else b"\n") + key)
    current = cert_dir / f"{prefix}-current.pem"
    tmp = cert_dir / f".{prefix}-current.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(path.name, tmp)
    os.replace(tmp, current)
    return current


def load_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def rotation_deadline(cert: x509.Certificate, u: float) -> float:
    """When (epoch seconds) to rotate ``cert``; ``u`` in [0, 1) picks the point in
    the 70-90% window of its lifetime."""
    start = cert.not_valid_before_utc.timestamp()
    end = cert.not_valid_after_utc.timestamp()
    return start + (ROTATE_FROM + ROTATE_SPREAD * u) * (end - start)


def rotation_due(cert: x509.Certificate, now: float, u: float = 0.5) -> float:
    """Seconds until the certificate should be rotated (0 when due)."""
    return max(0.0, rotation_deadline(cert, u) - now)


def write_kubeconfig(path: Path, bootstrap_kubeconfig: Path, cert_file: Path) -> None:
    """A kubeconfig with the bootstrap kubeconfig's cluster and the node's cert."""
    boot = yaml.safe_load(bootstrap_kubeconfig.read_text()) or {}
    ctx_name = boot.get("current-context")
    ctx = next((c["context"] for c in boot.get("contexts") or [] if c["name"] == ctx_name), {})
    cluster = next((c["cluster"] for c in boot.get("clusters") or []
                    if c["name"] == ctx.get("cluster")), None)
    if cluster is None:
        raise BootstrapError(f"{bootstrap_kubeconfig}: no cluster in the current context")
    cluster = dict(cluster)
    ca = cluster.get("certificate-authority")
    if ca and not os.path.isabs(ca):
        cluster["certificate-authority"] = str((bootstrap_kubeconfig.parent / ca).resolve())
    config = {"apiVersion": "v1", "kind": "Config",
              "clusters": [{"name": "default-cluster", "cluster": cluster}],
              "contexts": [{"name": "default-context",
                            "context": {"cluster": "default-cluster", "namespace": "default",
                                        "user": "default-auth"}}],
              "current-context": "default-context",
              "users": [{"name": "default-auth",
                         "user": {"client-certificate": str(cert_file),
                                  "client-key": str(cert_file)}}]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(config, fh)
    os.replace(tmp, path)


def kubeconfig_usable(path: Path) -> bool:
    """An existing kubeconfig whose client certificate is still valid."""
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return False
    users = cfg.get("users") or []
    if not users:
        return False
    user = users[0].get("user") or {}
    if user.get("token") or user.get("client-certificate-data"):
        return True
    cert_path = user.get("client-certificate")
    if not cert_path:
        return False
    cert = load_cert(Path(cert_path) if os.path.isabs(cert_path) else path.parent / cert_path)
    return cert is not None and cert.not_valid_after_utc.timestamp() > time.time()


async def bootstrap_client_cert(make_client, node: str, bootstrap_kubeconfig: Path,
                                kubeconfig: Path, cert_dir: Path) -> Path:
    """Run TLS bootstrap with the bootstrap credentials; returns the current cert path."""
    client = make_client(bootstrap_kubeconfig)
    try:
        key = new_key()
        cert = await request_certificate(
            client, csr_object(csr_pem(key, node), CLIENT_SIGNER, CLIENT_USAGES))
    finally:
        await client.close()
    current = store_pair(cert_dir, "kubelet-client", cert, key_pem(key))
    write_kubeconfig(kubeconfig, bootstrap_kubeconfig, current)
    log.info("TLS bootstrap done: %s", current)
    return current


async def rotate(client, node: str, cert_dir: Path, prefix: str, signer: str,
                 usages: list[str], *, dns: list[str] = (), ips: list[str] = ()) -> Path:
    """One new certificate through a CSR made with the node's current identity."""
    key = new_key()
    cert = await request_certificate(
        client, csr_object(csr_pem(key, node, dns=dns, ips=ips), signer, usages))
    return store_pair(cert_dir, prefix, cert, key_pem(key))


class CertificateManager:
    """Keeps ``<prefix>-current.pem`` fresh; ``on_rotate`` reloads its users."""

    def __init__(self, client, node: str, cert_dir: Path, prefix: str, signer: str,
                 usages: list[str], *, dns: list[str] = (), ips: list[str] = (),
                 on_rotate: Callable[[Path], None] = lambda p: None,
                 clock: Callable[[], float] = time.time,
                 rand: Callable[[], float] = random.random,
                 sleep: Callable[[float], object] = asyncio.sleep):
        self.client = client
        self.node = node
        self.cert_dir = cert_dir
        self.prefix = prefix
        self.signer = signer
        self.usages = usages
        self.dns = list(dns)
        self.ips = list(ips)
        self.on_rotate = on_rotate
        self.clock = clock
        self.rand = rand
        self.sleep = sleep
        self._deadline: tuple[int, float] | None = None  # (serial, when), one draw per cert

    @property
    def current(self) -> Path:
        return self.cert_dir / f"{self.prefix}-current.pem"

    def deadline(self, cert: x509.Certificate) -> float:
        if self._deadline is None or self._deadline[0] != cert.serial_number:
            self._deadline = (cert.serial_number, rotation_deadline(cert, self.rand()))
            log.info("%s expires %s, rotation deadline %s", self.prefix,
                     cert.not_valid_after_utc.isoformat(),
                     datetime.fromtimestamp(self._deadline[1], UTC).isoformat())
        return self._deadline[1]

    def wait(self) -> float:
        """Seconds until the current certificate is due (0: missing or due now)."""
        cert = load_cert(self.current)
        return 0.0 if cert is None else max(0.0, self.deadline(cert) - self.clock())

    async def ensure(self) -> Path:
        if self.wait() == 0:
            path = await rotate(self.client, self.node, self.cert_dir, self.prefix, self.signer,
                                self.usages, dns=self.dns, ips=self.ips)
            self.on_rotate(path)
        return self.current

    async def run(self) -> None:
        while True:
            # Woken at least hourly: a clock step or a replaced file is noticed.
            await self.sleep(min(self.wait(), 3600))
            try:
                await self.ensure()
            except (APIError, BootstrapError, OSError) as exc:
                log.warning("rotating %s failed: %s", self.prefix, exc)
                await self.sleep(30)


def self_signed(cert_dir: Path, node: str, ips: list[str]) -> tuple[Path, Path]:
    """``kubelet.crt``/``kubelet.key`` in the cert dir, made once, as upstream does
    when neither tlsCertFile nor serverTLSBootstrap is set."""
    crt, key_path = cert_dir / "kubelet.crt", cert_dir / "kubelet.key"
    if load_cert(crt) is not None and key_path.exists():
        return crt, key_path
    key = new_key()
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                         f"{node}@{int(now.timestamp())}")])
    sans = [x509.DNSName(node)] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips if i]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_dir.mkdir(parents=True, exist_ok=True)
    for path, data, mode in ((key_path, key_pem(key), 0o600),
                             (crt, cert.public_bytes(serialization.Encoding.PEM), 0o644)):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    return crt, key_path
