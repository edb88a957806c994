"""nodelifecycle and taint eviction with an injected clock."""

import pytest
from cmharness import T0, Clock, caught_up, stamp, synced

from bootstrap.agents.controllers.nodehealth import NodeHealth, wanted_taints
from bootstrap.agents.controllers.nodelifecycle import NodeLifecycleController
from bootstrap.agents.controllers.tainteviction import TaintEvictionController, eviction_delay
from bootstrap.api.resources import by_gvr

pytestmark = pytest.mark.timeout(20)
LEASES = by_gvr("coordination.k8s.io", "v1", "leases")
NOT_READY, UNREACHABLE = "node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"


def node(name="n1", ready="True", heartbeat=T0, taints=None):
    n = {"apiVersion": "v1", "kind": "Node",
         "metadata": {"name": name, "creationTimestamp": stamp(T0 - 3600)},
         "spec": {}, "status": {"conditions": []}}
    if ready is not None:
        n["status"]["conditions"].append({"type": "Ready", "status": ready,
                                          "lastHeartbeatTime": stamp(heartbeat),
                                          "lastTransitionTime": stamp(T0 - 3600)})
    if taints:
        n["spec"]["taints"] = taints
    return n


def lease(name="n1", renew=T0):
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "renewTime": stamp(renew) .replace("Z", ".000000Z")}}


def pod(name, node_name="n1", tolerations=None, ready="True"):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
            "spec": {"nodeName": node_name, "containers": [{"name": "c", "image": "x"}],
                     "tolerations": tolerations or []},
            "status": {"phase": "Running",
                       "conditions": [{"type": "Ready", "status": ready}]}}


def conditions(n):
    return {c["type"]: c for c in n["status"]["conditions"]}


