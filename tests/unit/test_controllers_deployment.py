"""Deployment controller on the FakeClient (with the ReplicaSet controller and a
test kubelet where pods matter): objects in, requests out."""

import copy

import pytest
from ctlharness import Clock, kubelet, running, template, until

from bootstrap.agents.controllers import deployment_util as du
from bootstrap.agents.controllers.deployment import DeploymentController
from bootstrap.agents.controllers.replicaset import ReplicaSetController
from bootstrap.api.defaults import apply_defaults

pytestmark = pytest.mark.timeout(60)
DEPLOYMENTS = ("apps", "v1", "deployments")
BOTH = [DeploymentController, ReplicaSetController]


def deployment(name="web", replicas=4, image="x", **spec):
    obj = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                    "template": template({"app": name}, image), **spec}}
    return apply_defaults(obj, ("apps", "v1", "Deployment"))


def rss(client):
    return sorted(client.objects("replicasets"), key=lambda r: int(
        r["metadata"]["annotations"][du.REVISION]))


def dep(client):
    return client.objects("deployments")[0]


async def set_spec(client, **changes):
    d = copy.deepcopy(dep(client))
    for path, value in changes.items():
        cur = d["spec"]
        parts = path.split("__")
        for p in parts[:-1]:
            cur = cur[p]
        cur[parts[-1]] = value
    await client.update(DEPLOYMENTS, d)


def image_of(rs):
    return rs["spec"]["template"]["spec"]["containers"][0]["image"]


def rolled_out(client, image, replicas=4):
    d = dep(client)
    st = d.get("status") or {}
    return (st.get("observedGeneration") == d["metadata"]["generation"]
            and st.get("updatedReplicas") == replicas and st.get("replicas") == replicas
            and st.get("availableReplicas") == replicas
            and any(image_of(r) == image and r["spec"]["replicas"] == replicas
                    for r in client.objects("replicasets")))


