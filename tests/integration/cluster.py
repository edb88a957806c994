"""Real etcd + API server processes on loopback, with PKI from bootstrap.pki.

Used by the integration fixtures and the benchmark. Every process started here
is stopped (and its data removed) by the matching ``stop``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from bootstrap.config.model import ClusterConfig
from bootstrap.pki import CLIENT_AUTH, CertSpec, ensure_all, load_ca, write_kubeconfig

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PKI:
    dir: Path

    @classmethod
    def create(cls, base: Path) -> PKI:
        d = base / "pki"
        ensure_all(d, ClusterConfig(), "node1", "127.0.0.1")
        return cls(d)

    def path(self, name: str) -> str:
        return str(self.dir / name)

    def kubeconfig(self, path: Path, server: str, user: str, groups: tuple[str, ...] = ()
                   ) -> Path:
        write_kubeconfig(path, cluster_name="kubernetes", server=server,
                         ca=load_ca(self.dir, "ca"),
                         spec=CertSpec(user, tuple(groups), (CLIENT_AUTH,)),
                         validity=timedelta(days=1))
        return path


@dataclass
class Etcd:
    dir: Path
    pki: PKI
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> Etcd:
        self.port, peer = free_port(), free_port()
        p = self.pki
        log = open(self.dir / "etcd.log", "wb")
        self.proc = subprocess.Popen([
            "/usr/bin/etcd", "--name", "node1", "--data-dir", str(self.dir / "etcd-data"),
            "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"node1=http://127.0.0.1:{peer}",
            "--cert-file", p.path("etcd/server.crt"), "--key-file", p.path("etcd/server.key"),
            "--trusted-ca-file", p.path("etcd/ca.crt"), "--client-cert-auth",
            "--snapshot-count", "100000", "--log-level", "error",
        ], stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "ETCD_UNSUPPORTED_ARCH":
                                                      os.environ.get("ETCD_UNSUPPORTED_ARCH",
                                                                     "")})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("etcd exited: " + (self.dir / "etcd.log").read_text())
            r = subprocess.run(self.etcdctl("endpoint", "health"), capture_output=True)
            if r.returncode == 0:
                return self
            time.sleep(0.2)
        raise RuntimeError("etcd did not become healthy")

    def etcdctl(self, *args: str) -> list[str]:
        p = self.pki
        return ["/usr/bin/etcdctl", f"--endpoints={self.url}",
                f"--cacert={p.path('etcd/ca.crt')}",
                f"--cert={p.path('apiserver-etcd-client.crt')}",
                f"--key={p.path('apiserver-etcd-client.key')}", *args]

    def stop(self) -> None:
        _terminate(self.proc)


@dataclass
class APIServer:
    dir: Path
    pki: PKI
    etcd: Etcd
    extra: list[str] = field(default_factory=list)
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def args(self) -> list[str]:
        p = self.pki
        return [
            f"--etcd-servers={self.etcd.url}", f"--etcd-cafile={p.path('etcd/ca.crt')}",
            f"--etcd-certfile={p.path('apiserver-etcd-client.crt')}",
            f"--etcd-keyfile={p.path('apiserver-etcd-client.key')}",
            f"--secure-port={self.port}", "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--tls-cert-file={p.path('apiserver.crt')}",
            f"--tls-private-key-file={p.path('apiserver.key')}",
            f"--client-ca-file={p.path('ca.crt')}",
            f"--service-account-key-file={p.path('sa.pub')}",
            f"--service-account-signing-key-file={p.path('sa.key')}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.96.0.0/12", "--authorization-mode=Node,RBAC",
            "--enable-bootstrap-token-auth=true", "--anonymous-auth=false",
            "--enable-admission-plugins=NodeRestriction",
            f"--kubelet-client-certificate={p.path('apiserver-kubelet-client.crt')}",
            f"--kubelet-client-key={p.path('apiserver-kubelet-client.key')}",
            *self.extra,
        ]

    def start(self) -> APIServer:
        self.port = free_port()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / f"apiserver-{self.port}.log"
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "bootstrap.agents.apiserver",
                                      *self.args()], stdout=log, stderr=subprocess.STDOUT,
                                     cwd=ROOT)
        ctx = ssl.create_default_context(cafile=self.pki.path("ca.crt"))
        ctx.load_cert_chain(self.pki.path("apiserver-kubelet-client.crt"),
                            self.pki.path("apiserver-kubelet-client.key"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("apiserver exited: " + self.log_path.read_text())
            try:
                with urllib.request.urlopen(self.url + "/readyz", context=ctx, timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("apiserver not ready: " + self.log_path.read_text())

    def stop(self) -> None:
        _terminate(self.proc)


def _terminate(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class Cluster:
    """One etcd and N API servers sharing a temp dir."""

    def __init__(self, extra_args: list[str] | Callable[[PKI], list[str]] | None = None):
        self.base = Path(tempfile.mkdtemp(prefix="bootstrap-it-"))
        self.pki = PKI.create(self.base)
        # Flags naming PKI files may be a function of the PKI just made.
        self.extra = (extra_args(self.pki) if callable(extra_args) else extra_args) or []
        self.etcd = Etcd(self.base, self.pki)
        self.servers: list[APIServer] = []

    def start(self) -> Cluster:
        try:
            self.etcd.start()
            self.add_server()
        except BaseException:
            self.stop()
            raise
        return self

    def add_server(self) -> APIServer:
        s = APIServer(self.base, self.pki, self.etcd, list(self.extra))
        self.servers.append(s)
        s.start()
        return s

    @property
    def server(self) -> APIServer:
        return self.servers[0]

    def kubeconfig(self, user: str, groups: tuple[str, ...] = (), server: APIServer | None = None
                   ) -> Path:
        s = server or self.server
        safe = user.replace(":", "_")
        return self.pki.kubeconfig(self.base / f"{safe}-{s.port}.kubeconfig", s.url, user,
                                   groups)

    def ssl_context(self, user: str = "kubernetes-admin",
                    groups: tuple[str, ...] = ("system:masters",)) -> ssl.SSLContext:
        """A client TLS context for raw HTTPS requests as ``user``."""
        from cryptography.hazmat.primitives import serialization

        from bootstrap.pki import read_kubeconfig
        parsed = read_kubeconfig(self.kubeconfig(user, groups))
        safe = user.replace(":", "_")
        cert, key = self.base / f"{safe}.crt", self.base / f"{safe}.key"
        cert.write_bytes(parsed.cert.public_bytes(serialization.Encoding.PEM))
        key.write_bytes(parsed.key.private_bytes(serialization.Encoding.PEM,
                                                 serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
        ctx = ssl.create_default_context(cafile=self.pki.path("ca.crt"))
        ctx.load_cert_chain(str(cert), str(key))
        return ctx

    def stop(self) -> None:
        for s in self.servers:
            s.stop()
        self.etcd.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@contextmanager
def running_cluster(extra_args: list[str] | Callable[[PKI], list[str]] | None = None,
                    admin_groups: tuple[str, ...] = ("system:masters",)):
    """A started cluster whose ``admin`` kubeconfig is kubernetes-admin in
    ``admin_groups``; stopped on exit, on failure too."""
    c = Cluster(extra_args=extra_args)
    c.start()
    try:
        c.admin = c.kubeconfig("kubernetes-admin", admin_groups)
        yield c
    finally:
        c.stop()


def eventually(fn, timeout: float = 20.0):
    """Retry until fn() is truthy (watch-cache-backed reads trail a write by a moment);
    the timeout only bounds a hung test."""
    end = time.monotonic() + timeout
    while True:
        result = fn()
        if result or time.monotonic() > end:
            return result
        time.sleep(0.1)
