"""garbagecollector: background, foreground and orphan propagation on the FakeClient."""

import pytest
from cmharness import caught_up, synced, writes

from bootstrap.agents.controllers.garbagecollector import GarbageCollector
from bootstrap.api.resources import by_gvr

pytestmark = pytest.mark.timeout(20)
CONFIGMAPS = by_gvr("", "v1", "configmaps")
RS = by_gvr("apps", "v1", "replicasets")
PODS = by_gvr("", "v1", "pods")
DEPLOYMENTS = by_gvr("apps", "v1", "deployments")


def rs(name, uid, **md):
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": "default", "uid": uid, **md},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}},
                                  "spec": {"containers": [{"name": "c", "image": "x"}]}}}}


def ref(kind, name, uid, block=False, api="apps/v1"):
    r = {"apiVersion": api, "kind": kind, "name": name, "uid": uid, "controller": True}
    if block:
        r["blockOwnerDeletion"] = True
    return r


def pod(name, *refs, **md):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                         "ownerReferences": list(refs), **md},
            "spec": {"containers": [{"name": "c", "image": "x"}]}}


def key(plural, name):
    return f"{plural}|default/{name}"


def gc(client, factory, events):
    return GarbageCollector(client, factory, events)


async def test_background_deletes_dependents_of_a_missing_owner():
    async with synced(gc, pod("orphaned", ref("ReplicaSet", "gone", "uid-gone")),
                      rs("alive", "uid-alive"),
                      pod("kept", ref("ReplicaSet", "alive", "uid-alive"))) as (client, ctl, _):
        await ctl.reconcile(key("pods", "orphaned"))
        await ctl.reconcile(key("pods", "kept"))
        deletes = client.requests_for("delete", "pods")
        assert [(r.name, r.body) for r in deletes] == [
            ("orphaned", {"propagationPolicy": "Background",
                          "preconditions": {"uid": "uid-orphaned"}})]
        # the owner lookup for "gone" was confirmed with the API, not only the cache
        assert [(r.verb, r.resource, r.name) for r in client.requests_for("get")] == [
            ("get", "replicasets", "gone")]


async def test_owner_missing_from_cache_but_live_is_solid():
    async with synced(gc, rs("fresh", "uid-fresh"),
                      pod("p", ref("ReplicaSet", "fresh", "uid-fresh"))) as (client, ctl, _):
        owner = ctl.informers["replicasets.apps"].get("fresh", "default")
        ctl.informers["replicasets.apps"].indexer.delete(owner)  # the cache lags
        await ctl.reconcile(key("pods", "p"))
        assert writes(client) == []


async def test_replaced_owner_with_same_name_is_dangling():
    async with synced(gc, rs("web", "uid-new"),
                      pod("p", ref("ReplicaSet", "web", "uid-old"))) as (client, ctl, _):
        await ctl.reconcile(key("pods", "p"))
        assert writes(client) == [("delete", "pods", "p", None)]


async def test_solid_owner_left_drops_only_the_dangling_reference():
    refs = [ref("ReplicaSet", "alive", "uid-alive"), ref("ReplicaSet", "gone", "uid-gone")]
    refs[1]["controller"] = False
    async with synced(gc, rs("alive", "uid-alive"), pod("p", *refs)) as (client, ctl, _):
        await ctl.reconcile(key("pods", "p"))
        (p,) = client.objects("pods")
        assert [r["uid"] for r in p["metadata"]["ownerReferences"]] == ["uid-alive"]
        assert writes(client) == [("patch", "pods", "p", None)]


async def test_unknown_owner_kind_never_deletes():
    odd = ref("Widget", "w", "uid-w", api="example.com/v1")
    async with synced(gc, pod("p", odd)) as (client, ctl, _):
        await ctl.reconcile(key("pods", "p"))
        assert writes(client) == []


