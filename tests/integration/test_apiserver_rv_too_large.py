"""A resourceVersion newer than etcd's revision (what agents hold after a whole-cluster
etcd restore) is refused as upstream refuses it: 504 Timeout "Too large resource
version: X, current: Y" with a ResourceVersionTooLarge cause (storage's
NewTooLargeResourceVersionError); a watch gets it as its one ERROR event once the
watch cache has waited for X, a list at once, since it reads etcd. Then the informer
of bootstrap.api, told so, lists again from scratch instead of re-watching X forever,
across a real etcd snapshot restore that lowers the revision."""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.error
import urllib.request

import pytest
from kubernetes import client as k8s
from kubernetes import config, watch
from kubernetes.client.rest import ApiException

from bootstrap.api.client import Client
from bootstrap.api.informer import Informer
from bootstrap.api.resources import by_gvr

from . import cluster as cluster_mod
from .cluster import Cluster, running_cluster

CONFIGMAPS = by_gvr("", "v1", "configmaps")
NAMESPACES = by_gvr("", "v1", "namespaces")
CM = "/api/v1/namespaces/default/configmaps"
AHEAD = 1_000_000  # far past any revision this test's etcd reaches
CAUSES = [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}]


@pytest.fixture(scope="module")
def cluster():
    with running_cluster() as c:
        c.ctx = c.ssl_context()
        yield c


def _get(c, path):
    try:
        with urllib.request.urlopen(c.server.url + path, context=c.ctx, timeout=30) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


def _current(c) -> int:
    code, body, _ = _get(c, CM)
    assert code == 200, body
    return int(json.loads(body)["metadata"]["resourceVersion"])


def _assert_too_large(status: dict, requested: int, at_least: int, retry: int | None):
    assert status["kind"] == "Status" and status["status"] == "Failure"
    assert status["code"] == 504 and status["reason"] == "Timeout"
    prefix = f"Timeout: Too large resource version: {requested}, current: "
    assert status["message"].startswith(prefix), status["message"]
    current = int(status["message"][len(prefix):])
    assert at_least <= current < requested
    assert status["details"]["causes"] == CAUSES
    assert status["details"].get("retryAfterSeconds") == retry


def test_watch_from_a_future_resource_version_ends_with_too_large(cluster):
    now = _current(cluster)
    code, body, _ = _get(cluster, f"{CM}?watch=true&resourceVersion={now + AHEAD}"
                                  "&timeoutSeconds=20")
    assert code == 200  # past authn/authz the error travels in the stream, as upstream's
    events = [json.loads(line) for line in body.splitlines() if line.strip()]
    assert [e["type"] for e in events] == ["ERROR"], events
    # The cache waited for the revision (upstream's blockTimeout), then asks for a retry.
    _assert_too_large(events[0]["object"], now + AHEAD, now, 1)


def test_watch_list_not_older_than_a_future_resource_version_is_too_large(cluster):
    """sendInitialEvents with resourceVersion N: a snapshot not older than N, which
    the cache waits for and refuses (waitUntilFreshAndBlock); at a reached N it works."""
    now = _current(cluster)
    base = (f"{CM}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
            "&allowWatchBookmarks=true&timeoutSeconds=5&resourceVersion=")
    code, body, _ = _get(cluster, base + str(now + AHEAD))
    assert code == 200
    events = [json.loads(line) for line in body.splitlines() if line.strip()]
    assert [e["type"] for e in events] == ["ERROR"], events
    _assert_too_large(events[0]["object"], now + AHEAD, now, 1)
    code, body, _ = _get(cluster, base + str(now))
    events = [json.loads(line) for line in body.splitlines() if line.strip()]
    assert code == 200 and "ERROR" not in [e["type"] for e in events]
    assert events[-1]["type"] == "BOOKMARK"


@pytest.mark.parametrize("query", ["resourceVersionMatch=NotOlderThan&",
                                   "resourceVersionMatch=Exact&", ""])
def test_list_at_a_future_resource_version_is_too_large(cluster, query):
    now = _current(cluster)
    code, body, _ = _get(cluster, f"{CM}?{query}resourceVersion={now + AHEAD}")
    assert code == 504, body
    # Read from etcd, which knows its revision: upstream's etcd3 store answers at once
    # with no retry period.
    _assert_too_large(json.loads(body), now + AHEAD, now, None)


def test_list_at_a_reached_resource_version_still_works(cluster):
    now = _current(cluster)
    for query in ("resourceVersionMatch=NotOlderThan&", "resourceVersionMatch=Exact&", ""):
        code, body, _ = _get(cluster, f"{CM}?{query}resourceVersion={now}")
        assert code == 200, (query, body)
        assert int(json.loads(body)["metadata"]["resourceVersion"]) >= now


