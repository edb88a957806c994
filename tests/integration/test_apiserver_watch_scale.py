"""Watches on a resource with 50,000 objects (issue 11): a narrow watch sees its
3 objects, a cluster-wide watch from "0" streams every object without being
dropped, and live events reach a narrow watcher past a flood in other namespaces.

The objects are written straight into etcd in batched transactions (what the API
server would store), because creating 50,000 through the API costs minutes."""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid

import aiohttp
import orjson
import pytest

from bootstrap.agents.apiserver.storage.etcd import Etcd

from .cluster import running_cluster

TOTAL = 50_000
SMALL = 3


@pytest.fixture(scope="module")
def cluster():
    with running_cluster() as c:
        import urllib.request
        req = urllib.request.Request(c.server.url + "/api/v1/namespaces", method="POST",
                                     data=b'{"metadata": {"name": "small"}}',
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, context=c.ssl_context(), timeout=10).close()
        asyncio.run(_fill(c))
        yield c


def _cm(ns: str, name: str) -> bytes:
    return orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": name, "namespace": ns, "uid": str(uuid.uuid4()),
                                      "creationTimestamp": "2026-01-01T00:00:00Z"},
                         "data": {"k": "v"}})


async def _fill(c) -> None:
    p = c.pki
    etcd = Etcd([c.etcd.url], open(p.path("etcd/ca.crt"), "rb").read(),
                open(p.path("apiserver-etcd-client.crt"), "rb").read(),
                open(p.path("apiserver-etcd-client.key"), "rb").read())
    await etcd.connect()
    try:
        keys = [("small", f"cm-{i}") for i in range(SMALL)] + \
               [("big", f"cm-{i:05d}") for i in range(TOTAL - SMALL)]
        for start in range(0, len(keys), 128):  # etcd's --max-txn-ops default
            await etcd.txn([], [etcd.op_put(f"/registry/configmaps/{ns}/{n}", _cm(ns, n))
                                for ns, n in keys[start:start + 128]])
    finally:
        await etcd.close()


def _ssl(c) -> ssl.SSLContext:
    return c.ssl_context()


async def _watch(c, path: str, *, until, timeout: float = 120.0) -> list[dict]:
    """Read watch events until ``until(events)`` is true or the server ends the stream."""
    events: list[dict] = []
    async with aiohttp.ClientSession() as session:
        async with session.get(c.server.url + path, ssl=_ssl(c),
                               timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            assert resp.status == 200
            async for line in resp.content:
                if line.strip():
                    events.append(json.loads(line))
                    if until(events):
                        break
    return events


def _added(events) -> int:
    return sum(1 for e in events if e["type"] == "ADDED")


def _wait_cached(c) -> None:
    async def count() -> int:
        evs = await _watch(c, "/api/v1/namespaces/small/configmaps?watch=1&resourceVersion=0"
                           "&timeoutSeconds=2", until=lambda e: _added(e) >= SMALL)
        return _added(evs)
    asyncio.run(count())


def test_namespaced_watch_without_rv_sees_its_three_objects(cluster):
    _wait_cached(cluster)
    events = asyncio.run(_watch(cluster, "/api/v1/namespaces/small/configmaps?watch=1"
                                "&timeoutSeconds=5", until=lambda e: _added(e) >= SMALL))
    assert sorted(e["object"]["metadata"]["name"] for e in events) == \
        [f"cm-{i}" for i in range(SMALL)]


def test_cluster_wide_watch_from_zero_streams_every_object(cluster):
    _wait_cached(cluster)
    events = asyncio.run(_watch(cluster, "/api/v1/configmaps?watch=1&resourceVersion=0"
                                "&timeoutSeconds=120", until=lambda e: len(e) >= TOTAL))
    # kube-root-ca.crt or other system ConfigMaps may exist too.
    assert _added(events) >= TOTAL
    assert all(e["type"] == "ADDED" for e in events)


def test_send_initial_events_ends_with_the_bookmark(cluster):
    _wait_cached(cluster)

    def done(evs):
        return bool(evs) and evs[-1]["type"] == "BOOKMARK" and \
            evs[-1]["object"]["metadata"].get("annotations", {}).get(
                "k8s.io/initial-events-end") == "true"
    events = asyncio.run(_watch(cluster, "/api/v1/namespaces/small/configmaps?watch=1"
                                "&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
                                "&allowWatchBookmarks=true&timeoutSeconds=20", until=done))
    assert done(events) and _added(events) == SMALL


def test_narrow_watcher_gets_its_event_after_a_flood_elsewhere(cluster):
    """12,000 writes in namespace big (more than a watcher's queue) do not close a
    watcher of namespace small, which queues none of them."""
    _wait_cached(cluster)

    async def scenario() -> list[dict]:
        async with aiohttp.ClientSession() as session:
            url = cluster.server.url + ("/api/v1/namespaces/small/configmaps?watch=1"
                                        "&resourceVersion=0&timeoutSeconds=120")
            async with session.get(url, ssl=_ssl(cluster)) as resp:
                seen: list[dict] = []
                for _ in range(SMALL):
                    seen.append(json.loads(await resp.content.readline()))
                await _fill_big_again(cluster, 12_000)
                async with session.post(cluster.server.url +
                                        "/api/v1/namespaces/small/configmaps",
                                        ssl=_ssl(cluster),
                                        json={"metadata": {"name": "after"}}) as created:
                    assert created.status == 201, await created.text()
                while True:
                    line = await asyncio.wait_for(resp.content.readline(), 60)
                    assert line, "the server closed a watcher that was keeping up"
                    ev = json.loads(line)
                    seen.append(ev)
                    if ev["object"]["metadata"]["name"] == "after":
                        return seen
    seen = asyncio.run(scenario())
    assert seen[-1]["type"] == "ADDED"
    assert {e["object"]["metadata"]["namespace"] for e in seen} == {"small"}


async def _fill_big_again(c, count: int) -> None:
    p = c.pki
    etcd = Etcd([c.etcd.url], open(p.path("etcd/ca.crt"), "rb").read(),
                open(p.path("apiserver-etcd-client.crt"), "rb").read(),
                open(p.path("apiserver-etcd-client.key"), "rb").read())
    await etcd.connect()
    try:
        for start in range(0, count, 128):
            await etcd.txn([], [etcd.op_put(f"/registry/configmaps/big/cm-{i:05d}",
                                            _cm("big", f"cm-{i:05d}"))
                                for i in range(start, min(start + 128, count))])
    finally:
        await etcd.close()
