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
