"""DaemonSet controller on the FakeClient: nodes and taints in, pods out."""

import copy

import pytest
from ctlharness import kubelet, running, template, until

from bootstrap.agents.controllers import daemonset as dsc
from bootstrap.agents.controllers.daemonset import DaemonSetController
from bootstrap.api.defaults import apply_defaults

pytestmark = pytest.mark.timeout(60)
DAEMONSETS = ("apps", "v1", "daemonsets")
NODES = ("", "v1", "nodes")


def node(name, labels=None, taints=None):
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                  **(labels or {})}},
            "spec": {"taints": taints or []}}


def daemonset(name="agent", image="x", tolerations=None, **spec):
    tmpl = template({"app": name}, image)
    if tolerations:
        tmpl["spec"]["tolerations"] = tolerations
    if "nodeSelector" in spec:
        tmpl["spec"]["nodeSelector"] = spec.pop("nodeSelector")
    obj = {"apiVersion": "apps/v1", "kind": "DaemonSet",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"selector": {"matchLabels": {"app": name}}, "template": tmpl, **spec}}
    return apply_defaults(obj, ("apps", "v1", "DaemonSet"))


def live(client):
    return [p for p in client.objects("pods") if not p["metadata"].get("deletionTimestamp")]


def nodes_of(client):
    return sorted(dsc.target_node(p) for p in live(client))


def status(client):
    return client.objects("daemonsets")[0].get("status") or {}


NO_SCHED = [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]


