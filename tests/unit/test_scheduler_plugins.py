"""Each plugin as data: pod and nodes in, status or scores out (upstream formulas)."""

from __future__ import annotations

import pytest
from test_scheduler_builders import filter_status, node, pod, scores

from bootstrap.agents.scheduler import resources as res
from bootstrap.agents.scheduler.framework import UNRESOLVABLE, UNSCHEDULABLE
from bootstrap.agents.scheduler.plugins.basic import (
    ImageLocality,
    NodeAffinity,
    NodeName,
    NodePorts,
    NodeUnschedulable,
    TaintToleration,
)
from bootstrap.agents.scheduler.plugins.interpodaffinity import InterPodAffinity
from bootstrap.agents.scheduler.plugins.noderesources import (
    NodeResourcesBalancedAllocation,
    NodeResourcesFit,
)
from bootstrap.agents.scheduler.plugins.podtopologyspread import PodTopologySpread
from bootstrap.api.quantity import QuantityError

GI = 1024 ** 3


# resources -----------------------------------------------------------------------

@pytest.mark.parametrize("text,milli,units", [
    ("100m", 100, 1), ("1.5", 1500, 2), ("2", 2000, 2), ("1Gi", 1024 ** 3 * 1000, 1024 ** 3),
    ("1k", 10 ** 6, 1000), ("1e3", 10 ** 6, 1000), ("1E", 10 ** 21, 10 ** 18), ("0.1m", 1, 1),
])
def test_scheduler_units(text, milli, units):
    assert res.to_units("cpu", text) == milli
    assert res.to_units("memory", text) == units


def test_an_unreadable_quantity_is_an_error_not_a_zero():
    with pytest.raises(QuantityError):
        res.pod_requests({"containers": [{"resources": {"requests": {"cpu": "lots"}}}]})


def test_pod_requests_take_the_largest_init_container_and_add_overhead():
    spec = {"containers": [{"resources": {"requests": {"cpu": "100m", "memory": "1Gi"}}},
                           {"resources": {"requests": {"cpu": "200m"}}}],
            "initContainers": [{"resources": {"requests": {"cpu": "1", "memory": "512Mi"}}}],
            "overhead": {"cpu": "10m"}}
    assert res.pod_requests(spec) == {"cpu": 1010, "memory": GI}


def test_sidecar_init_containers_run_alongside():
    spec = {"containers": [{"resources": {"requests": {"cpu": "500m"}}}],
            "initContainers": [
                {"restartPolicy": "Always", "resources": {"requests": {"cpu": "200m"}}},
                {"resources": {"requests": {"cpu": "600m"}}}]}
    # sidecar + app = 700m; the plain init container runs next to the sidecar: 800m.
    assert res.pod_requests(spec) == {"cpu": 800}


def test_non_zero_requests_default_per_container():
    spec = {"containers": [{"resources": {}}, {"resources": {"requests": {"cpu": "1"}}}]}
    nz = res.pod_requests(spec, non_zero=True)
    assert nz == {"cpu": 1100, "memory": 2 * res.DEFAULT_MEMORY}


# NodeResourcesFit ---------------------------------------------------------------------

def test_fit_reports_every_insufficient_resource():
    n = node("n1", cpu="2", memory="2Gi")
    st = filter_status(NodeResourcesFit(), pod("p", cpu="3", memory="3Gi"), n)
    assert st.code == UNSCHEDULABLE
    assert st.reasons == ("Insufficient cpu", "Insufficient memory")


def test_fit_counts_pods_already_on_the_node():
    n = node("n1", cpu="2")
    bound = pod("old", cpu="1500m", node_name="n1")
    assert filter_status(NodeResourcesFit(), pod("p", cpu="500m"), n, [bound]) is None
    st = filter_status(NodeResourcesFit(), pod("p", cpu="600m"), n, [bound])
    assert st.reasons == ("Insufficient cpu",)