def test_get_at_a_future_resource_version_is_too_large(cluster):
    req = urllib.request.Request(cluster.server.url + CM, method="POST",
                                 data=json.dumps({"metadata": {"name": "got"}}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=cluster.ctx, timeout=10) as r:
        created = json.loads(r.read())["metadata"]["resourceVersion"]
    now = _current(cluster)
    code, body, _ = _get(cluster, f"{CM}/got?resourceVersion={now + AHEAD}")
    assert code == 504, body
    _assert_too_large(json.loads(body), now + AHEAD, now, None)
    code, body, _ = _get(cluster, f"{CM}/got?resourceVersion={created}")
    assert code == 200 and json.loads(body)["metadata"]["name"] == "got"


def test_python_client_sees_too_large_on_watch_and_list(cluster):
    core = k8s.CoreV1Api(config.new_client_from_config(config_file=str(cluster.admin)))
    now = _current(cluster)
    with pytest.raises(ApiException) as err:
        for _ in watch.Watch().stream(core.list_namespaced_config_map, "default",
                                      resource_version=str(now + AHEAD), timeout_seconds=20):
            pass
    assert err.value.status == 504
    assert f"Timeout: Too large resource version: {now + AHEAD}" in err.value.reason
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map("default", resource_version=str(now + AHEAD),
                                        resource_version_match="NotOlderThan")
    assert err.value.status == 504
    assert json.loads(err.value.body)["details"]["causes"] == CAUSES


# -- the informer across a real etcd restore -------------------------------------------

async def until(cond, timeout=60.0):
    """Wait for a condition; the timeout only guards against a hung test."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.05)


def _restore(c: Cluster, snapshot: str, monkeypatch, *, restart_server: bool) -> None:
    """Stop etcd (and the API server, as upstream's procedure does), restore etcd's
    data from ``snapshot`` (its older revision with it, as etcd 3.4's restore keeps
    it) and start them again on their ports."""
    server, etcd = c.server, c.etcd
    if restart_server:
        server.stop()
    etcd.stop()
    data = c.base / "etcd-data"
    subprocess.run(["rm", "-rf", str(data)], check=True)
    peer = cluster_mod.free_port()
    subprocess.run(["/usr/bin/etcdctl", "snapshot", "restore", snapshot,
                    f"--data-dir={data}", "--name=node1",
                    f"--initial-cluster=node1=http://127.0.0.1:{peer}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}"],
                   check=True, capture_output=True, env={"ETCDCTL_API": "3"})
    ports = iter([etcd.port, peer, server.port])
    monkeypatch.setattr(cluster_mod, "free_port", lambda: next(ports))
    etcd.start()
    if restart_server:
        server.start()


# An API server left running re-lists its watch caches when etcd comes back and ends
# their watches; the informer's next watch meets the same refusal.
@pytest.mark.parametrize("restart_server", [True, False], ids=["server-restarted",
                                                              "server-kept"])
async def test_informer_lists_again_after_an_etcd_restore(monkeypatch, restart_server):
    c = Cluster()
    c.start()
    inf = None
    try:
        client = Client.from_kubeconfig(c.kubeconfig("kubernetes-admin",
                                                     ("system:masters",)))
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": "restore"}})
        await client.create(CONFIGMAPS, {"metadata": {"name": "kept", "namespace": "restore"}})
        snapshot = str(c.base / "snapshot.db")
        subprocess.run(c.etcd.etcdctl("snapshot", "save", snapshot), check=True,
                       capture_output=True)
        # Writes after the snapshot: their revisions are lost by the restore, and so
        # many that the API server's own writes do not catch up during the test.
        await client.create(CONFIGMAPS, {"metadata": {"name": "lost", "namespace": "restore"}})
        for i in range(300):
            await client.patch(CONFIGMAPS, "lost", {"data": {"i": str(i)}}, "restore",
                               patch_type="merge")
        deleted: list[str] = []
        inf = Informer(client, CONFIGMAPS, "restore", min_watch_timeout=5)
        inf.add_handler(on_delete=lambda o: deleted.append(o["metadata"]["name"]))
        inf.start()
        await inf.wait_synced(30)
        assert sorted(inf.keys()) == ["restore/kept", "restore/lost"]
        before = int(inf.resource_version)

        _restore(c, snapshot, monkeypatch, restart_server=restart_server)
        # The informer resumes at its resourceVersion, now ahead of etcd: the server
        # says so, and the informer lists again and learns the restored state.
        await until(lambda: inf.lists >= 2 and deleted == ["lost"])
        assert sorted(inf.keys()) == ["restore/kept"]
        assert int(inf.resource_version) < before
        # ... and watches from there: a write after the restore arrives.
        await client.create(CONFIGMAPS, {"metadata": {"name": "new", "namespace": "restore"}})
        await until(lambda: "restore/new" in inf.keys())
        await client.close()
    finally:
        if inf is not None:
            await inf.stop()
        c.stop()
