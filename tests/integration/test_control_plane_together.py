"""The real scheduler process and the real controller-manager process together against
the real API server on real etcd, driven with the real kubectl: a Deployment becomes a
ReplicaSet (deployment controller), pods (replicaset controller), bindings (scheduler,
honouring a NoSchedule taint and cpu allocatable), scales down, and is collected with
its ReplicaSet and pods (garbage collector). No kubelet runs: the test writes the Nodes,
keeps their Leases fresh, and confirms the deletion of pods being terminated, as a
kubelet would once their containers stopped; pods never become Ready, so
``kubectl rollout status`` is not asked for."""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from collections import Counter

import pytest

from .agents import ControllerManager, LeaseRenewer, start_scheduler
from .cluster import eventually, running_cluster
from .test_scheduler import apply, kubectl, node, node_lease

pytestmark = pytest.mark.timeout(180)

NS = "together"
CONTROLLERS = "deployment,replicaset,garbagecollector,serviceaccount"
INFRA_TAINT = {"key": "dedicated", "value": "infra", "effect": "NoSchedule"}
# Every pod requests 500m (LimitRange default): w1 holds 3, w2 holds 2, so 5 replicas
# fit only split 3/2; "infra" would take them all but is tainted.
NODES = [node("w1", cpu="1500m"), node("w2", cpu="1"),
         node("infra", cpu="8", taints=[INFRA_TAINT])]