def test_fit_too_many_pods_and_extended_resources():
    n = node("n1", pods="1", extra={"example.com/gpu": "1"})
    bound = pod("old", node_name="n1")
    st = filter_status(NodeResourcesFit(), pod("p", extra_requests={"example.com/gpu": "2"}),
                       n, [bound])
    assert st.reasons == ("Too many pods", "Insufficient example.com/gpu")
    ignoring = NodeResourcesFit({"ignoredResourceGroups": ["example.com"]})
    st = filter_status(ignoring, pod("p", extra_requests={"example.com/gpu": "2"}), n, [bound])
    assert st.reasons == ("Too many pods",)


def test_fit_best_effort_pod_always_fits_resources():
    assert filter_status(NodeResourcesFit(), pod("p"), node("n1", cpu="0")) is None


def test_least_and_most_allocated_scores():
    n = node("n1", cpu="4", memory="8Gi")
    p = pod("p", cpu="1", memory="1Gi")
    # cpu (4000-1000)*100/4000 = 75, memory 7Gi*100/8Gi = 87 -> (75+87)/2
    assert scores(NodeResourcesFit(), p, [n]) == {"n1": 81}
    most = NodeResourcesFit({"scoringStrategy": {"type": "MostAllocated"}})
    assert scores(most, p, [n]) == {"n1": 18}  # (25 + 12) / 2
    weighted = NodeResourcesFit({"scoringStrategy": {"type": "LeastAllocated", "resources": [
        {"name": "cpu", "weight": 3}, {"name": "memory", "weight": 1}]}})
    assert scores(weighted, p, [n]) == {"n1": (75 * 3 + 87) // 4}


def test_least_allocated_prefers_the_emptier_node():
    nodes = [node("busy"), node("idle")]
    bound = [pod("old", cpu="3", memory="6Gi", node_name="busy")]
    s = scores(NodeResourcesFit(), pod("p", cpu="500m", memory="512Mi"), nodes, bound)
    assert s["idle"] > s["busy"]


def test_balanced_allocation():
    n = node("n1", cpu="4", memory="8Gi")
    # fractions 0.25 and 0.125: std 0.0625 -> 93
    assert scores(NodeResourcesBalancedAllocation(), pod("p", cpu="1", memory="1Gi"), [n]) == {"n1": 93}
    # best-effort pods are not scored (skipped -> 0)
    assert scores(NodeResourcesBalancedAllocation(), pod("p"), [n]) == {"n1": 0}


# taints, unschedulable, node name -------------------------------------------------------

CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def test_untolerated_taint_message_and_code():
    st = filter_status(TaintToleration(), pod("p"), node("cp", taints=[CP_TAINT]))
    assert st.code == UNRESOLVABLE
    assert st.reasons == ("node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }",)
    st = filter_status(TaintToleration(), pod("p"),
                       node("n", taints=[{"key": "k", "value": "v", "effect": "NoExecute"}]))
    assert st.reasons == ("node(s) had untolerated taint {k: v}",)


@pytest.mark.parametrize("toleration", [
    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"},
    {"operator": "Exists"},
])
def test_tolerated_taints(toleration):
    assert filter_status(TaintToleration(), pod("p", tolerations=[toleration]),
                         node("cp", taints=[CP_TAINT])) is None


def test_wrong_value_or_effect_does_not_tolerate():
    taint = {"key": "k", "value": "a", "effect": "NoSchedule"}
    for tol in ({"key": "k", "operator": "Equal", "value": "b"},
                {"key": "k", "operator": "Exists", "effect": "NoExecute"}):
        assert filter_status(TaintToleration(), pod("p", tolerations=[tol]),
                             node("n", taints=[taint])) is not None


def test_prefer_no_schedule_is_scored_not_filtered():
    soft = {"key": "k", "effect": "PreferNoSchedule"}
    nodes = [node("soft", taints=[soft]), node("clean")]
    assert filter_status(TaintToleration(), pod("p"), nodes[0]) is None
    assert scores(TaintToleration(), pod("p"), nodes) == {"soft": 0, "clean": 100}
    tolerating = pod("p", tolerations=[{"key": "k", "operator": "Exists", "effect": "PreferNoSchedule"}])
    assert scores(TaintToleration(), tolerating, nodes) == {"soft": 100, "clean": 100}


def test_node_unschedulable():
    n = node("n", unschedulable=True)
    st = filter_status(NodeUnschedulable(), pod("p"), n)
    assert (st.code, st.reasons) == (UNRESOLVABLE, ("node(s) were unschedulable",))
    tol = [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]
    assert filter_status(NodeUnschedulable(), pod("p", tolerations=tol), n) is None


def test_node_name():
    st = filter_status(NodeName(), pod("p", node_name="other"), node("n"))
    assert st.reasons == ("node(s) didn't match the requested node name",)
    assert filter_status(NodeName(), pod("p", node_name="n"), node("n")) is None


# node affinity -----------------------------------------------------------------------------

def _required(*exprs, fields=()):
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": list(exprs), "matchFields": list(fields)}]}}}


def test_node_selector_and_required_affinity():
    n = node("n", labels={"disk": "ssd", "gen": "5"})
    assert filter_status(NodeAffinity(), pod("p", node_selector={"disk": "ssd"}), n) is None
    st = filter_status(NodeAffinity(), pod("p", node_selector={"disk": "hdd"}), n)
    assert (st.code, st.reasons) == (UNRESOLVABLE, ("node(s) didn't match Pod's node affinity/selector",))
    ok = [{"key": "disk", "operator": "In", "values": ["ssd", "nvme"]},
          {"key": "gen", "operator": "Gt", "values": ["4"]},
          {"key": "gpu", "operator": "DoesNotExist"}]
    assert filter_status(NodeAffinity(), pod("p", affinity=_required(*ok)), n) is None
    for bad in ({"key": "disk", "operator": "NotIn", "values": ["ssd"]},
                {"key": "gen", "operator": "Lt", "values": ["5"]},
                {"key": "gpu", "operator": "Exists"}):
        assert filter_status(NodeAffinity(), pod("p", affinity=_required(bad)), n) is not None
    by_name = _required(fields=[{"key": "metadata.name", "operator": "In", "values": ["n"]}])
    assert filter_status(NodeAffinity(), pod("p", affinity=by_name), n) is None
    assert filter_status(NodeAffinity(), pod("p", affinity=by_name), node("m")) is not None


def test_empty_node_selector_term_matches_nothing():
    aff = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{}]}}}
    assert filter_status(NodeAffinity(), pod("p", affinity=aff), node("n")) is not None