async def test_creates_replica_set_with_hash_revision_and_conditions():
    clock = Clock()
    async with running(DeploymentController, deployment(replicas=5), clock=clock) as (
            client, ctl, rec):
        await until(lambda: len(client.objects("replicasets")) == 1 and
                    du.get_condition(dep(client).get("status") or {}, "Progressing"))
        rs = client.objects("replicasets")[0]
        digest = rs["metadata"]["labels"][du.POD_TEMPLATE_HASH]
        assert rs["metadata"]["name"] == f"web-{digest}"
        assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": digest}
        assert rs["spec"]["template"]["metadata"]["labels"][du.POD_TEMPLATE_HASH] == digest
        assert rs["spec"]["replicas"] == 5
        ann = rs["metadata"]["annotations"]
        assert ann[du.REVISION] == "1" and ann[du.DESIRED_REPLICAS] == "5"
        assert ann[du.MAX_REPLICAS] == "7"   # 5 + ceil(25% of 5)
        assert rs["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
        await until(lambda: dep(client)["metadata"].get("annotations", {}).get(du.REVISION)
                    == "1")
        assert ("Deployment/web", "Normal", "ScalingReplicaSet",
                f"Scaled up replica set web-{digest} to 5 from 0") in rec.events
        cond = du.get_condition(dep(client)["status"], "Progressing")
        assert cond["status"] == "True" and cond["reason"] in (du.NEW_RS_CREATED, du.RS_UPDATED)
        avail = du.get_condition(dep(client)["status"], "Available")
        assert avail["status"] == "False" and avail["reason"] == du.MIN_UNAVAILABLE


async def test_rolling_update_respects_surge_and_unavailable_then_rollback():
    d = deployment(replicas=4, strategy={"type": "RollingUpdate", "rollingUpdate": {
        "maxSurge": 1, "maxUnavailable": 0}})
    async with running(BOTH, d) as (client, ctl, rec), kubelet(client):
        await until(lambda: rolled_out(client, "x"))
        cond = du.get_condition(dep(client)["status"], "Progressing")
        assert cond["reason"] == du.NEW_RS_AVAILABLE
        assert du.get_condition(dep(client)["status"], "Available")["status"] == "True"
        client.requests.clear()
        await set_spec(client, template__spec__containers=[{"name": "c", "image": "y"}])
        await until(lambda: rolled_out(client, "y"))
        # every ReplicaSet resize kept old+new <= replicas + maxSurge
        sizes = {}
        for req in client.requests:
            if req.resource == "replicasets" and req.verb in ("create", "update") \
                    and not req.subresource:
                sizes[req.body["metadata"]["name"]] = req.body["spec"]["replicas"]
                assert sum(sizes.values()) <= 5, sizes
        old, new = rss(client)
        assert old["spec"]["replicas"] == 0 and image_of(new) == "y"
        assert new["metadata"]["annotations"][du.REVISION] == "2"
        assert dep(client)["metadata"]["annotations"][du.REVISION] == "2"
        # kubectl rollout undo: the template of revision 1 comes back
        undo = copy.deepcopy(old["spec"]["template"])
        undo["metadata"]["labels"].pop(du.POD_TEMPLATE_HASH)
        await set_spec(client, template=undo)
        await until(lambda: rolled_out(client, "x"))
        assert len(client.objects("replicasets")) == 2      # the old RS was reused
        back = next(r for r in client.objects("replicasets") if image_of(r) == "x")
        assert back["metadata"]["annotations"][du.REVISION] == "3"
        assert back["metadata"]["annotations"][du.REVISION_HISTORY] == "1"


async def test_paused_deployment_does_not_roll_but_scales():
    async with running(BOTH, deployment(replicas=2)) as (client, ctl, rec), kubelet(client):
        await until(lambda: rolled_out(client, "x", 2))
        await set_spec(client, paused=True)
        await until(lambda: (du.get_condition(dep(client)["status"], "Progressing") or {})
                    .get("reason") == du.PAUSED)
        await set_spec(client, template__spec__containers=[{"name": "c", "image": "y"}],
                       replicas=3)
        await until(lambda: client.objects("replicasets")[0]["spec"]["replicas"] == 3)
        assert len(client.objects("replicasets")) == 1
        await set_spec(client, paused=False)
        await until(lambda: rolled_out(client, "y", 3))
        cond = du.get_condition(dep(client)["status"], "Progressing")
        assert cond["reason"] == du.NEW_RS_AVAILABLE


async def test_recreate_scales_old_to_zero_before_new():
    d = deployment(replicas=3, strategy={"type": "Recreate"})
    async with running(BOTH, d) as (client, ctl, rec), kubelet(client):
        await until(lambda: rolled_out(client, "x", 3))
        client.requests.clear()
        await set_spec(client, template__spec__containers=[{"name": "c", "image": "y"}])
        await until(lambda: rolled_out(client, "y", 3))
        creates = [r for r in client.requests
                   if r.resource == "replicasets" and r.verb == "create"]
        # one new ReplicaSet (a create repeated from a lagging cache is a 409, as upstream)
        assert len({r.body["metadata"]["name"] for r in creates}) == 1
        assert len(client.objects("replicasets")) == 2
        # the old RS went to 0 before the new RS was created
        first_create = client.requests.index(creates[0])
        downs = [i for i, r in enumerate(client.requests)
                 if r.resource == "replicasets" and r.verb == "update" and not r.subresource
                 and r.body["spec"]["replicas"] == 0]
        assert downs and downs[0] < first_create


async def test_revision_history_limit_deletes_oldest():
    d = deployment(replicas=1, revisionHistoryLimit=1)
    async with running(BOTH, d) as (client, ctl, rec), kubelet(client):
        for image in ("x", "y", "z"):
            if image != "x":
                await set_spec(client, template__spec__containers=[{"name": "c", "image": image}])
            await until(lambda image=image: rolled_out(client, image, 1))
        await until(lambda: len(client.objects("replicasets")) == 2)
        assert {image_of(r) for r in client.objects("replicasets")} == {"y", "z"}


async def test_progress_deadline_exceeded():
    clock = Clock()
    d = deployment(replicas=2, progressDeadlineSeconds=30)
    async with running(BOTH, d, clock=clock) as (client, ctl, rec):
        # settled: the ReplicaSet's status (2 pods, none ready) reached the Deployment
        await until(lambda: (dep(client).get("status") or {}).get("updatedReplicas") == 2)
        await until(lambda: (client.objects("replicasets")[0].get("status") or {})
                    .get("replicas") == 2)
        for _ in range(2):
            await ctl[0].process("default/web")
        clock.advance(31)
        ctl[0].enqueue("default/web")
        await until(lambda: (du.get_condition(dep(client).get("status") or {}, "Progressing")
                             or {}).get("reason") == du.TIMED_OUT)
        cond = du.get_condition(dep(client)["status"], "Progressing")
        assert cond["status"] == "False"
        assert cond["message"].endswith("has timed out progressing.")


def test_fenceposts_and_sizes_round_as_upstream():
    assert du.resolve_fenceposts("25%", "25%", 10) == (3, 2)
    assert du.resolve_fenceposts(0, 0, 10) == (0, 1)
    assert du.resolve_fenceposts("0%", "0%", 3) == (0, 1)
    assert du.resolve_fenceposts("50%", "50%", 5) == (3, 2)
    d = deployment(replicas=10)
    assert du.max_surge(d) == 3 and du.max_unavailable(d) == 2
    d1 = deployment(replicas=1, strategy={"type": "RollingUpdate", "rollingUpdate": {
        "maxSurge": 0, "maxUnavailable": 5}})
    assert du.max_unavailable(d1) == 1
    # new RS grows into the surge room only
    old = {"metadata": {"name": "a"}, "spec": {"replicas": 10}}
    new = {"metadata": {"name": "b"}, "spec": {"replicas": 0}}
    assert du.new_rs_new_replicas(d, [old, new], new) == 3
    # old RS: 10 available, new 3 not yet: available may drop to minAvailable 8
    old["status"] = {"availableReplicas": 10}
    old["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    new["spec"]["replicas"] = 3
    assert du.old_scale_down(d, [old, new], [old], new) == {"a": 8}
    new["status"] = {"availableReplicas": 3}
    assert du.old_scale_down(d, [old, new], [old], new) == {"a": 5}


def test_proportional_scaling_during_rollout():
    d = deployment(replicas=20)   # was 10; surge 25% -> 5
    a = {"metadata": {"name": "a", "creationTimestamp": "2026-01-01T00:00:00Z",
                      "annotations": {du.MAX_REPLICAS: "13"}}, "spec": {"replicas": 8}}
    b = {"metadata": {"name": "b", "creationTimestamp": "2026-01-02T00:00:00Z",
                      "annotations": {du.MAX_REPLICAS: "13"}}, "spec": {"replicas": 5}}
    sizes = du.proportional_scale(d, b, [a])
    assert sum(sizes.values()) == 25 and sizes["a"] > sizes["b"] > 5


def test_replica_failure_of_a_replica_set_shows_on_the_deployment():
    d = deployment(replicas=2)
    d["metadata"]["name"] = "web"
    rs = {"metadata": {"name": "web-1"}, "spec": {"replicas": 2}, "status": {
        "replicas": 0, "conditions": [{"type": "ReplicaFailure", "status": "True",
                                       "reason": "FailedCreate",
                                       "message": "pods is forbidden: exceeded quota"}]}}
    st = du.calculate_status(d, [rs], rs, 0.0)
    cond = du.get_condition(st, "ReplicaFailure")
    assert cond["reason"] == "FailedCreate" and "exceeded quota" in cond["message"]
    rs["status"]["conditions"] = []
    d["status"] = st
    assert du.get_condition(du.calculate_status(d, [rs], rs, 0.0), "ReplicaFailure") is None