def test_health_goes_unknown_after_grace_unless_the_lease_moves():
    h = NodeHealth(grace=40, startup_grace=60)
    n = node()
    assert h.observe(n, lease(), T0, T0 - 3600)[0] is None
    # the kubelet only renews its lease: still healthy at T0+60
    assert h.observe(n, lease(renew=T0 + 30), T0 + 30, 0)[0] is None
    assert h.observe(n, lease(renew=T0 + 30), T0 + 60, 0)[0] is None
    stale, observed, _ = h.observe(n, lease(renew=T0 + 30), T0 + 71, 0)
    assert observed == "True"
    c = conditions(stale)
    assert (c["Ready"]["status"], c["Ready"]["reason"], c["Ready"]["message"]) == (
        "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
    assert c["MemoryPressure"]["reason"] == "NodeStatusNeverUpdated"
    assert c["Ready"]["lastTransitionTime"] == stamp(T0 + 71)
    assert "NetworkUnavailable" not in c


def test_health_uses_the_startup_grace_for_a_node_that_never_posted():
    h = NodeHealth(grace=40, startup_grace=60)
    fresh = node(ready=None)
    assert h.observe(fresh, None, T0 + 50, T0)[0] is None
    stale, observed, _ = h.observe(fresh, None, T0 + 61, T0)
    assert observed == "Unknown"
    assert conditions(stale)["Ready"]["message"] == "Kubelet never posted node status."


def test_wanted_taints_follow_ready_and_keep_foreign_and_time_added():
    foreign = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    n = node(ready="Unknown", taints=[foreign])
    t = wanted_taints(n, T0)
    assert {(x["key"], x["effect"]) for x in t} == {
        ("dedicated", "NoSchedule"), (UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")}
    n["spec"]["taints"] = t
    assert wanted_taints(n, T0 + 100) == t  # stable, timeAdded kept
    n["status"]["conditions"][0]["status"] = "False"
    t2 = wanted_taints(n, T0 + 200)
    assert {(x["key"], x["effect"]) for x in t2} == {
        ("dedicated", "NoSchedule"), (NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")}
    n["status"]["conditions"][0]["status"] = "True"
    n["spec"]["unschedulable"] = True
    assert {(x["key"], x["effect"]) for x in wanted_taints(n, T0)} == {
        ("dedicated", "NoSchedule"), ("node.kubernetes.io/unschedulable", "NoSchedule")}


def lifecycle(clock):
    return lambda c, f, r: NodeLifecycleController(c, f, r, grace=40, startup_grace=60,
                                                   period=5, clock=clock)


async def test_silent_node_is_marked_tainted_and_its_pods_not_ready():
    clock = Clock()
    async with synced(lifecycle(clock), node(), lease(), node("n2"), pod("a"),
                      pod("elsewhere", node_name="n2")) as (client, ctl, events):
        assert await ctl.reconcile("n1") == 5
        assert [r.verb for r in client.writes()] == []
        clock.advance(41)
        await ctl.reconcile("n1")
        n = next(x for x in client.objects("nodes") if x["metadata"]["name"] == "n1")
        assert conditions(n)["Ready"]["status"] == "Unknown"
        assert {(t["key"], t["effect"]) for t in n["spec"]["taints"]} == {
            (UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")}
        assert next(t for t in n["spec"]["taints"] if t["effect"] == "NoExecute")[
            "timeAdded"] == stamp(clock.now)
        pods = {p["metadata"]["name"]: p for p in client.objects("pods")}
        assert conditions(pods["a"])["Ready"]["status"] == "False"
        assert conditions(pods["elsewhere"])["Ready"]["status"] == "True"
        assert sorted(events.reasons()) == ["NodeNotReady", "NodeNotReady", "RegisteredNode"]
        assert events.events[0][3:] == ("RegisteredNode",
                                        "Node n1 event: Registered Node n1 in Controller")
        assert ("Node", "n1", "Normal", "NodeNotReady", "Node n1 status is now: NodeNotReady") \
            in events.events
        # level-triggered: another pass writes nothing new
        count = len(client.writes())
        await caught_up(client, ctl.factory)
        clock.advance(5)
        await ctl.reconcile("n1")
        assert len(client.writes()) == count and len(events.events) == 3


async def test_ready_again_removes_the_taints():
    clock = Clock()
    tainted = node(taints=[{"key": UNREACHABLE, "effect": "NoExecute",
                            "timeAdded": stamp(T0)},
                           {"key": UNREACHABLE, "effect": "NoSchedule"}])
    async with synced(lifecycle(clock), tainted, lease()) as (client, ctl, _):
        await ctl.reconcile("n1")
        assert client.objects("nodes")[0]["spec"]["taints"] == []


def test_eviction_delay_rules():
    unreachable = [{"key": UNREACHABLE, "effect": "NoExecute"}]
    assert eviction_delay(pod("p"), unreachable) == 0
    tol = {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
           "tolerationSeconds": 300}
    assert eviction_delay(pod("p", tolerations=[tol]), unreachable) == 300
    forever = {"operator": "Exists"}
    assert eviction_delay(pod("p", tolerations=[forever]), unreachable) is None
    assert eviction_delay(pod("p", tolerations=[tol, forever]), unreachable) == 300
    negative = dict(tol, tolerationSeconds=-5)
    assert eviction_delay(pod("p", tolerations=[negative]), unreachable) == 0
    both = unreachable + [{"key": "x", "value": "y", "effect": "NoExecute"}]
    assert eviction_delay(pod("p", tolerations=[tol]), both) == 0
    wrong_value = {"key": "x", "operator": "Equal", "value": "z", "effect": "NoExecute"}
    assert eviction_delay(pod("p", tolerations=[tol, wrong_value]), both) == 0


async def test_taint_eviction_after_toleration_seconds():
    clock = Clock(T0 + 10)
    tol = {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
           "tolerationSeconds": 300}
    tainted = node(ready="Unknown", taints=[{"key": UNREACHABLE, "effect": "NoExecute",
                                             "timeAdded": stamp(T0)}])
    async with synced(lambda c, f, r: TaintEvictionController(c, f, r, clock=clock), tainted,
                      pod("patient", tolerations=[tol]), pod("intolerant"),
                      pod("other", node_name="n2")) as (client, ctl, events):
        assert await ctl.reconcile("default/intolerant") is None
        assert await ctl.reconcile("default/patient") == 290
        assert await ctl.reconcile("default/other") is None
        assert [r.name for r in client.requests_for("delete")] == ["intolerant"]
        clock.advance(291)
        await ctl.reconcile("default/patient")
        assert [r.name for r in client.requests_for("delete")] == ["intolerant", "patient"]
        assert client.requests_for("delete")[0].body["preconditions"] == {
            "uid": "uid-intolerant"}
        status = client.requests_for("update", "pods", "status")[0].body["status"]
        target = conditions({"status": status})["DisruptionTarget"]
        assert target["reason"] == "DeletionByTaintManager"
        assert events.events[0][3:] == ("TaintManagerEviction",
                                        "Marking for deletion Pod default/intolerant")


async def test_taint_eviction_counts_from_first_sight_without_time_added():
    clock = Clock()
    tol = {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
           "tolerationSeconds": 60}
    tainted = node(ready="Unknown", taints=[{"key": UNREACHABLE, "effect": "NoExecute"}])
    async with synced(lambda c, f, r: TaintEvictionController(c, f, r, clock=clock), tainted,
                      pod("p", tolerations=[tol])) as (client, ctl, _):
        assert await ctl.reconcile("default/p") == 60
        clock.advance(30)
        assert await ctl.reconcile("default/p") == 30
        assert not client.requests_for("delete")


def test_zone_state():
    from bootstrap.agents.controllers.nodehealth import zone_state
    assert zone_state(["Unknown"]) == "FullDisruption"
    assert zone_state(["True", "Unknown"]) == "Normal"
    assert zone_state(["True", "False", "Unknown", "Unknown"]) == "PartialDisruption"
    assert zone_state(["True", "True", "False", "Unknown", "Unknown"]) == "PartialDisruption"
    assert zone_state(["True"] * 3 + ["Unknown"] * 3) == "Normal"  # under 55 %
    assert zone_state([]) == "Normal"


def labelled(name, zone, ready="True", **kw):
    n = node(name, ready=ready, **kw)
    n["metadata"]["labels"] = {"topology.kubernetes.io/zone": zone}
    return n


async def test_master_disruption_mode_removes_no_execute_taints():
    clock = Clock()
    tainted = node(ready="Unknown", taints=[{"key": UNREACHABLE, "effect": "NoExecute",
                                             "timeAdded": stamp(T0)}])
    excluded = node("control-plane")  # healthy, but excluded from disruption checks
    excluded["metadata"]["labels"] = {"node.kubernetes.io/exclude-disruption": ""}
    async with synced(lifecycle(clock), tainted, excluded) as (client, ctl, _):
        await ctl.reconcile("n1")  # the only counted node is down: we are the problem
        n = next(x for x in client.objects("nodes") if x["metadata"]["name"] == "n1")
        assert {(t["key"], t["effect"]) for t in n["spec"]["taints"]} == {
            (UNREACHABLE, "NoSchedule")}


async def test_small_partially_disrupted_zone_adds_no_new_no_execute_taints():
    clock = Clock()
    seed = [labelled("a", "z1"), labelled("b", "z1", ready="Unknown"),
            labelled("c", "z1", ready="Unknown"), labelled("d", "z1", ready="Unknown"),
            labelled("e", "z2")]
    async with synced(lifecycle(clock), *seed) as (client, ctl, _):
        await ctl.reconcile("b")
        b = next(x for x in client.objects("nodes") if x["metadata"]["name"] == "b")
        assert {(t["key"], t["effect"]) for t in b["spec"]["taints"]} == {
            (UNREACHABLE, "NoSchedule")}


async def test_no_execute_tainting_is_rate_limited_per_zone():
    clock = Clock()
    seed = [labelled("a", "z1"), labelled("b", "z1", ready="Unknown"),
            labelled("c", "z1", ready="Unknown"), labelled("d", "z1"), labelled("e", "z1"),
            labelled("f", "z1"), labelled("x", "z2", ready="Unknown"), labelled("y", "z2")]

    def no_execute(name):
        n = next(x for x in client.objects("nodes") if x["metadata"]["name"] == name)
        return [t for t in n["spec"].get("taints") or [] if t["effect"] == "NoExecute"]

    async with synced(lifecycle(clock), *seed) as (client, ctl, _):
        assert await ctl.reconcile("b") == 5
        assert no_execute("b")
        assert await ctl.reconcile("c") == 5  # NoSchedule now, NoExecute in 10 s
        assert not no_execute("c")
        await ctl.reconcile("x")  # another zone has its own budget
        assert no_execute("x")
        await caught_up(client, ctl.factory)
        clock.advance(8)
        assert await ctl.reconcile("c") == pytest.approx(2.0)  # back when the budget allows
        assert not no_execute("c")
        await caught_up(client, ctl.factory)
        clock.advance(2)
        await ctl.reconcile("c")
        assert no_execute("c")