def test_preferred_node_affinity_scores():
    aff = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 80, "preference": {"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["a"]}]}},
        {"weight": 20, "preference": {"matchExpressions": [
            {"key": "disk", "operator": "Exists"}]}}]}}
    nodes = [node("a", labels={"zone": "a"}), node("b", labels={"zone": "b", "disk": "x"}),
             node("c")]
    assert scores(NodeAffinity(), pod("p", affinity=aff), nodes) == {"a": 100, "b": 25, "c": 0}


# ports -------------------------------------------------------------------------------------

def test_host_port_conflicts():
    n = node("n")
    bound = [pod("web", host_port=8080, node_name="n")]
    st = filter_status(NodePorts(), pod("p", host_port=8080), n, bound)
    assert (st.code, st.reasons) == (UNSCHEDULABLE,
                                     ("node(s) didn't have free ports for the requested pod ports",))
    assert filter_status(NodePorts(), pod("p", host_port=8081), n, bound) is None
    udp = pod("p", host_port=8080)
    udp["spec"]["containers"][0]["ports"][0]["protocol"] = "UDP"
    assert filter_status(NodePorts(), udp, n, bound) is None


# image locality --------------------------------------------------------------------------------

def test_image_locality_scales_by_spread():
    mb = 1024 * 1024
    images = [{"names": ["registry.local/app:1"], "sizeBytes": 500 * mb}]
    nodes = [node("has", images=images), node("lacks")]
    s = scores(ImageLocality(), pod("p", image="registry.local/app:1"), nodes)
    # 500 MB on 1 of 2 nodes -> 250 MB; 100 * (250 - 23) / (1000 - 23)
    assert s == {"has": 23, "lacks": 0}
    untagged = [{"names": ["busybox:latest"], "sizeBytes": 2000 * mb}]
    assert scores(ImageLocality(), pod("p", image="busybox"), [node("n", images=untagged)]) == {"n": 100}


