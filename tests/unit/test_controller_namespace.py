"""namespace, serviceaccount and root-ca-cert-publisher on the FakeClient."""

import pytest
from cmharness import Clock, caught_up, synced, writes

from bootstrap.agents.controllers.namespace import NamespaceController
from bootstrap.agents.controllers.rootcacertpublisher import RootCACertPublisher
from bootstrap.agents.controllers.serviceaccount import ServiceAccountsController
from bootstrap.api.resources import by_gvr

pytestmark = pytest.mark.timeout(20)
NAMESPACES = by_gvr("", "v1", "namespaces")


def ns(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def cm(name, namespace, **md):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, **md}, "data": {"a": "b"}}


def conditions(obj):
    return {c["type"]: c for c in obj["status"].get("conditions") or []}


async def test_terminating_namespace_is_emptied_then_finalized():
    clock = Clock()
    async with synced(lambda c, f, r: NamespaceController(c, f, r, clock=clock), ns("doomed"),
                      ns("other"), cm("a", "doomed"), cm("held", "doomed", finalizers=["x/y"]),
                      cm("b", "other")) as (client, ctl, _):
        await client.delete(NAMESPACES, "doomed")
        await caught_up(client, ctl.factory)
        assert await ctl.reconcile("doomed") == 5.0
        names = sorted(c["metadata"]["name"] for c in client.objects("configmaps"))
        assert names == ["b", "held"]
        (doomed,) = [n for n in client.objects("namespaces") if n["metadata"]["name"] == "doomed"]
        c = conditions(doomed)
        assert c["NamespaceContentRemaining"]["reason"] == "SomeResourcesRemain"
        assert c["NamespaceContentRemaining"]["message"] == \
            "Some resources are remaining: configmaps has 1 resource instances"
        assert c["NamespaceFinalizersRemaining"]["message"] == \
            "Some finalizers are remaining: x/y in 1 resource instances"
        assert c["NamespaceDeletionContentFailure"]["status"] == "False"
        assert doomed["spec"]["finalizers"] == ["kubernetes"]
        # the finalizer's owner lets go; the next pass finalizes
        await client.patch(by_gvr("", "v1", "configmaps"), "held", {"metadata": {
            "finalizers": None}}, "doomed", patch_type="merge")
        await caught_up(client, ctl.factory)
        assert await ctl.reconcile("doomed") is None
        assert [n["metadata"]["name"] for n in client.objects("namespaces")] == ["other"]
        assert ("update", "namespaces", "doomed", "finalize") in writes(client)


async def test_active_namespace_is_left_alone():
    async with synced(lambda c, f, r: NamespaceController(c, f, r), ns("live"),
                      cm("a", "live")) as (client, ctl, _):
        assert await ctl.reconcile("live") is None
        assert writes(client) == []


async def test_default_service_account_per_active_namespace():
    async with synced(lambda c, f, r: ServiceAccountsController(c, f, r), ns("a"), ns("b"),
                      {"apiVersion": "v1", "kind": "ServiceAccount",
                       "metadata": {"name": "default", "namespace": "b"}}) as (client, ctl, _):
        await ctl.reconcile("a")
        await ctl.reconcile("b")
        await ctl.reconcile("missing")
        assert writes(client) == [("create", "serviceaccounts", None, None)]
        assert sorted(s["metadata"]["namespace"] for s in client.objects("serviceaccounts")) \
            == ["a", "b"]
        await client.delete(NAMESPACES, "a")
        await client.delete(by_gvr("", "v1", "serviceaccounts"), "default", "a")
        await caught_up(client, ctl.factory)
        await ctl.reconcile("a")  # terminating: not recreated
        assert [s["metadata"]["namespace"] for s in client.objects("serviceaccounts")] == ["b"]


async def test_root_ca_configmap_created_and_repaired():
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    stale = cm("kube-root-ca.crt", "b")
    async with synced(lambda c, f, r: RootCACertPublisher(c, f, r, pem), ns("a"), ns("b"),
                      stale) as (client, ctl, _):
        await ctl.reconcile("a")
        await ctl.reconcile("b")
        cms = {c["metadata"]["namespace"]: c for c in client.objects("configmaps")}
        assert cms["a"]["data"] == {"ca.crt": pem} and cms["b"]["data"] == {"ca.crt": pem}
        assert "kubernetes.io/description" in cms["a"]["metadata"]["annotations"]
        n = len(writes(client))
        await caught_up(client, ctl.factory)
        await ctl.reconcile("a")
        assert len(writes(client)) == n
