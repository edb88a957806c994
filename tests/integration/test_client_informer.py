"""bootstrap.api's client, informer and leader election against real API servers on
one real etcd: sync, resume across a server restart, re-list after compaction,
and leader hand-over."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from bootstrap.api.client import Client
from bootstrap.api.errors import APIError
from bootstrap.api.informer import Informer
from bootstrap.api.leader import LeaderElector
from bootstrap.api.resources import by_gvr

from . import cluster as cluster_mod
from .cluster import Cluster

CONFIGMAPS = by_gvr("", "v1", "configmaps")
NAMESPACES = by_gvr("", "v1", "namespaces")
LEASES = by_gvr("coordination.k8s.io", "v1", "leases")


async def until(cond, timeout=30.0):
    """Wait for a condition; the timeout only guards against a hung test."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.05)


@pytest.fixture
def cluster():
    c = Cluster()
    c.start()
    try:
        c.add_server()  # a second API server on the same etcd
        yield c
    finally:
        c.stop()


def restart_same_port(server: cluster_mod.APIServer, monkeypatch) -> None:
    """Stop an API server and start it again where clients expect it."""
    port = server.port
    server.stop()
    monkeypatch.setattr(cluster_mod, "free_port", lambda: port)
    server.start()


def cm(name, **data):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "inf"}, "data": data}


async def test_informer_sync_resume_and_relist(cluster, monkeypatch):
    s1, s2 = cluster.servers
    admin = ("kubernetes-admin", ("system:masters",))
    c1 = Client.from_kubeconfig(cluster.kubeconfig(*admin, server=s1))
    c2 = Client.from_kubeconfig(cluster.kubeconfig(*admin, server=s2))
    # Short server-side watch timeouts make the informer re-watch often.
    inf = Informer(c1, CONFIGMAPS, "inf", page_size=2, min_watch_timeout=1)
    seen: list[tuple[str, str]] = []
    inf.add_handler(on_add=lambda o: seen.append(("add", o["metadata"]["name"])),
                    on_update=lambda a, b: seen.append(("update", b["metadata"]["name"])),
                    on_delete=lambda o: seen.append(("delete", o["metadata"]["name"])))
    try:
        await c1.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": "inf"}})
        for i in range(5):
            await c1.create(CONFIGMAPS, cm(f"c{i}", v=str(i)))
        inf.start()
        await inf.wait_synced(30)
        assert sorted(inf.keys()) == [f"inf/c{i}" for i in range(5)]

        # A write through the other API server arrives through the watch.
        await c2.create(CONFIGMAPS, cm("via-s2"))
        await until(lambda: inf.get("via-s2", "inf") is not None)

        # Each ended watch resumes from the last resourceVersion seen: no re-list.
        watches = inf.watches
        await until(lambda: inf.watches >= watches + 2)
        await c2.create(CONFIGMAPS, cm("after-rewatch"))
        await until(lambda: inf.get("after-rewatch", "inf") is not None)
        assert inf.lists == 1

        # Server restart with writes made meanwhile (through s2): the informer picks
        # up where it left off (resuming, or re-listing if the new server's watch
        # cache starts after the informer's revision, as upstream's does).
        s1.stop()
        await c2.patch(CONFIGMAPS, "c1", {"data": {"v": "changed"}}, "inf",
                       patch_type="merge")
        await c2.delete(CONFIGMAPS, "c2", "inf")
        restart_same_port(s1, monkeypatch)
        await until(lambda: inf.get("c2", "inf") is None and
                    inf.get("c1", "inf")["data"]["v"] == "changed")
        lists = inf.lists

        # Compaction while the server is down: the old revision is gone, so the
        # informer gets 410 Expired, lists again and reconciles what it missed.
        s1.stop()
        await c2.create(CONFIGMAPS, cm("born-while-away"))
        await c2.delete(CONFIGMAPS, "c3", "inf")
        rev = (await c2.list(CONFIGMAPS, "inf"))["metadata"]["resourceVersion"]
        subprocess.run(cluster.etcd.etcdctl("compact", rev), check=True, capture_output=True)
        seen.clear()
        restart_same_port(s1, monkeypatch)
        await until(lambda: inf.lists > lists and inf.get("born-while-away", "inf"))
        assert inf.get("c3", "inf") is None
        assert ("add", "born-while-away") in seen and ("delete", "c3") in seen
        assert sorted(inf.keys()) == ["inf/after-rewatch", "inf/born-while-away", "inf/c0",
                                      "inf/c1", "inf/c4", "inf/via-s2"]
    finally:
        await inf.stop()
        await c1.close()
        await c2.close()


async def test_leader_election_between_two_api_servers(cluster):
    s1, s2 = cluster.servers
    # The scheduler's identity may only take the kube-scheduler lease (default RBAC).
    user = ("system:kube-scheduler", ())
    c1 = Client.from_kubeconfig(cluster.kubeconfig(*user, server=s1))
    c2 = Client.from_kubeconfig(cluster.kubeconfig(*user, server=s2))
    events: list[tuple[str, str]] = []

    def elector(client, identity):
        return LeaderElector(client, "kube-system", "kube-scheduler", identity,
                             lease_duration=2, renew_deadline=1.5, retry_period=0.2,
                             on_started_leading=lambda: events.append(("start", identity)),
                             on_stopped_leading=lambda: events.append(("stop", identity)))

    a, b = elector(c1, "host-a"), elector(c2, "host-b")
    ta = asyncio.create_task(a.run())
    tb = None
    try:
        await until(lambda: a.is_leader)
        tb = asyncio.create_task(b.run())
        await until(lambda: b.leader == "host-a")
        assert not b.is_leader
        lease = await c2.get(LEASES, "kube-scheduler", "kube-system")
        assert lease["spec"]["holderIdentity"] == "host-a"
        assert lease["spec"]["leaseDurationSeconds"] == 2
        # The leader stops renewing (crash, no release): b takes over once the lease
        # has gone stale on b's own clock.
        a.release_on_cancel = False
        ta.cancel()
        await asyncio.gather(ta, return_exceptions=True)
        await until(lambda: b.is_leader)
        lease = await c1.get(LEASES, "kube-scheduler", "kube-system")
        assert lease["spec"]["holderIdentity"] == "host-b"
        assert lease["spec"]["leaseTransitions"] == 1
        assert events[:2] == [("start", "host-a"), ("stop", "host-a")]
        assert events[-1] == ("start", "host-b")
        # Other leases stay out of reach for this identity.
        with pytest.raises(APIError) as exc:
            await c1.get(LEASES, "kube-controller-manager", "kube-system")
        assert exc.value.code == 403 and exc.value.reason == "Forbidden"
    finally:
        for t in (ta, tb):
            if t is not None:
                t.cancel()
        await asyncio.gather(*(t for t in (ta, tb) if t is not None), return_exceptions=True)
        await c1.close()
        await c2.close()