# pod topology spread --------------------------------------------------------------------------------

def _spread(key="zone", skew=1, when="DoNotSchedule", **extra):
    return [{"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": when,
             "labelSelector": {"matchLabels": {"app": "web"}}, **extra}]


ZONES = [node("a1", labels={"zone": "a"}), node("a2", labels={"zone": "a"}),
         node("b1", labels={"zone": "b"})]


def test_spread_rejects_the_crowded_domain():
    bound = [pod("w1", labels={"app": "web"}, node_name="a1"),
             pod("w2", labels={"app": "web"}, node_name="a2"),
             pod("other", labels={"app": "db"}, node_name="b1")]
    p = pod("p", labels={"app": "web"}, spread=_spread())
    st = filter_status(PodTopologySpread(), p, ZONES[0], bound, ZONES)
    assert (st.code, st.reasons) == (UNSCHEDULABLE, ("node(s) didn't match pod topology spread constraints",))
    assert filter_status(PodTopologySpread(), p, ZONES[2], bound, ZONES) is None


def test_spread_missing_label_and_min_domains():
    bare = node("bare")
    p = pod("p", labels={"app": "web"}, spread=_spread())
    st = filter_status(PodTopologySpread(), p, bare, [], ZONES + [bare])
    assert (st.code, st.reasons) == (UNRESOLVABLE, (
        "node(s) didn't match pod topology spread constraints (missing required label)",))
    bound = [pod("w1", labels={"app": "web"}, node_name="a1"),
             pod("w2", labels={"app": "web"}, node_name="b1")]
    # 2 domains with one pod each: balanced, fits; with minDomains 3 the global
    # minimum is 0, so a 2nd pod in any domain has skew 2.
    assert filter_status(PodTopologySpread(), p, ZONES[0], bound, ZONES) is None
    strict = pod("p", labels={"app": "web"}, spread=_spread(minDomains=3))
    assert filter_status(PodTopologySpread(), strict, ZONES[0], bound, ZONES) is not None


def test_spread_schedule_anyway_scores_emptier_domains_higher():
    bound = [pod("w1", labels={"app": "web"}, node_name="a1"),
             pod("w2", labels={"app": "web"}, node_name="a2")]
    p = pod("p", labels={"app": "web"}, spread=_spread(when="ScheduleAnyway"))
    s = scores(PodTopologySpread(), p, ZONES, bound)
    assert s["b1"] == 100 and s["a1"] == s["a2"] < s["b1"]


