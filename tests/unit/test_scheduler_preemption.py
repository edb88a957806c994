"""Preemption as data: which victims, which node, what message."""

from __future__ import annotations

import random

from test_scheduler_builders import cache_of, default_framework, node, pod

from bootstrap.agents.scheduler.cache import PodInfo
from bootstrap.agents.scheduler.framework import FitError
from bootstrap.agents.scheduler.preemption import pick_one, preempt, select_victims, split_by_pdb

CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def run(p: dict, nodes: list[dict], bound: list[dict], pdbs=(), nominated_node=""):
    fw = default_framework()
    c = cache_of(nodes, bound)
    snap = c.snapshot()
    pi = PodInfo(p)
    result, state = fw.schedule(pi, snap)
    assert isinstance(result, FitError), "the pod should not fit without preemption"
    outcome = preempt(fw, state, pi, snap, result.statuses, list(pdbs), nominated_node,
                      rng=random.Random(0))
    return outcome.candidate, outcome.message


def names(candidate) -> list[str]:
    return [v.name for v in candidate.victims]


def test_evicts_the_fewest_lowest_priority_pods():
    bound = [pod("a", cpu="1", priority=10, node_name="n1"),
             pod("b", cpu="1", priority=5, node_name="n1"),
             pod("c", cpu="1", priority=1, node_name="n1"),
             pod("d", cpu="1", priority=0, node_name="n1")]
    cand, msg = run(pod("vip", cpu="2", priority=100), [node("n1", cpu="4")], bound)
    assert msg == "" and cand.node == "n1"
    assert sorted(names(cand)) == ["c", "d"]   # a and b are reprieved, most important first


def test_never_evicts_equal_or_higher_priority():
    bound = [pod("peer", cpu="2", priority=100, node_name="n1")]
    cand, msg = run(pod("vip", cpu="2", priority=100), [node("n1", cpu="2")], bound)
    assert cand is None
    assert msg == "0/1 nodes are available: 1 No preemption victims found for incoming pod."


def test_prefers_the_node_with_lower_priority_victims():
    bound = [pod("mid", cpu="2", priority=50, node_name="n1"),
             pod("low", cpu="2", priority=10, node_name="n2")]
    cand, _ = run(pod("vip", cpu="2", priority=100), [node("n1", cpu="2"), node("n2", cpu="2")],
                  bound)
    assert (cand.node, names(cand)) == ("n2", ["low"])


def test_unresolvable_nodes_are_not_helped():
    nodes = [node("cp", taints=[CP_TAINT]), node("w1", cpu="1")]
    bound = [pod("low", cpu="1", priority=0, node_name="w1")]
    # needs more cpu than the worker has at all: w1 is resolvable but no victim set helps
    cand, msg = run(pod("vip", cpu="2", priority=100), nodes, bound)
    assert cand is None
    assert msg == ("0/2 nodes are available: 1 Insufficient cpu, "
                   "1 Preemption is not helpful for scheduling.")
    only_cp = [node("cp", taints=[CP_TAINT])]
    cand, msg = run(pod("vip", priority=100), only_cp, [])
    assert msg == "0/1 nodes are available: 1 Preemption is not helpful for scheduling."


def test_preemption_policy_never():
    bound = [pod("low", cpu="1", priority=0, node_name="n1")]
    cand, msg = run(pod("vip", cpu="1", priority=100, preemption_policy="Never"),
                    [node("n1", cpu="1")], bound)
    assert cand is None and msg == "not eligible due to preemptionPolicy=Never."


def test_waits_for_victims_already_terminating_on_the_nominated_node():
    low = pod("low", cpu="1", priority=0, node_name="n1")
    low["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    low["status"]["conditions"] = [{"type": "DisruptionTarget", "status": "True",
                                    "reason": "PreemptionByScheduler"}]
    cand, msg = run(pod("vip", cpu="1", priority=100), [node("n1", cpu="1")], [low],
                    nominated_node="n1")
    assert cand is None and msg == "not eligible due to a terminating pod on the nominated node."


def test_pdb_violations_are_avoided_when_another_node_does_not_violate():
    bound = [pod("guarded", cpu="2", priority=0, labels={"app": "db"}, node_name="n1"),
             pod("free", cpu="2", priority=0, labels={"app": "web"}, node_name="n2",
                 start="2026-01-01T00:00:00Z")]
    pdb = {"metadata": {"name": "db", "namespace": "default"},
           "spec": {"selector": {"matchLabels": {"app": "db"}}},
           "status": {"disruptionsAllowed": 0}}
    cand, _ = run(pod("vip", cpu="2", priority=100), [node("n1", cpu="2"), node("n2", cpu="2")],
                  bound, pdbs=[pdb])
    assert (cand.node, names(cand), cand.pdb_violations) == ("n2", ["free"], 0)


def test_split_by_pdb_counts_down_the_budget():
    pods = [PodInfo(pod(f"p{i}", labels={"app": "db"})) for i in range(3)]
    pdb = {"metadata": {"namespace": "default"}, "spec": {"selector": {"matchLabels": {"app": "db"}}},
           "status": {"disruptionsAllowed": 1}}
    violating, ok = split_by_pdb(pods, [pdb])
    assert [p.name for p in ok] == ["p0"] and [p.name for p in violating] == ["p1", "p2"]


def test_anti_affinity_victim_is_removed_in_simulation():
    nodes = [node("n1")]
    bound = [pod("low", priority=0, labels={"app": "db"}, node_name="n1")]
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    fw = default_framework()
    c = cache_of(nodes, bound)
    pi = PodInfo(pod("vip", priority=100, affinity=anti))
    result, state = fw.schedule(pi, c.snapshot())
    cand = select_victims(fw, state, pi, c.nodes["n1"], c.snapshot(), [])
    assert [v.name for v in cand.victims] == ["low"]


def test_pick_one_order():
    from bootstrap.agents.scheduler.preemption import Candidate

    def c(node, *prios, violations=0):
        return Candidate(node, [PodInfo(pod(f"{node}-{i}", priority=p)) for i, p in enumerate(prios)],
                         violations)

    assert pick_one([c("a", 1, violations=1), c("b", 50)]).node == "b"
    assert pick_one([c("a", 10), c("b", 5, 5)]).node == "b"          # lower top priority
    assert pick_one([c("a", 5, 5), c("b", 5, 1)]).node == "b"        # smaller sum
    assert pick_one([c("a", 5, 0, 0), c("b", 5, 0)]).node == "b"     # fewer victims


def test_hopeless_clears_the_nomination_ineligible_keeps_it():
    fw = default_framework()
    c = cache_of([node("cp", taints=[CP_TAINT])])
    for p, hopeless in ((pod("vip", priority=100), True),
                        (pod("shy", priority=100, preemption_policy="Never"), False)):
        pi = PodInfo(p)
        result, state = fw.schedule(pi, c.snapshot())
        outcome = preempt(fw, state, pi, c.snapshot(), result.statuses, [])
        assert outcome.candidate is None and outcome.hopeless is hopeless
