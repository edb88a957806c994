"""ReplicaSet controller on the FakeClient: objects in, requests out."""

import pytest
from ctlharness import Clock, running, set_pod_status, stamp, template, until

from bootstrap.agents.controllers import podcontrol as pc
from bootstrap.agents.controllers.replicaset import ReplicaSetController, calculate_status
from bootstrap.api.errors import APIError

pytestmark = pytest.mark.timeout(30)


def rs(name="web", replicas=3, labels=None, min_ready=0):
    labels = labels or {"app": name}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "minReadySeconds": min_ready,
                     "selector": {"matchLabels": labels}, "template": template(labels)}}


def pods(client, owner="web"):
    return [p for p in client.objects("pods")
            if (pc.controller_of(p) or {}).get("name") == owner
            and not p["metadata"].get("deletionTimestamp")]


async def test_scales_up_with_owner_refs_and_events_then_down():
    async with running(ReplicaSetController, rs(replicas=3)) as (client, ctl, rec):
        await until(lambda: len(pods(client)) == 3)
        pod = pods(client)[0]
        ref = pod["metadata"]["ownerReferences"][0]
        assert ref["kind"] == "ReplicaSet" and ref["controller"] and ref["blockOwnerDeletion"]
        assert pod["metadata"]["name"].startswith("web-")
        assert pod["metadata"]["labels"] == {"app": "web"}
        await until(lambda: rec.reasons().count("SuccessfulCreate") == 3)
        assert rec.events[0][3].startswith("Created pod: web-")
        # status: 3 replicas, none ready yet
        await until(lambda: (client.objects("replicasets")[0].get("status") or {})
                    .get("replicas") == 3)
        st = client.objects("replicasets")[0]["status"]
        assert st["fullyLabeledReplicas"] == 3 and st["observedGeneration"] == 1
        assert "readyReplicas" not in st
        # scale down to 1: two deletions
        cur = client.objects("replicasets")[0]
        cur["spec"]["replicas"] = 1
        await client.update(("apps", "v1", "replicasets"), cur)
        await until(lambda: len(client.objects("pods")) == 1)
        assert rec.reasons().count("SuccessfulDelete") == 2
        # no double creates while the cache catches up
        assert len(client.requests_for("create", "pods")) == 3


async def test_deletes_unready_and_unscheduled_first():
    async with running(ReplicaSetController, rs(replicas=3)) as (client, ctl, rec):
        await until(lambda: len(pods(client)) == 3)
        a, b, c = sorted(pods(client), key=lambda p: p["metadata"]["name"])
        await set_pod_status(client, a, ready=True)
        await set_pod_status(client, b, ready=False)          # scheduled, not ready
        cur = client.objects("replicasets")[0]
        cur["spec"]["replicas"] = 2
        await client.update(("apps", "v1", "replicasets"), cur)
        await until(lambda: len(pods(client)) == 2)
        left = {p["metadata"]["name"] for p in pods(client)}
        assert left == {a["metadata"]["name"], b["metadata"]["name"]}  # c was unscheduled
        cur = client.objects("replicasets")[0]
        cur["spec"]["replicas"] = 1
        await client.update(("apps", "v1", "replicasets"), cur)
        await until(lambda: len(pods(client)) == 1)
        assert pods(client)[0]["metadata"]["name"] == a["metadata"]["name"]


async def test_adopts_orphans_and_releases_non_matching():
    orphan = {"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": "stray", "namespace": "default", "labels": {"app": "web"}},
              "spec": {"containers": [{"name": "c", "image": "x"}]}}
    async with running(ReplicaSetController, orphan, rs(replicas=2)) as (client, ctl, rec):
        await until(lambda: len(pods(client)) == 2)
        assert "stray" in {p["metadata"]["name"] for p in pods(client)}
        assert len(client.requests_for("create", "pods")) == 1
        stray = next(p for p in client.objects("pods") if p["metadata"]["name"] == "stray")
        stray["metadata"]["labels"] = {"app": "other"}
        await client.update(pc.PODS, stray)
        await until(lambda: pc.controller_of(next(
            p for p in client.objects("pods") if p["metadata"]["name"] == "stray")) is None)
        await until(lambda: len(pods(client)) == 2)


async def test_failed_create_reports_event_and_condition_then_retries():
    forbidden = APIError(403, "Forbidden", 'pods "web-" is forbidden: exceeded quota')

    def prepare(client):
        client.fail("create", "pods", forbidden, times=1)

    async with running(ReplicaSetController, rs(replicas=2), prepare=prepare) as (
            client, ctl, rec):
        await until(lambda: len(client.objects("pods")) == 2)
        assert "FailedCreate" in rec.reasons()
        assert rec.events[0][3] == 'Error creating: pods "web-" is forbidden: exceeded quota'
        # the failing first batch of one stopped the slow start: one call, then a retry
        creates = client.requests_for("create", "pods")
        assert len(creates) == 3