NODE_NAMES = {n["metadata"]["name"] for n in NODES}
LIMITS = {"apiVersion": "v1", "kind": "LimitRange",
          "metadata": {"name": "cpu", "namespace": NS},
          "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "500m"}}]}}


def get(kc, *args):
    """The object(s) as JSON, None when kubectl says it is not there."""
    proc = kubectl(kc, "get", *args, "-n", NS, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def items(kc, kind, *args) -> list[dict]:
    return (get(kc, kind, *args) or {"items": []})["items"]


def live(pods):
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


class DeletionConfirmer:
    """The kubelets' part of a graceful pod deletion: once a pod on one of the fake
    nodes is terminating, delete it with grace 0 (its containers "stopped")."""

    def __init__(self, cluster):
        self.base = f"{cluster.server.url}/api/v1/namespaces/{NS}/pods"
        self.ctx = cluster.ssl_context()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.done.wait(0.2):
            try:
                with urllib.request.urlopen(self.base, context=self.ctx, timeout=5) as r:
                    pods = json.load(r)["items"]
                for p in pods:
                    md = p["metadata"]
                    if md.get("deletionTimestamp") and \
                            (p.get("spec") or {}).get("nodeName") in NODE_NAMES:
                        body = json.dumps({"gracePeriodSeconds": 0}).encode()
                        req = urllib.request.Request(
                            f"{self.base}/{md['name']}", data=body, method="DELETE",
                            headers={"Content-Type": "application/json"})
                        try:
                            urllib.request.urlopen(req, context=self.ctx, timeout=5).close()
                        except urllib.error.HTTPError as exc:
                            if exc.code != 404:
                                raise
            except OSError:
                pass  # the next pass sees the new state

    def stop(self):
        self.done.set()
        self.thread.join(10)


@pytest.fixture(scope="module")
def env():
    with running_cluster() as cluster:
        kc = cluster.admin
        kubectl(kc, "create", "namespace", NS)
        apply(kc, *NODES, *[node_lease(n) for n in sorted(NODE_NAMES)], LIMITS)
        helpers = [LeaseRenewer(cluster, n) for n in sorted(NODE_NAMES)]
        helpers.append(DeletionConfirmer(cluster))
        sched = manager = None
        try:
            for h in helpers:
                h.thread.start()
            # kubeadm's scheduler.conf identity; started first, waited for after the
            # manager so the two start side by side.
            sched = start_scheduler(cluster, cluster.kubeconfig("system:kube-scheduler"))
            manager = ControllerManager(cluster, CONTROLLERS, "together-cm").start()
            assert eventually(lambda: sched.readyz() == 200 or sched.proc.poll() is not None,
                              60)
            assert sched.proc.poll() is None, sched.log.read_text()
            # pods need the namespace's default service account (ServiceAccount admission)
            assert eventually(lambda: get(kc, "serviceaccount", "default"))
            cluster.sched, cluster.manager = sched, manager
            yield cluster
        finally:
            for h in helpers:
                h.stop()
            for agent in (sched, manager):
                if agent is not None:
                    agent.stop()
        for text in (sched.log.read_text(errors="replace"), manager.text()):
            assert "Traceback" not in text and " is forbidden" not in text, text[-4000:]


def events(kc, reason):
    return [e for e in items(kc, "events") if e.get("reason") == reason]


def source(event) -> str:
    return (event.get("source") or {}).get("component") or event.get("reportingComponent", "")


def test_deployment_scheduled_scaled_and_collected(env):
    kc = env.admin
    kubectl(kc, "create", "deployment", "web", "--image=x", "--replicas=5", "-n", NS)

    rs = eventually(lambda: items(kc, "rs"))
    assert len(rs) == 1, rs
    rs_name = rs[0]["metadata"]["name"]
    assert rs_name.startswith("web-") and rs[0]["spec"]["replicas"] == 5
    assert rs[0]["metadata"]["ownerReferences"][0]["name"] == "web"
    assert rs_name in kubectl(kc, "get", "rs", "-n", NS).stdout

    def all_bound():
        pods = live(items(kc, "pods", "-l", "app=web"))
        return pods if len(pods) == 5 and all(p["spec"].get("nodeName") for p in pods) \
            else None
    pods = eventually(all_bound, 60)
    assert pods, (items(kc, "pods"), env.sched.log.read_text()[-3000:])
    assert {p["spec"]["containers"][0]["resources"]["requests"]["cpu"] for p in pods} == \
        {"500m"}
    # none on the tainted node; cpu allocatable leaves exactly one split
    assert Counter(p["spec"]["nodeName"] for p in pods) == {"w1": 3, "w2": 2}

    names = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in pods}

    def scheduled():
        got = {e["involvedObject"]["name"]: e for e in events(kc, "Scheduled")}
        return got if set(names) <= set(got) else None
    got = eventually(scheduled)
    assert got, events(kc, "Scheduled")
    for name, where in names.items():
        assert source(got[name]) == "default-scheduler", got[name]
        assert got[name]["message"] == f"Successfully assigned {NS}/{name} to {where}"
    scaling = eventually(lambda: events(kc, "ScalingReplicaSet"))
    assert [(e["involvedObject"]["kind"], e["involvedObject"]["name"], source(e),
             e["message"]) for e in scaling] == [
        ("Deployment", "web", "deployment-controller",
         f"Scaled up replica set {rs_name} to 5 from 0")]
    table = kubectl(kc, "get", "events", "-n", NS).stdout
    assert "Scheduled" in table and "ScalingReplicaSet" in table, table

    history = kubectl(kc, "rollout", "history", "deploy/web", "-n", NS).stdout
    assert re.search(r"^REVISION\s+CHANGE-CAUSE\s*$", history, re.M), history
    assert re.search(r"^1\s+<none>\s*$", history, re.M), history

    kubectl(kc, "scale", "deployment", "web", "--replicas=2", "-n", NS)
    # the replicaset controller deletes 3; the confirmer finishes them as kubelets would
    assert eventually(lambda: len(items(kc, "pods", "-l", "app=web")) == 2, 60), \
        items(kc, "pods")
    left = items(kc, "pods", "-l", "app=web")
    assert {p["metadata"]["name"] for p in left} <= set(names)
    assert all(p["spec"]["nodeName"] in ("w1", "w2") for p in left)
    assert (get(kc, "rs", rs_name) or {})["spec"]["replicas"] == 2
    assert eventually(lambda: any(e["message"] == f"Scaled down replica set {rs_name} to 2 "
                                  "from 5" for e in events(kc, "ScalingReplicaSet")))

    kubectl(kc, "delete", "deployment", "web", "-n", NS)   # cascade=background
    assert eventually(lambda: not items(kc, "rs") and not items(kc, "pods"), 60), \
        (items(kc, "rs"), items(kc, "pods"))
    assert get(kc, "deployment", "web") is None
