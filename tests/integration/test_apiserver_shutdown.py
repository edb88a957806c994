"""Graceful termination as upstream's: on SIGTERM /readyz fails at once (so a load
balancer takes the server out) while requests are still served for
--shutdown-delay-duration; then the listener closes, open watches end with a
proper last chunk and the process exits 0."""

from __future__ import annotations

import http.client
import json
import signal
import threading

import pytest

from .cluster import running_cluster

DELAY = "4s"


@pytest.fixture()
def cluster():
    with running_cluster([f"--shutdown-delay-duration={DELAY}"]) as c:
        yield c


def _conn(cluster) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection("127.0.0.1", cluster.server.port,
                                       context=cluster.ssl_context(), timeout=30)


def _get(conn, path: str) -> tuple[int, str, dict]:
    conn.request("GET", path, headers={"Accept": "application/json"})
    resp = conn.getresponse()
    body = resp.read().decode()
    return resp.status, body, {k.lower(): v for k, v in resp.getheaders()}


def test_sigterm_fails_readyz_first_keeps_serving_then_ends_watches_cleanly(cluster):
    watch_result: dict = {}
    watch_conn = _conn(cluster)
    watch_conn.request("GET", "/api/v1/namespaces?watch=true&timeoutSeconds=600",
                       headers={"Accept": "application/json"})
    watch_resp = watch_conn.getresponse()
    assert watch_resp.status == 200

    def read_watch() -> None:
        events = []
        try:
            for line in watch_resp:
                if line.strip():
                    events.append(json.loads(line)["type"])
            watch_result["events"] = events
            watch_result["clean"] = True  # the chunked stream ended with its last chunk
        except (http.client.IncompleteRead, OSError) as exc:
            watch_result["error"] = repr(exc)

    reader = threading.Thread(target=read_watch)
    reader.start()
    keepalive = _conn(cluster)
    status, _, headers = _get(keepalive, "/api/v1/namespaces")
    assert status == 200 and headers.get("connection", "").lower() != "close"

    proc = cluster.server.proc
    proc.send_signal(signal.SIGTERM)
    probe = _conn(cluster)
    ready = None
    for _ in range(100):
        status, body, headers = _get(probe, "/readyz?verbose")
        probe = _conn(cluster)  # the server asks every client to reconnect now
        if status == 500:
            ready = body
            break
    assert ready is not None, "/readyz never failed after SIGTERM"
    assert "[-]shutdown failed" in ready and "readyz check failed" in ready
    assert proc.poll() is None  # still running: the delay has begun
    # Liveness and ordinary requests are unaffected while the delay runs; responses
    # close their connection so keep-alive clients re-dial (through the balancer).
    for path in ("/livez", "/healthz"):
        assert _get(_conn(cluster), path)[0] == 200
    status, body, headers = _get(keepalive, "/api/v1/namespaces/default")
    assert status == 200 and json.loads(body)["metadata"]["name"] == "default"
    assert headers.get("connection", "").lower() == "close"
    assert watch_result == {}  # the watch is still open during the delay

    assert proc.wait(30) == 0
    reader.join(10)
    assert watch_result.get("clean") is True, watch_result
    assert "ADDED" in watch_result["events"]
    with pytest.raises(OSError):
        _get(_conn(cluster), "/readyz")


def test_bad_shutdown_delay_is_one_line_and_exit_2():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "bootstrap.agents.apiserver",
                           "--etcd-servers=https://127.0.0.1:1",
                           "--shutdown-delay-duration=soon"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        proc.stderr.strip()] and "--shutdown-delay-duration" in proc.stderr
    assert "Traceback" not in proc.stderr
