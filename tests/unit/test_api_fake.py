"""FakeClient: API semantics in memory."""

import pytest

from bootstrap.api.errors import APIError
from bootstrap.api.fake import FakeClient
from bootstrap.api.resources import by_gvr

pytestmark = pytest.mark.timeout(20)
PODS = by_gvr("", "v1", "pods")
DEPLOYMENTS = by_gvr("apps", "v1", "deployments")
CONFIGMAPS = by_gvr("", "v1", "configmaps")


def deployment(name="web", replicas=1):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "x"}]}}}}


async def test_create_update_conflict_generation():
    c = FakeClient()
    d = await c.create(DEPLOYMENTS, deployment())
    assert d["metadata"]["resourceVersion"] == "1" and d["metadata"]["generation"] == 1
    assert d["metadata"]["uid"] and d["metadata"]["creationTimestamp"]
    d["spec"]["replicas"] = 3
    d2 = await c.update(DEPLOYMENTS, d)
    assert d2["metadata"]["generation"] == 2 and d2["metadata"]["resourceVersion"] == "2"
    with pytest.raises(APIError) as exc:
        await c.update(DEPLOYMENTS, d)  # stale resourceVersion
    assert exc.value.code == 409 and exc.value.reason == "Conflict"
    d2["status"] = {"replicas": 3}
    d3 = await c.update(DEPLOYMENTS, d2, subresource="status")
    assert d3["metadata"]["generation"] == 2 and d3["status"] == {"replicas": 3}
    with pytest.raises(APIError) as exc:
        await c.create(DEPLOYMENTS, deployment())
    assert exc.value.reason == "AlreadyExists"
    assert [r.verb for r in c.requests] == ["create", "update", "update", "update", "create"]


async def test_finalizers_keep_object_until_removed():
    c = FakeClient()
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "a", "namespace": "default", "finalizers": ["x/y"]}}
    await c.create(CONFIGMAPS, cm)
    out = await c.delete(CONFIGMAPS, "a", "default")
    assert out["metadata"]["deletionTimestamp"]
    assert len(c.objects("configmaps")) == 1
    await c.patch(CONFIGMAPS, "a", {"metadata": {"finalizers": None}}, "default",
                  patch_type="merge")
    assert c.objects("configmaps") == []


POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"}},
       "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}}
NODES = by_gvr("", "v1", "nodes")
NAMESPACED = {"namespace": "default"}


async def test_watch_from_a_revision_and_initial_adds_and_410():
    c = FakeClient()
    first = await c.create(CONFIGMAPS, {"metadata": {"name": "one", **NAMESPACED}})
    await c.create(CONFIGMAPS, {"metadata": {"name": "two", **NAMESPACED}})
    events = []
    async for ev in c.watch(CONFIGMAPS, "default", resource_version="0", timeout_seconds=0.05):
        events.append((ev["type"], ev["object"]["metadata"]["name"]))
    assert events == [("ADDED", "one"), ("ADDED", "two")]
    events = []
    async for ev in c.watch(CONFIGMAPS, "default",
                            resource_version=first["metadata"]["resourceVersion"],
                            timeout_seconds=0.05):
        events.append((ev["type"], ev["object"]["metadata"]["name"]))
    assert events == [("ADDED", "two")]
    c.compact()
    with pytest.raises(APIError) as exc:
        async for _ in c.watch(CONFIGMAPS, resource_version="1"):
            pass
    assert exc.value.code == 410 and exc.value.reason == "Expired"