async def test_orphan_finalizer_removes_references_then_itself():
    async with synced(gc, rs("web", "uid-web"),
                      pod("a", ref("ReplicaSet", "web", "uid-web", block=True)),
                      pod("b", ref("ReplicaSet", "web", "uid-web"))) as (client, ctl, _):
        await client.delete(RS, "web", "default", propagation_policy="Orphan")
        assert client.objects("replicasets")[0]["metadata"]["finalizers"] == ["orphan"]
        await caught_up(client, ctl.factory)
        await ctl.reconcile(key("replicasets.apps", "web"))
        assert all(not p["metadata"].get("ownerReferences") for p in client.objects("pods"))
        assert client.objects("replicasets") == []   # the last finalizer went
        assert not client.requests_for("delete", "pods")


async def test_foreground_deletes_dependents_and_waits_for_blocking_ones():
    async with synced(gc, rs("web", "uid-web"),
                      pod("block", ref("ReplicaSet", "web", "uid-web", block=True)),
                      pod("free", ref("ReplicaSet", "web", "uid-web"))) as (client, ctl, _):
        await client.delete(RS, "web", "default", propagation_policy="Foreground")
        await caught_up(client, ctl.factory)
        await ctl.reconcile(key("replicasets.apps", "web"))
        assert len(client.objects("replicasets")) == 1  # still held by "block"
        for name in ("block", "free"):
            await ctl.reconcile(key("pods", name))
        deletes = {r.name: r.body["propagationPolicy"]
                   for r in client.requests_for("delete", "pods")}
        assert deletes == {"block": "Background", "free": "Background"}
        assert client.objects("pods") == []
        await caught_up(client, ctl.factory)
        await ctl.reconcile(key("replicasets.apps", "web"))
        assert client.objects("replicasets") == []


async def test_dependent_with_own_dependents_of_waiting_owner_goes_foreground():
    owner = {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "d", "namespace": "default", "uid": "uid-d"},
             "spec": {"selector": {"matchLabels": {"a": "b"}},
                      "template": {"metadata": {"labels": {"a": "b"}},
                                   "spec": {"containers": [{"name": "c", "image": "x"}]}}}}
    middle = rs("r", "uid-r", ownerReferences=[ref("Deployment", "d", "uid-d", block=True)])
    async with synced(gc, owner, middle, pod("p", ref("ReplicaSet", "r", "uid-r", block=True))
                      ) as (client, ctl, _):
        await client.delete(DEPLOYMENTS, "d", "default", propagation_policy="Foreground")
        await caught_up(client, ctl.factory)
        await ctl.reconcile(key("replicasets.apps", "r"))
        (delete,) = client.requests_for("delete", "replicasets")
        assert delete.resource == "replicasets" and \
            delete.body["propagationPolicy"] == "Foreground"
        # the ReplicaSet now waits for its pod; its owner waits for it
        assert client.objects("replicasets")[0]["metadata"]["finalizers"] == [
            "foregroundDeletion"]
        await caught_up(client, ctl.factory)
        await ctl.reconcile(key("pods", "p"))
        assert client.objects("pods") == []
        await caught_up(client, ctl.factory)
        await ctl.reconcile(key("replicasets.apps", "r"))
        assert client.objects("replicasets") == []
        await caught_up(client, ctl.factory)
        await ctl.reconcile(key("deployments.apps", "d"))
        assert client.objects("deployments") == []


async def test_deleting_an_owner_enqueues_its_dependents():
    async with synced(gc, rs("web", "uid-web"),
                      pod("p", ref("ReplicaSet", "web", "uid-web"))) as (client, ctl, _):
        while len(ctl.queue):
            k = await ctl.queue.get()
            ctl.queue.done(k)
        await client.delete(RS, "web", "default")
        from cmharness import until
        await until(lambda: len(ctl.queue) > 0)
        k = await ctl.queue.get()
        assert k == key("pods", "p")
        await ctl.reconcile(k)
        assert client.objects("pods") == []
