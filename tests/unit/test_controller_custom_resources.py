"""The garbage collector and the namespace controller see resources that exist only
at run time (a CRD's), through discovery, on the FakeClient."""

import pytest
from cmharness import caught_up, synced

from bootstrap.agents.controllers.garbagecollector import GarbageCollector
from bootstrap.agents.controllers.namespace import NamespaceController
from bootstrap.api import discovery
from bootstrap.api.errors import APIError
from bootstrap.api.fake import FakeClient
from bootstrap.api.resources import Resource, by_gvr

pytestmark = pytest.mark.timeout(20)
NAMESPACES = by_gvr("", "v1", "namespaces")
WIDGETS = Resource(group="example.com", version="v1", kind="Widget", plural="widgets",
                   singular="widget", namespaced=True)


def widget(name, namespace="default", **md):
    return {"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", **md}}


def served() -> FakeClient:
    client = FakeClient()
    client.serve(WIDGETS)
    return client


def test_discovery_document_round_trips():
    assert discovery.parse(discovery.document([WIDGETS])) == [WIDGETS]


async def test_extra_resources_skip_the_catalogue_and_need_the_verbs():
    client = served()
    found = await discovery.extra_resources(client, {"list", "delete"})
    assert [r.qualified for r in found] == ["widgets.example.com"]
    read_only = Resource(group="example.com", version="v1", kind="Gadget", plural="gadgets",
                         singular="gadget", namespaced=True, verbs=("get", "list"))
    client.serve(read_only)
    assert [r.plural for r in await discovery.extra_resources(client, {"list", "delete"})] \
        == ["widgets"]


async def test_gc_collects_custom_objects_of_a_missing_owner_and_forgets_unserved():
    owned = widget("child", ownerReferences=[{"apiVersion": "v1", "kind": "ConfigMap",
                                              "name": "gone", "uid": "uid-gone"}])
    async with synced(GarbageCollector, owned, client=served()) as (client, ctl, _):
        await ctl.sync_resources()
        await ctl.factory.wait_synced(timeout=5)
        assert "widgets.example.com" in ctl.informers
        await ctl.reconcile("widgets.example.com|default/child")
        assert [(r.name, r.body["propagationPolicy"])
                for r in client.requests_for("delete", "widgets")] == [("child", "Background")]
        client.unserve(WIDGETS)
        await ctl.sync_resources()
        assert "widgets.example.com" not in ctl.informers
        assert await ctl.reconcile("widgets.example.com|default/other") is None


async def test_gc_keeps_known_resources_when_discovery_fails():
    client = served()
    client.fail("get", "/apis", APIError(503, "ServiceUnavailable", "down"))
    async with synced(GarbageCollector, client=client) as (_, ctl, _):
        await ctl.sync_resources()
        assert "widgets.example.com" not in ctl.informers
        assert "configmaps" in ctl.informers
        await ctl.sync_resources()
        assert "widgets.example.com" in ctl.informers


def ns(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


async def test_namespace_deletion_deletes_custom_objects():
    async with synced(NamespaceController, ns("doomed"), widget("w", "doomed"),
                      widget("kept", "default"), client=served()) as (client, ctl, _):
        await client.delete(NAMESPACES, "doomed")
        await caught_up(client, ctl.factory)
        await ctl.reconcile("doomed")
        assert [w["metadata"]["name"] for w in client.objects("widgets")] == ["kept"]
        assert not [n for n in client.objects("namespaces") if n["metadata"]["name"] == "doomed"
                    and "kubernetes" in n["spec"]["finalizers"]]


async def test_namespace_is_kept_while_discovery_fails():
    client = served()
    client.fail("get", "/apis", APIError(503, "ServiceUnavailable", "down"))
    async with synced(NamespaceController, ns("doomed"), widget("w", "doomed"),
                      client=client) as (client, ctl, _):
        await client.delete(NAMESPACES, "doomed")
        await caught_up(client, ctl.factory)
        assert await ctl.reconcile("doomed")
        (doomed,) = [n for n in client.objects("namespaces") if n["metadata"]["name"] == "doomed"]
        cond = {c["type"]: c for c in doomed["status"]["conditions"]}
        assert cond["NamespaceDeletionDiscoveryFailure"]["status"] == "True"
        assert cond["NamespaceDeletionDiscoveryFailure"]["reason"] == "DiscoveryFailed"
        assert doomed["spec"]["finalizers"] == ["kubernetes"]
        # Once discovery answers, the custom objects go and the namespace is released.
        await caught_up(client, ctl.factory)
        await ctl.reconcile("doomed")
        assert client.objects("widgets") == []