async def test_list_selectors_pages_and_cluster_scope():
    c = FakeClient()
    for i, node in enumerate(("n1", "n1", "n2")):
        pod = {**POD, "metadata": {**POD["metadata"], "name": f"p{i}"},
               "spec": {**POD["spec"], "nodeName": node}}
        c.seed(pod)
    c.seed({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    on_n1 = await c.list(PODS, "default", field_selector="spec.nodeName=n1")
    assert [p["metadata"]["name"] for p in on_n1["items"]] == ["p0", "p1"]
    assert (await c.list(PODS, label_selector="app!=web"))["items"] == []
    page = await c.list(PODS, limit=2)
    assert len(page["items"]) == 2 and page["metadata"]["continue"]
    rest = await c.list(PODS, limit=2, continue_=page["metadata"]["continue"])
    assert [p["metadata"]["name"] for p in rest["items"]] == ["p2"]
    assert "continue" not in rest["metadata"]
    assert page["kind"] == "PodList" and page["metadata"]["resourceVersion"] == "4"
    node = await c.get(NODES, "n1")
    assert "namespace" not in node["metadata"]
    with pytest.raises(APIError) as exc:
        await c.list(PODS, field_selector="spec.bogus=1")
    assert exc.value.code == 400
    with pytest.raises(APIError) as exc:
        await c.get(PODS, "missing", "default")
    assert exc.value.code == 404 and exc.value.message == 'pods "missing" not found'


async def test_generate_name_and_noop_update_keeps_revision():
    c = FakeClient()
    obj = await c.create(CONFIGMAPS, {"metadata": {"generateName": "web-", **NAMESPACED}})
    assert obj["metadata"]["name"].startswith("web-") and len(obj["metadata"]["name"]) == 9
    same = await c.update(CONFIGMAPS, obj)
    assert same["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    with pytest.raises(APIError) as exc:
        await c.create(CONFIGMAPS, {"metadata": NAMESPACED})
    assert exc.value.code == 422


async def test_status_and_spec_are_written_separately():
    c = FakeClient()
    d = await c.create(DEPLOYMENTS, deployment())
    d["status"] = {"replicas": 9}
    d["spec"]["replicas"] = 2
    out = await c.update(DEPLOYMENTS, d)
    assert "status" not in out and out["spec"]["replicas"] == 2
    out["spec"]["replicas"] = 7
    out["status"] = {"replicas": 2}
    st = await c.update(DEPLOYMENTS, out, subresource="status")
    assert st["spec"]["replicas"] == 2 and st["status"] == {"replicas": 2}
    assert st["metadata"]["generation"] == 2
    p = await c.patch(DEPLOYMENTS, "web", {"status": {"readyReplicas": 1}}, "default",
                      patch_type="merge", subresource="status")
    assert p["status"] == {"replicas": 2, "readyReplicas": 1}


async def test_patch_types_and_apply_conflicts():
    c = FakeClient()
    c.seed(POD)
    out = await c.patch(PODS, "p", {"spec": {"containers": [{"name": "b", "image": "z"}]}},
                        "default")
    assert [(x["name"], x["image"]) for x in out["spec"]["containers"]] == \
        [("a", "x"), ("b", "z")]  # strategic: merged by name
    out = await c.patch(PODS, "p", [{"op": "replace", "path": "/metadata/labels/app",
                                     "value": "db"}], "default", patch_type="json")
    assert out["metadata"]["labels"] == {"app": "db"}
    cfg = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "applied", "namespace": "default"}, "data": {"k": "1"}}
    made = await c.patch(CONFIGMAPS, "applied", cfg, "default", patch_type="apply",
                         field_manager="ctl-a")
    assert made["data"] == {"k": "1"} and made["metadata"]["managedFields"][0][
        "manager"] == "ctl-a"
    with pytest.raises(APIError) as exc:
        await c.patch(CONFIGMAPS, "applied", {**cfg, "data": {"k": "2"}}, "default",
                      patch_type="apply", field_manager="ctl-b")
    assert exc.value.code == 409
    forced = await c.patch(CONFIGMAPS, "applied", {**cfg, "data": {"k": "2"}}, "default",
                           patch_type="apply", field_manager="ctl-b", force=True)
    assert forced["data"] == {"k": "2"}
    stale = {"metadata": {"resourceVersion": "1"}, "data": {"k": "3"}}
    with pytest.raises(APIError) as exc:
        await c.patch(CONFIGMAPS, "applied", stale, "default", patch_type="merge")
    assert exc.value.code == 409
    with pytest.raises(ValueError):
        await c.patch(CONFIGMAPS, "applied", cfg, "default", patch_type="apply")


async def test_graceful_pod_deletion_binding_and_eviction():
    c = FakeClient()
    c.seed(POD, {**POD, "metadata": {**POD["metadata"], "name": "q"}})
    await c.create(PODS, {"apiVersion": "v1", "kind": "Binding",
                          "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}},
                   "default", subresource="binding")
    bound = await c.get(PODS, "p", "default")
    assert bound["spec"]["nodeName"] == "n1"
    assert [x["type"] for x in bound["status"]["conditions"]] == ["PodScheduled"]
    with pytest.raises(APIError) as exc:
        await c.create(PODS, {"target": {"name": "n2"}}, "default", subresource="binding",
                       name="p")
    assert exc.value.code == 409 and "already assigned" in exc.value.message
    # A bound pod is deleted gracefully: it stays, terminating, until grace 0.
    out = await c.delete(PODS, "p", "default")
    assert out["metadata"]["deletionGracePeriodSeconds"] == 30
    assert out["metadata"]["deletionTimestamp"]
    assert len(c.objects("pods")) == 2
    await c.delete(PODS, "p", "default", grace_period_seconds=0)
    assert [p["metadata"]["name"] for p in c.objects("pods")] == ["q"]
    # An unbound pod goes at once; eviction is a delete.
    await c.create(PODS, {"apiVersion": "policy/v1", "kind": "Eviction",
                          "metadata": {"name": "q", "namespace": "default"}},
                   "default", subresource="eviction")
    assert c.objects("pods") == []
    assert [(r.verb, r.subresource) for r in c.writes()] == [
        ("create", "binding"), ("create", "binding"), ("delete", None), ("delete", None),
        ("create", "eviction")]


async def test_propagation_finalizers_and_preconditions():
    c = FakeClient()
    d = await c.create(DEPLOYMENTS, deployment())
    with pytest.raises(APIError) as exc:
        await c.delete(DEPLOYMENTS, "web", "default", preconditions={"uid": "other"})
    assert exc.value.code == 409
    out = await c.delete(DEPLOYMENTS, "web", "default", propagation_policy="Foreground",
                         preconditions={"uid": d["metadata"]["uid"]})
    assert out["metadata"]["finalizers"] == ["foregroundDeletion"]
    # a second delete of a terminating object changes nothing
    again = await c.delete(DEPLOYMENTS, "web", "default")
    assert again["metadata"]["resourceVersion"] == out["metadata"]["resourceVersion"]
    # the deletionTimestamp cannot be cleared by an update
    again["metadata"].pop("deletionTimestamp")
    again["metadata"]["labels"] = {"x": "y"}
    kept = await c.update(DEPLOYMENTS, again)
    assert kept["metadata"]["deletionTimestamp"]
    await c.patch(DEPLOYMENTS, "web", {"metadata": {"finalizers": []}}, "default",
                  patch_type="merge")
    assert c.objects("deployments") == []
    await c.create(DEPLOYMENTS, deployment("orphaned"))
    out = await c.delete(DEPLOYMENTS, "orphaned", "default", propagation_policy="Orphan")
    assert out["metadata"]["finalizers"] == ["orphan"]


async def test_scale_subresource():
    c = FakeClient()
    await c.create(DEPLOYMENTS, deployment(replicas=2))
    scale = await c.get(DEPLOYMENTS, "web", "default", subresource="scale")
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 2
    assert scale["status"]["selector"] == "app=web"
    scale["spec"]["replicas"] = 5
    out = await c.update(DEPLOYMENTS, scale, subresource="scale")
    assert out["spec"]["replicas"] == 5
    out = await c.patch(DEPLOYMENTS, "web", {"spec": {"replicas": 1}}, "default",
                        patch_type="merge", subresource="scale")
    assert out["spec"]["replicas"] == 1
    d = (await c.get(DEPLOYMENTS, "web", "default"))
    assert d["spec"]["replicas"] == 1 and d["metadata"]["generation"] == 3
    with pytest.raises(APIError) as exc:
        await c.get(CONFIGMAPS, "x", "default", subresource="scale")
    assert exc.value.code == 404


async def test_injected_errors_and_recorded_requests():
    c = FakeClient()
    c.fail("create", "configmaps", APIError(500, "InternalError", "boom"), times=2)
    for _ in range(2):
        with pytest.raises(APIError):
            await c.create(CONFIGMAPS, {"metadata": {"name": "x", **NAMESPACED}})
    await c.create(CONFIGMAPS, {"metadata": {"name": "x", **NAMESPACED}},
                   field_manager="mine")
    assert len(c.objects("configmaps")) == 1
    req = c.requests_for("create", "configmaps")[-1]
    assert (req.namespace, req.body["metadata"]["name"], req.params) == \
        ("default", "x", {"field_manager": "mine"})


@pytest.mark.parametrize("verb", ["get", "list", "list_all", "create", "update", "patch",
                                  "delete", "watch"])
def test_same_signatures_as_the_real_client(verb):
    import inspect

    from bootstrap.api.client import Client
    assert inspect.signature(getattr(FakeClient, verb)) == \
        inspect.signature(getattr(Client, verb))