async def test_one_pod_per_matching_node_with_taints_and_selector():
    seed = [node("n1", {"role": "worker"}), node("n2", {"role": "worker"}, NO_SCHED),
            node("n3", {"role": "db"}),
            # automatic tolerations: not-ready/unreachable NoExecute, unschedulable
            node("n4", {"role": "worker"}, [
                {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
                {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
            daemonset(nodeSelector={"role": "worker"})]
    async with running(DaemonSetController, *seed) as (client, ctl, rec):
        await until(lambda: nodes_of(client) == ["n1", "n4"])
        pod = live(client)[0]
        terms = pod["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert terms[0]["matchFields"][0]["key"] == "metadata.name"
        assert "nodeName" not in pod["spec"]            # the scheduler binds
        keys = {(t["key"], t["effect"]) for t in pod["spec"]["tolerations"]}
        assert ("node.kubernetes.io/unreachable", "NoExecute") in keys
        assert ("node.kubernetes.io/network-unavailable", "NoSchedule") not in keys
        assert pod["metadata"]["labels"]["controller-revision-hash"]
        await until(lambda: status(client).get("currentNumberScheduled") == 2)
        st = status(client)
        assert st["desiredNumberScheduled"] == 2 and st["numberReady"] == 0
        assert st["numberMisscheduled"] == 0 and st["numberAvailable"] == 0
        assert st["updatedNumberScheduled"] == 2 and st["observedGeneration"] == 1
        # tolerate the dedicated taint: n2 gets one too
        ds = copy.deepcopy(client.objects("daemonsets")[0])
        ds["spec"]["template"]["spec"]["tolerations"] = [
            {"key": "dedicated", "operator": "Exists"}]
        await client.update(DAEMONSETS, ds)
        await until(lambda: "n2" in nodes_of(client))


async def test_noexecute_taint_evicts_and_noschedule_keeps():
    async with running(DaemonSetController, node("n1"), node("n2"), daemonset()) as (
            client, ctl, rec):
        await until(lambda: nodes_of(client) == ["n1", "n2"])
        for name, effect in (("n1", "NoSchedule"), ("n2", "NoExecute")):
            n = next(x for x in client.objects("nodes") if x["metadata"]["name"] == name)
            n["spec"]["taints"] = [{"key": "k", "value": "v", "effect": effect}]
            await client.update(NODES, n)
        await until(lambda: nodes_of(client) == ["n1"])
        # the kept pod on n1 is misscheduled now; the evicted one is gone
        await until(lambda: status(client).get("desiredNumberScheduled") == 0 and
                    status(client).get("numberMisscheduled") == 1)


async def test_rolling_update_within_max_unavailable_and_revisions():
    seed = [node(f"n{i}") for i in range(4)] + [daemonset()]
    async with running(DaemonSetController, *seed) as (client, ctl, rec), kubelet(client):
        await until(lambda: status(client).get("numberAvailable") == 4)
        first = {p["metadata"]["labels"]["controller-revision-hash"] for p in live(client)}
        ds = copy.deepcopy(client.objects("daemonsets")[0])
        ds["spec"]["template"]["spec"]["containers"][0]["image"] = "y"
        await client.update(DAEMONSETS, ds)
        client.requests.clear()
        await until(lambda: status(client).get("updatedNumberScheduled") == 4 and
                    status(client).get("numberAvailable") == 4 and
                    all(p["spec"]["containers"][0]["image"] == "y" for p in live(client)))
        # maxUnavailable 1: never two old pods deleted in one step
        deletes = [r for r in client.requests if r.verb == "delete" and r.resource == "pods"
                   and r.body.get("gracePeriodSeconds") is None]
        assert len(deletes) == 4
        revs = sorted(client.objects("controllerrevisions"), key=lambda r: r["revision"])
        assert [r["revision"] for r in revs] == [1, 2]
        assert revs[0]["metadata"]["labels"]["controller-revision-hash"] in first
        assert revs[1]["data"]["spec"]["template"]["$patch"] == "replace"


async def test_on_delete_keeps_old_pods():
    seed = [node("n1"), daemonset(updateStrategy={"type": "OnDelete"})]
    async with running(DaemonSetController, *seed) as (client, ctl, rec):
        await until(lambda: len(live(client)) == 1)
        ds = copy.deepcopy(client.objects("daemonsets")[0])
        ds["spec"]["template"]["spec"]["containers"][0]["image"] = "y"
        await client.update(DAEMONSETS, ds)
        await until(lambda: status(client).get("observedGeneration") == 2)
        assert live(client)[0]["spec"]["containers"][0]["image"] == "x"
        assert status(client)["updatedNumberScheduled"] == 0


def test_should_run_rules():
    spec = dsc.daemon_pod_spec({"spec": {"hostNetwork": True, "containers": []}})
    assert ("node.kubernetes.io/network-unavailable", "NoSchedule") in {
        (t["key"], t["effect"]) for t in spec["tolerations"]}
    assert dsc.should_run(spec, node("a")) == (True, True)
    assert dsc.should_run(spec, node("a", taints=NO_SCHED)) == (False, True)
    assert dsc.should_run(spec, node("a", taints=[{"key": "x", "effect": "NoExecute"}])) == \
        (False, False)
    affinity = dict(spec, affinity={"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}})
    assert dsc.should_run(affinity, node("a", {"zone": "a"})) == (True, True)
    assert dsc.should_run(affinity, node("b", {"zone": "b"})) == (False, False)


async def test_max_surge_starts_the_new_pod_before_the_old_goes():
    ru = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    async with running(DaemonSetController, node("n1"), daemonset(updateStrategy=ru)) as (
            client, ctl, rec), kubelet(client):
        await until(lambda: status(client).get("numberAvailable") == 1)
        old = live(client)[0]["metadata"]["name"]
        ds = copy.deepcopy(client.objects("daemonsets")[0])
        ds["spec"]["template"]["spec"]["containers"][0]["image"] = "y"
        await client.update(DAEMONSETS, ds)
        await until(lambda: all(p["spec"]["containers"][0]["image"] == "y"
                                for p in live(client)) and len(live(client)) == 1)
        # the new pod was created while the old one still ran: no moment without a pod
        order = [(r.verb, (r.body or {}).get("metadata", {}).get("name") or r.name)
                 for r in client.requests if r.resource == "pods" and r.verb in
                 ("create", "delete") and not (r.body or {}).get("gracePeriodSeconds") == 0]
        creates = [i for i, (v, _) in enumerate(order) if v == "create"]
        deletes = [i for i, (v, n) in enumerate(order) if v == "delete" and n == old]
        assert len(creates) == 2 and deletes and creates[1] < deletes[0]
