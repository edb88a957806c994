"""The framework's cycle and upstream's FitError message, as data."""

from __future__ import annotations

from test_scheduler_builders import cache_of, default_framework, node, pod, schedule

from bootstrap.agents.scheduler.cache import PodInfo
from bootstrap.agents.scheduler.framework import (
    FitError,
    ScheduleResult,
    Status,
    fit_message,
    num_feasible_nodes_to_find,
)

CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def test_fit_message_counts_and_sorts_reasons():
    statuses = {"cp": Status(3, ("node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }",)),
                "w1": Status(2, ("Insufficient cpu",)), "w2": Status(2, ("Insufficient cpu",))}
    msg = fit_message(3, statuses, post_filter_msg="preemption: " + fit_message(
        3, {}, absent_reason="Preemption is not helpful for scheduling"))
    assert msg == ("0/3 nodes are available: 1 node(s) had untolerated taint "
                   "{node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. preemption: "
                   "0/3 nodes are available: 3 Preemption is not helpful for scheduling.")


def test_a_node_with_several_reasons_counts_each():
    msg = fit_message(1, {"n": Status(2, ("Insufficient cpu", "Insufficient memory"))})
    assert msg == "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."


def test_schedule_end_to_end_message():
    nodes = [node("cp", taints=[CP_TAINT]), node("w1", cpu="1"), node("w2", cpu="1")]
    result = schedule(pod("big", cpu="2"), nodes)
    assert isinstance(result, FitError)
    assert result.message() == ("0/3 nodes are available: 1 node(s) had untolerated taint "
                                "{node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu.")
    assert result.unschedulable_plugins() == {"TaintToleration", "NodeResourcesFit"}


def test_no_nodes():
    result = schedule(pod("p"), [])
    assert isinstance(result, FitError) and result.message() == "0/0 nodes are available:"


def test_picks_the_best_scoring_node():
    nodes = [node("small", cpu="2", memory="4Gi"), node("large", cpu="16", memory="64Gi")]
    result = schedule(pod("p", cpu="1", memory="1Gi"), nodes)
    assert isinstance(result, ScheduleResult) and result.node == "large"


def test_taints_affinity_and_resources_together():
    nodes = [node("cp", taints=[CP_TAINT], labels={"disk": "ssd"}),
             node("w1", labels={"disk": "ssd"}, cpu="1"),
             node("w2", labels={"disk": "ssd"}), node("w3")]
    result = schedule(pod("p", cpu="2", node_selector={"disk": "ssd"}), nodes)
    assert result.node == "w2"


def test_assumed_pods_count_against_the_next_cycle():
    fw = default_framework()
    c = cache_of([node("n1", cpu="1"), node("n2", cpu="1")])
    placed = []
    for i in range(2):
        pi = PodInfo(pod(f"p{i}", cpu="800m"))
        result, _ = fw.schedule(pi, c.snapshot())
        c.assume(pi, result.node)
        placed.append(result.node)
    assert sorted(placed) == ["n1", "n2"]
    result, _ = fw.schedule(PodInfo(pod("p3", cpu="800m")), c.snapshot())
    assert isinstance(result, FitError)
    c.forget("default/p0")
    result, _ = fw.schedule(PodInfo(pod("p3", cpu="800m")), c.snapshot())
    assert result.node == placed[0]


def test_a_failed_binding_does_not_forget_a_pod_the_informer_shows_bound():
    c = cache_of([node("n1", cpu="1")])
    p = pod("p", cpu="800m")
    c.assume(PodInfo(p), "n1")
    c.add_pod({**p, "spec": {**p["spec"], "nodeName": "n1"}})   # the watch was faster
    c.forget_assumed("default/p")                                 # then the 409 arrives
    assert c.has_pod("default/p") and c.nodes["n1"].requested["cpu"] == 800
    q = pod("q", cpu="100m")
    c.assume(PodInfo(q), "n1")
    c.forget_assumed("default/q")
    assert not c.has_pod("default/q") and c.nodes["n1"].requested["cpu"] == 800


def test_nominated_higher_priority_pods_hold_their_room():
    fw = default_framework()
    c = cache_of([node("n1", cpu="1")])
    nominated = {"n1": [PodInfo(pod("vip", cpu="800m", priority=1000))]}
    result, _ = fw.schedule(PodInfo(pod("p", cpu="500m")), c.snapshot(), nominated)
    assert isinstance(result, FitError)
    # a higher-priority pod is not held back by a lower-priority nomination
    result, _ = fw.schedule(PodInfo(pod("p", cpu="500m", priority=2000)), c.snapshot(), nominated)
    assert result.node == "n1"


def test_spread_across_nodes_through_the_cycle():
    fw = default_framework()
    nodes = [node(f"n{i}", labels={"zone": f"z{i % 3}"}) for i in range(6)]
    c = cache_of(nodes)
    spread = [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "web"}}}]
    per_zone: dict[str, int] = {}
    for i in range(9):
        pi = PodInfo(pod(f"w{i}", labels={"app": "web"}, spread=spread, cpu="100m"))
        result, _ = fw.schedule(pi, c.snapshot())
        c.assume(pi, result.node)
        zone = c.nodes[result.node].labels["zone"]
        per_zone[zone] = per_zone.get(zone, 0) + 1
        assert max(per_zone.values()) - min(per_zone.get(z, 0) for z in ("z0", "z1", "z2")) <= 1
    assert per_zone == {"z0": 3, "z1": 3, "z2": 3}


def test_percentage_of_nodes_to_score():
    assert num_feasible_nodes_to_find(50, None) == 50
    assert num_feasible_nodes_to_find(1000, None) == 420      # 50 - 1000/125 = 42 %
    assert num_feasible_nodes_to_find(5000, None) == 500      # 10 %
    assert num_feasible_nodes_to_find(200, 10) == 100         # never under 100 nodes
    assert num_feasible_nodes_to_find(1000, 100) == 1000


def test_ties_are_broken_at_random_but_reproducibly():
    nodes = [node(f"n{i}") for i in range(5)]
    picks = {schedule(pod("p"), nodes, fw=default_framework(seed)).node for seed in range(20)}
    assert len(picks) > 1
    rng_a, rng_b = default_framework(7), default_framework(7)
    assert schedule(pod("p"), nodes, fw=rng_a).node == schedule(pod("p"), nodes, fw=rng_b).node
