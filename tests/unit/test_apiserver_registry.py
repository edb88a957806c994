"""Registry write paths (create/update bookkeeping) over an in-memory store."""

from __future__ import annotations

import copy

from bootstrap.agents.apiserver.registry import Ctx, Registry
from bootstrap.api import meta, patch
from bootstrap.api.resources import by_gvk

DEPLOY = by_gvk("apps", "v1", "Deployment")
JOB = by_gvk("batch", "v1", "Job")


class MemStore:
    """Just the Store calls the registry makes for non-Service kinds."""

    def __init__(self):
        self.objs: dict[tuple, dict] = {}
        self.rv = 0

    def _put(self, res, obj):
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        md = obj["metadata"]
        self.objs[(res.plural, md.get("namespace"), md["name"])] = copy.deepcopy(obj)
        return obj

    async def create(self, res, obj, **_):
        return self._put(res, obj)

    async def get(self, res, ns, name, **_):
        return copy.deepcopy(self.objs[(res.plural, ns, name)])

    async def guaranteed_update(self, res, ns, name, mutate, *, precondition_rv=None,
                                extra=None):
        current = copy.deepcopy(self.objs[(res.plural, ns, name)])
        new = await mutate(copy.deepcopy(current))
        return current, self._put(res, new)


def deployment(replicas=2, image="nginx:1"):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "d"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "nginx", "image": image}]}}}}


def managers(obj):
    return {(e["manager"], e["operation"]): e["fieldsV1"]
            for e in obj["metadata"].get("managedFields", [])}


async def test_server_side_apply_is_not_also_booked_as_update(monkeypatch):
    # Within one second an apply that changes only values leaves its managedFields
    # entry byte-identical; the write must still not be recorded as an Update too.
    monkeypatch.setattr(meta, "now_rfc3339", lambda: "2026-01-01T00:00:00Z")
    reg = Registry(MemStore(), allocator=None)
    applied = patch.apply(None, deployment(), DEPLOY.gvk, "kubectl", force=False)
    await reg.create(DEPLOY, "d", applied, Ctx(field_manager="kubectl", apply=True))

    async def compute(current):
        return patch.apply(current, deployment(replicas=5, image="nginx:2"), DEPLOY.gvk,
                           "kubectl", force=False)

    out = await reg.update(DEPLOY, "d", "web", compute,
                           Ctx(field_manager="kubectl", apply=True))
    owned = managers(out)
    assert set(owned) == {("kubectl", "Apply")}
    spec = owned[("kubectl", "Apply")]["f:spec"]
    assert "f:replicas" in spec
    assert 'k:{"name":"nginx"}' in spec["f:template"]["f:spec"]["f:containers"]
    assert out["spec"]["replicas"] == 5


async def test_ordinary_update_is_booked():
    reg = Registry(MemStore(), allocator=None)
    await reg.create(DEPLOY, "d", deployment(), Ctx(field_manager="kubectl-create"))

    async def compute(current):
        current["spec"]["replicas"] = 3
        return current

    out = await reg.update(DEPLOY, "d", "web", compute, Ctx(field_manager="kubectl-scale"))
    assert "f:replicas" in managers(out)[("kubectl-scale", "Update")]["f:spec"]


async def test_job_selector_generated_from_uid():
    reg = Registry(MemStore(), allocator=None)
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
           "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
               {"name": "pi", "image": "perl"}]}}}}
    out = await reg.create(JOB, "d", job, Ctx(field_manager="kubectl-create"))
    uid = out["metadata"]["uid"]
    assert out["spec"]["selector"] == {
        "matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    labels = out["spec"]["template"]["metadata"]["labels"]
    assert labels["batch.kubernetes.io/controller-uid"] == uid
    assert labels["controller-uid"] == uid
    assert labels["batch.kubernetes.io/job-name"] == "pi" and labels["job-name"] == "pi"


async def test_job_manual_selector_kept():
    reg = Registry(MemStore(), allocator=None)
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "m"},
           "spec": {"manualSelector": True, "selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}}, "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "busybox"}]}}}}
    out = await reg.create(JOB, "d", job, Ctx())
    assert out["spec"]["selector"] == {"matchLabels": {"a": "b"}}
