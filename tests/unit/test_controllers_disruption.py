"""Disruption controller on the FakeClient: pods and controllers in, PDB status out."""

import copy

import pytest
from ctlharness import Clock, running, stamp, until

from bootstrap.agents.controllers.disruption import DisruptionController, expected_and_desired

pytestmark = pytest.mark.timeout(60)
PDBS = ("policy", "v1", "poddisruptionbudgets")
T0 = 1_800_000_000.0


def deployment(replicas=3):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "d-uid"},
            "spec": {"replicas": replicas}}


def rs():
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-abc", "namespace": "default", "uid": "rs-uid",
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                              "name": "web", "uid": "d-uid",
                                              "controller": True}]},
            "spec": {"replicas": 3}}


def pod(name, ready=True, owner=True):
    p = {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
         "spec": {"containers": [{"name": "c", "image": "x"}]},
         "status": {"phase": "Running", "conditions": [
             {"type": "Ready", "status": "True" if ready else "False"}]}}
    if owner:
        p["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                             "name": "web-abc", "uid": "rs-uid",
                                             "controller": True}]
    return p


def pdb(**spec):
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec}}


def st(client):
    return client.objects("poddisruptionbudgets")[0].get("status") or {}


async def test_min_available_int_gives_allowed_disruptions_and_condition():
    seed = [deployment(), rs(), pod("a"), pod("b"), pod("c", ready=False), pdb(minAvailable=1)]
    async with running(DisruptionController, *seed, clock=Clock(T0)) as (client, ctl, rec):
        await until(lambda: st(client).get("observedGeneration") == 1)
        s = st(client)
        assert (s["expectedPods"], s["desiredHealthy"], s["currentHealthy"],
                s["disruptionsAllowed"]) == (3, 1, 2, 1)
        cond = s["conditions"][0]
        assert cond["type"] == "DisruptionAllowed" and cond["status"] == "True"
        assert cond["reason"] == "SufficientPods"


async def test_percent_uses_the_deployment_scale_and_disrupted_pods_expire():
    seed = [deployment(replicas=4), rs(), pod("a"), pod("b"), pod("c"),
            pdb(maxUnavailable="50%")]
    clock = Clock(T0)
    async with running(DisruptionController, *seed, clock=clock) as (client, ctl, rec):
        await until(lambda: st(client).get("expectedPods") == 4)
        s = st(client)
        assert s["desiredHealthy"] == 2 and s["disruptionsAllowed"] == 1
        # an eviction recorded "a" as disrupted: it stops counting for two minutes
        obj = copy.deepcopy(client.objects("poddisruptionbudgets")[0])
        obj["status"]["disruptionsAllowed"] = 0
        obj["status"]["disruptedPods"] = {"a": stamp(T0)}
        await client.update(PDBS, obj, subresource="status")
        await until(lambda: st(client).get("currentHealthy") == 2 and
                    st(client)["conditions"][0]["reason"] == "InsufficientPods")
        assert st(client)["disruptionsAllowed"] == 0
        clock.advance(121)
        ctl.enqueue("default/web")
        await until(lambda: st(client).get("currentHealthy") == 3)
        assert "disruptedPods" not in st(client)


async def test_unknown_controller_fails_safe():
    orphan = pod("x")
    orphan["metadata"]["ownerReferences"][0]["uid"] = "gone"
    async with running(DisruptionController, orphan, pdb(minAvailable="50%"),
                       clock=Clock(T0)) as (client, ctl, rec):
        await until(lambda: st(client).get("conditions"))
        assert st(client)["disruptionsAllowed"] == 0
        assert st(client)["conditions"][0]["reason"] == "SyncFailed"
        assert "CalculateExpectedPodCountFailed" in rec.reasons()


def test_expected_counts_follow_upstream_rounding():
    pods = [pod(n) for n in "abc"]
    scale = lambda p: ("d", 5)  # noqa: E731
    assert expected_and_desired(pdb(minAvailable="30%"), pods, scale)[:2] == (5, 2)
    assert expected_and_desired(pdb(maxUnavailable=1), pods, scale)[:2] == (5, 4)
    assert expected_and_desired(pdb(maxUnavailable="10%"), pods, scale)[:2] == (5, 4)
    assert expected_and_desired(pdb(minAvailable=2), pods, scale)[:2] == (3, 2)
    unmanaged = expected_and_desired(pdb(maxUnavailable=1), [pod("u", owner=False)], scale)
    assert unmanaged == (0, 0, ["u"])