def test_status_counts_available_after_min_ready_seconds():
    now = 1_000_000.0
    obj = rs(replicas=2, min_ready=10)
    obj["metadata"]["generation"] = 4
    ready = {"metadata": {"labels": {"app": "web"}}, "status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": stamp(now - 5)}]}}
    old_ready = {"metadata": {"labels": {"app": "web", "x": "y"}}, "status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": stamp(now - 60)}]}}
    partial = {"metadata": {"labels": {}}, "status": {"phase": "Pending"}}
    st = calculate_status(obj, [ready, old_ready, partial], now, None)
    assert st == {"replicas": 3, "fullyLabeledReplicas": 2, "readyReplicas": 2,
                  "availableReplicas": 1, "observedGeneration": 4}


def test_expectations_block_until_observed_or_expired():
    clock = Clock(0)
    exp = pc.Expectations(clock, ttl=300)
    assert exp.satisfied("ns/a")
    exp.expect_creations("ns/a", 2)
    assert not exp.satisfied("ns/a")
    exp.creation_observed("ns/a")
    assert not exp.satisfied("ns/a")
    exp.creation_observed("ns/a")
    assert exp.satisfied("ns/a")
    exp.expect_deletions("ns/a", ["ns/p1"])
    assert not exp.satisfied("ns/a")
    clock.advance(301)
    assert exp.satisfied("ns/a")


async def test_slow_start_batches_double_and_stop_on_error():
    calls = []

    async def ok():
        calls.append(1)

    done, err = await pc.slow_start_batch(10, ok)
    assert done == 10 and err is None and len(calls) == 10
    n = {"i": 0}

    async def fail_third():
        n["i"] += 1
        if n["i"] == 3:
            raise RuntimeError("boom")

    done, err = await pc.slow_start_batch(10, fail_third)
    # batches 1, 2 (second call of batch 2 is call 3 -> fails): 2 done, stop
    assert done == 2 and isinstance(err, RuntimeError) and n["i"] == 3


def test_deletion_order_ranks_as_upstream():
    def pod(name, node=None, phase="Pending", ready=False, cost=None):
        p = {"metadata": {"name": name, "creationTimestamp": stamp(100)},
             "spec": {"nodeName": node} if node else {}, "status": {"phase": phase}}
        if ready:
            p["status"]["conditions"] = [{"type": "Ready", "status": "True",
                                          "lastTransitionTime": stamp(100)}]
        if cost is not None:
            p["metadata"]["annotations"] = {pc.POD_DELETION_COST: str(cost)}
        return p
    order = pc.deletion_order([
        pod("ready", "n1", "Running", True), pod("unscheduled"),
        pod("pending", "n1"), pod("running", "n1", "Running"),
        pod("precious", "n1", "Running", True, cost=100)])
    assert [p["metadata"]["name"] for p in order] == [
        "unscheduled", "pending", "running", "ready", "precious"]


def test_workers_come_from_the_concurrent_syncs_flag():
    from bootstrap.agents.controllers.deployment import DeploymentController
    from bootstrap.agents.controllers.manager import Options
    from bootstrap.api.fake import FakeClient
    from bootstrap.api.informer import SharedInformerFactory
    client = FakeClient()
    opts = Options(concurrent_replicaset_syncs=7, concurrent_deployment_syncs=3)
    factory = SharedInformerFactory(client)
    assert ReplicaSetController.from_options(client, factory, None, opts).workers == 7
    assert DeploymentController.from_options(client, factory, None, opts).workers == 3


def rc(name="legacy", replicas=2):
    labels = {"app": name}
    return {"apiVersion": "v1", "kind": "ReplicationController",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": labels, "template": template(labels)}}


async def test_replication_controller_runs_the_same_loop_with_a_map_selector():
    from bootstrap.agents.controllers.replicaset import ReplicationControllerController
    async with running(ReplicationControllerController, rc(replicas=2)) as (client, ctl, rec):
        await until(lambda: len(pods(client, "legacy")) == 2)
        ref = pods(client, "legacy")[0]["metadata"]["ownerReferences"][0]
        assert ref["kind"] == "ReplicationController" and ref["apiVersion"] == "v1"
        await until(lambda: (client.objects("replicationcontrollers")[0].get("status") or {})
                    .get("replicas") == 2)