def _owned(name, rs="web-abc", **kw):
    p = pod(name, labels={"app": "web", "pod-template-hash": "abc"}, **kw)
    p["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                         "name": rs, "uid": "rs-uid", "controller": True}]
    return p


def test_system_default_spreading_follows_the_replicaset_and_services():
    rs = ("ReplicaSet", {"metadata": {"name": "web-abc", "namespace": "default"},
                         "spec": {"selector": {"matchLabels": {"app": "web",
                                                               "pod-template-hash": "abc"}}}})
    nodes = [node("n1"), node("n2"), node("n3")]
    bound = [_owned("w1", node_name="n1"), _owned("w2", node_name="n1"),
             _owned("w3", node_name="n2")]
    s = scores(PodTopologySpread(), _owned("new"), nodes, bound, [rs])
    assert s["n3"] > s["n2"] > s["n1"]          # hostname maxSkew 3, no zone labels needed
    # no workload selects the pod: no default constraints, nothing to score
    assert set(scores(PodTopologySpread(), _owned("new"), nodes, bound).values()) == {0}
    svc = ("Service", {"metadata": {"name": "web", "namespace": "default"},
                       "spec": {"selector": {"app": "web"}}})
    plain = [pod("a", labels={"app": "web"}, node_name="n3")]
    s = scores(PodTopologySpread(), pod("new", labels={"app": "web"}), nodes, plain, [svc])
    assert s["n3"] < s["n1"] == s["n2"]
    listed = PodTopologySpread({"defaultingType": "List", "defaultConstraints": []})
    assert set(scores(listed, _owned("new"), nodes, bound, [rs]).values()) == {0}


# inter-pod affinity -------------------------------------------------------------------------------

def _term(key="kubernetes.io/hostname", **labels):
    return {"labelSelector": {"matchLabels": labels}, "topologyKey": key}


def test_required_anti_affinity_of_the_incoming_pod():
    nodes = [node("n1"), node("n2")]
    bound = [pod("db", labels={"app": "db"}, node_name="n1")]
    p = pod("p", affinity={"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [_term(app="db")]}})
    st = filter_status(InterPodAffinity(), p, nodes[0], bound, nodes)
    assert (st.code, st.reasons) == (UNSCHEDULABLE, ("node(s) didn't match pod anti-affinity rules",))
    assert filter_status(InterPodAffinity(), p, nodes[1], bound, nodes) is None


def test_existing_pods_anti_affinity():
    nodes = [node("n1"), node("n2")]
    lonely = pod("lonely", node_name="n1", affinity={"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [_term(app="web")]}})
    st = filter_status(InterPodAffinity(), pod("p", labels={"app": "web"}), nodes[0], [lonely], nodes)
    assert st.reasons == ("node(s) didn't satisfy existing pods anti-affinity rules",)
    assert filter_status(InterPodAffinity(), pod("p", labels={"app": "db"}), nodes[0], [lonely], nodes) is None


def test_required_affinity_follows_the_zone_and_lets_the_first_pod_start():
    nodes = [node("a1", labels={"zone": "a"}), node("b1", labels={"zone": "b"})]
    cache_pod = pod("cache", labels={"app": "cache"}, node_name="a1")
    p = pod("p", affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        _term("zone", app="cache")]}})
    assert filter_status(InterPodAffinity(), p, nodes[0], [cache_pod], nodes) is None
    st = filter_status(InterPodAffinity(), p, nodes[1], [cache_pod], nodes)
    assert (st.code, st.reasons) == (UNRESOLVABLE, ("node(s) didn't match pod affinity rules",))
    # No matching pod anywhere: only a pod that matches its own term may start the group.
    first = pod("first", labels={"app": "cache"}, affinity=p["spec"]["affinity"])
    assert filter_status(InterPodAffinity(), first, nodes[1], [], nodes) is None
    assert filter_status(InterPodAffinity(), p, nodes[1], [], nodes) is not None


def test_preferred_affinity_and_anti_affinity_scores():
    nodes = [node("n1"), node("n2"), node("n3")]
    bound = [pod("db", labels={"app": "db"}, node_name="n1"),
             pod("web", labels={"app": "web"}, node_name="n2")]
    p = pod("p", affinity={
        "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "podAffinityTerm": _term(app="db")}]},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "podAffinityTerm": _term(app="web")}]}})
    assert scores(InterPodAffinity(), p, nodes, bound) == {"n1": 100, "n2": 0, "n3": 50}


def test_other_namespaces_do_not_match_unless_named():
    nodes = [node("n1"), node("n2")]
    bound = [pod("db", ns="other", labels={"app": "db"}, node_name="n1")]
    term = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [_term(app="db")]}}
    assert filter_status(InterPodAffinity(), pod("p", affinity=term), nodes[0], bound, nodes) is None
    named = _term(app="db")
    named["namespaces"] = ["other"]
    term = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [named]}}
    assert filter_status(InterPodAffinity(), pod("p", affinity=term), nodes[0], bound, nodes) is not None
