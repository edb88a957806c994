"""The secure port's transport: always TLS, the TLS flags, idle and half-sent
connections, request deadlines (issue 11)."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from .cluster import ROOT, APIServer, free_port, running_cluster


@pytest.fixture(scope="module")
def cluster():
    with running_cluster() as c:
        yield c


def _start(cluster, drop: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> APIServer:
    """Another API server on the same etcd, with some flags dropped or added."""
    server = APIServer(cluster.base / f"srv-{len(cluster.servers)}", cluster.pki, cluster.etcd,
                       list(extra))
    args = server.args

    def patched() -> list[str]:
        return [a for a in args() if not a.startswith(drop)] if drop else args()
    server.args = patched
    cluster.servers.append(server)  # stopped with the cluster
    return server


def _launch(server: APIServer) -> None:
    server.port = free_port()
    server.dir.mkdir(parents=True, exist_ok=True)
    server.log_path = server.dir / "apiserver.log"
    server.proc = subprocess.Popen([sys.executable, "-m", "bootstrap.agents.apiserver",
                                    *server.args()], cwd=ROOT,
                                   stdout=open(server.log_path, "wb"), stderr=subprocess.STDOUT)


def _wait_tls(server: APIServer, ctx: ssl.SSLContext) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.proc.poll() is None, server.log_path.read_text()
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{server.port}/livez", context=ctx,
                                        timeout=2) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            time.sleep(0.2)
    raise AssertionError("server never answered: " + server.log_path.read_text())


def test_without_tls_flags_the_secure_port_is_still_tls(cluster, tmp_path):
    server = _start(cluster, drop=("--tls-cert-file", "--tls-private-key-file"),
                    extra=(f"--cert-dir={tmp_path}",))
    _launch(server)
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    assert _wait_tls(server, insecure) in (200, 401, 403)
    # Plain HTTP on the port gets no HTTP answer.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        data = s.recv(100)
    assert not data.startswith(b"HTTP/1.1 200")
    # The self-signed pair is kept under --cert-dir and verifies against itself.
    assert (tmp_path / "apiserver.crt").exists() and (tmp_path / "apiserver.key").exists()
    assert oct((tmp_path / "apiserver.key").stat().st_mode & 0o777) == "0o600"
    pinned = ssl.create_default_context(cafile=str(tmp_path / "apiserver.crt"))
    pinned.check_hostname = False
    assert _wait_tls(server, pinned) in (200, 401, 403)


def test_cbc_suites_are_refused_by_default(cluster):
    ctx = ssl.create_default_context(cafile=cluster.pki.path("ca.crt"))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA:AES128-SHA")
    with pytest.raises(ssl.SSLError):
        with socket.create_connection(("127.0.0.1", cluster.server.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
                pass
    ok = ssl.create_default_context(cafile=cluster.pki.path("ca.crt"))
    ok.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", cluster.server.port), timeout=5) as raw:
        with ok.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert "GCM" in tls.cipher()[0] or "CHACHA" in tls.cipher()[0]


def test_tls_min_version_13_refuses_tls12_clients(cluster):
    server = _start(cluster, extra=("--tls-min-version=VersionTLS13",))
    _launch(server)
    ok = ssl.create_default_context(cafile=cluster.pki.path("ca.crt"))
    assert _wait_tls(server, ok) in (200, 401, 403)
    old = ssl.create_default_context(cafile=cluster.pki.path("ca.crt"))
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            with old.wrap_socket(raw, server_hostname="127.0.0.1"):
                pass


@pytest.mark.parametrize("flag,message", [
    ("--tls-cipher-suites=TLS_RSA_WITH_RC4_128_SHA,nope",
     "--tls-cipher-suites: cipher suite TLS_RSA_WITH_RC4_128_SHA not supported"),
    ("--tls-min-version=VersionTLS99", "--tls-min-version: unknown tls version"),
    ("--request-timeout=soon", "--request-timeout: time: invalid duration"),
    ("--audit-log-maxsize=-1", "--audit-log-maxsize: must not be negative"),
])
def test_bad_transport_flags_are_one_line(cluster, flag, message):
    server = APIServer(cluster.base, cluster.pki, cluster.etcd, [flag], port=free_port())
    proc = subprocess.run([sys.executable, "-m", "bootstrap.agents.apiserver", *server.args()],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


def test_half_sent_request_is_closed_after_the_idle_timeout(cluster):
    server = _start(cluster, extra=("--idle-connection-timeout=1s",))
    _launch(server)
    ctx = ssl.create_default_context(cafile=cluster.pki.path("ca.crt"))
    _wait_tls(server, ctx)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            # The server hangs up (EOF) instead of waiting forever for the rest.
            assert tls.recv(100) == b""


def test_request_deadline_answers_504_timeout(cluster):
    server = _start(cluster, extra=("--request-timeout=1us",))
    _launch(server)
    ctx = cluster.ssl_context()
    _wait_tls(server, ctx)
    req = urllib.request.Request(f"https://127.0.0.1:{server.port}/api/v1/namespaces")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, context=ctx, timeout=10)
    assert exc.value.code == 504
    assert b'"reason":"Timeout"' in exc.value.read()


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def test_worker_processes_share_the_port_and_die_together(cluster):
    server = _start(cluster, extra=("--processes=3",))
    _launch(server)
    ctx = cluster.ssl_context()
    _wait_tls(server, ctx)
    workers = _children(server.proc.pid)
    assert len(workers) == 2
    for i in range(30):  # new connections spread over the processes; all answer
        req = urllib.request.Request(
            f"https://127.0.0.1:{server.port}/api/v1/namespaces/default/configmaps",
            data=f'{{"metadata": {{"name": "mp-{i}"}}}}'.encode(), method="POST",
            headers={"Content-Type": "application/json", "Connection": "close"})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            assert r.status == 201
    # A dead worker takes the server down (so systemd restarts it whole) ...
    os.kill(workers[0], signal.SIGKILL)
    server.proc.wait(30)
    assert server.proc.returncode is not None
    # ... and no worker outlives the primary.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie already exited; it only waits for its parent to reap it.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_admission_plugins_flags(cluster):
    """--disable-admission-plugins turns a default-on plugin off: without ServiceAccount a
    pod gets no service account and no token volume."""
    server = _start(cluster, extra=("--disable-admission-plugins=ServiceAccount",))
    _launch(server)
    ctx = cluster.ssl_context()
    _wait_tls(server, ctx)
    req = urllib.request.Request(
        f"https://127.0.0.1:{server.port}/api/v1/namespaces/default/pods",
        data=b'{"metadata": {"name": "no-sa"}, "spec": {"containers": '
             b'[{"name": "c", "image": "busybox"}]}}', method="POST",
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        pod = json.loads(r.read())
    assert "serviceAccountName" not in pod["spec"]
    assert not any(v["name"].startswith("kube-api-access-") for v in pod["spec"].get(
        "volumes") or [])


@pytest.mark.parametrize("flags,message", [
    (("--enable-admission-plugins=Bogus",), "admission-control plugin 'Bogus' not found"),
    (("--enable-admission-plugins=Priority", "--disable-admission-plugins=Priority"),
     "Priority in both enable-admission-plugins and disable-admission-plugins"),
])
def test_bad_admission_flags(cluster, flags, message):
    server = APIServer(cluster.base, cluster.pki, cluster.etcd, list(flags), port=free_port())
    proc = subprocess.run([sys.executable, "-m", "bootstrap.agents.apiserver", *server.args()],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_unimplemented_upstream_plugin_is_a_warning(cluster):
    server = _start(cluster, extra=("--enable-admission-plugins=NodeRestriction,PodSecurity",))
    _launch(server)
    _wait_tls(server, cluster.ssl_context())
    assert "admission plugin PodSecurity is not implemented" in server.log_path.read_text()
