"""Drain (bootstrap.flows.drain) against the real API server on etcd: cordon, kubectl's
pod filters, evictions through policy/v1 that a PodDisruptionBudget holds back, and a
user without the right to evict being refused."""

from __future__ import annotations

import threading
import time

import pytest

from bootstrap.flows.drain import DrainError, DrainOptions, drain_node, uncordon_node
from bootstrap.flows.kubeapi import KubeAPI

from .cluster import eventually

NODES = ("", "v1", "nodes")
PODS = ("", "v1", "pods")
PDBS = ("policy", "v1", "poddisruptionbudgets")
NS = "drain"
FAST = DrainOptions(grace_period=0, retry_interval=0.2, poll_interval=0.1, timeout=20)


@pytest.fixture(scope="module")
def api(cluster):
    api = KubeAPI.from_kubeconfig(str(cluster.admin))
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    api.create({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "default", "namespace": NS}})
    return api


def _node(api, name: str) -> None:
    api.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})


def _pod(api, name: str, node: str, *, owner: str | None = "ReplicaSet", labels=None,
         annotations=None, volumes=None, phase: str = "Running") -> dict:
    meta: dict = {"name": name, "namespace": NS, "labels": labels or {"app": name},
                  "annotations": annotations or {}}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner, "name": "owner",
                                    "uid": "00000000-0000-0000-0000-000000000001",
                                    "controller": True}]
    pod = api.create({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {
        "nodeName": node, "volumes": volumes or [],
        "containers": [{"name": "c", "image": "busybox"}]}})
    # Running and Ready: only such pods count against a budget (pending ones go at once).
    _set_status(api, name, phase)
    return pod


def _set_status(api, name: str, phase: str) -> None:
    async def fn(c):
        return await c.patch(PODS, name, {"status": {"phase": phase, "conditions": [
            {"type": "Ready", "status": "True"}]}}, NS, patch_type="merge",
            subresource="status")
    api._call(fn)


def _pdb(api, name: str, app: str, allowed: int) -> None:
    pdb = api.create({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                      "metadata": {"name": name, "namespace": NS},
                      "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": app}}}})
    _pdb_status(api, name, pdb["metadata"].get("generation", 1), allowed)


def _pdb_status(api, name: str, generation: int, allowed: int) -> None:
    # No disruption controller runs here: the test plays its part.
    async def fn(c):
        return await c.patch(PDBS, name, {"status": {
            "disruptionsAllowed": allowed, "currentHealthy": 2, "desiredHealthy": 1,
            "expectedPods": 2, "observedGeneration": generation}}, NS, patch_type="merge",
            subresource="status")
    api._call(fn)


def _names_on(api, node: str) -> set[str]:
    return {p["metadata"]["name"] for p in api.list(PODS, NS)
            if p["spec"].get("nodeName") == node}


def test_drain_evicts_managed_pods_and_skips_daemonset_and_mirror_pods(cluster, api):
    _node(api, "d1")
    _pod(api, "web-1", "d1")
    _pod(api, "web-2", "d1", owner="StatefulSet")
    _pod(api, "ds-1", "d1", owner="DaemonSet")
    _pod(api, "static-d1", "d1", owner="Node",
         annotations={"kubernetes.io/config.mirror": "abc"})
    _pod(api, "done-1", "d1", owner=None, phase="Succeeded")  # finished: no controller needed
    lines: list[str] = []
    result = drain_node(str(cluster.admin), "d1", FAST, log=lines.append)
    assert sorted(result.evicted) == [f"{NS}/done-1", f"{NS}/web-1", f"{NS}/web-2"]
    assert eventually(lambda: _names_on(api, "d1") == {"ds-1", "static-d1"})
    assert api.get(NODES, "d1")["spec"]["unschedulable"] is True
    assert "node/d1 cordoned" in lines and "node/d1 drained" in lines
    assert any(line.startswith("Warning: ignoring DaemonSet-managed Pods: drain/ds-1")
               for line in lines)
    # A second drain finds nothing to do; uncordon clears the field.
    again: list[str] = []
    assert drain_node(str(cluster.admin), "d1", FAST, log=again.append).evicted == []
    assert "node/d1 already cordoned" in again
    assert uncordon_node(str(cluster.admin), "d1") is True
    assert "unschedulable" not in (api.get(NODES, "d1").get("spec") or {})
    assert uncordon_node(str(cluster.admin), "d1") is False


def test_unmanaged_and_emptydir_pods_are_refused_unless_forced(cluster, api):
    _node(api, "d2")
    _pod(api, "bare", "d2", owner=None)
    _pod(api, "scratch", "d2", volumes=[{"name": "tmp", "emptyDir": {}}])
    with pytest.raises(DrainError) as exc:
        drain_node(str(cluster.admin), "d2", FAST)
    msg = str(exc.value)
    assert "cannot delete Pods declare no controller (use --force to override): drain/bare" \
        in msg
    assert "cannot delete Pods with local storage (use --delete-emptydir-data to override): " \
        "drain/scratch" in msg
    # Refused before any eviction: both pods are still there, the node stays cordoned.
    assert _names_on(api, "d2") == {"bare", "scratch"}
    assert api.get(NODES, "d2")["spec"]["unschedulable"] is True
    with pytest.raises(DrainError, match="local storage"):
        drain_node(str(cluster.admin), "d2", DrainOptions(**{**FAST.__dict__, "force": True}))
    lines: list[str] = []
    opts = DrainOptions(**{**FAST.__dict__, "force": True, "delete_emptydir_data": True})
    drain_node(str(cluster.admin), "d2", opts, log=lines.append)
    assert eventually(lambda: _names_on(api, "d2") == set())
    assert "Warning: deleting Pods that declare no controller: drain/bare" in lines


def test_pdb_blocks_until_the_budget_allows(cluster, api):
    _node(api, "d3")
    _pod(api, "guarded-a", "d3", labels={"app": "guarded"})
    _pod(api, "guarded-b", "d3", labels={"app": "guarded"})
    _pdb(api, "guard", "guarded", allowed=0)
    lines: list[str] = []
    short = DrainOptions(**{**FAST.__dict__, "timeout": 1.5})
    with pytest.raises(DrainError) as exc:
        drain_node(str(cluster.admin), "d3", short, log=lines.append)
    assert "global timeout reached" in str(exc.value)
    assert "needs 1 healthy pods" in str(exc.value)  # the budget's cause, as a hint
    assert any("(will retry after 0.2s): Cannot evict pod as it would violate the pod's "
               "disruption budget." in line for line in lines)
    assert _names_on(api, "d3") == {"guarded-a", "guarded-b"}  # the budget held

    # One disruption allowed: one pod goes, the other waits on 429 until the budget
    # (here: the test, in the disruption controller's place) allows another.
    generation = api.get(PDBS, "guard", NS)["metadata"].get("generation", 1)
    _pdb_status(api, "guard", generation, 1)

    def release() -> None:
        assert eventually(lambda: len(_names_on(api, "d3")) == 1)
        time.sleep(0.5)
        _pdb_status(api, "guard", generation, 1)

    helper = threading.Thread(target=release)
    helper.start()
    try:
        result = drain_node(str(cluster.admin), "d3", FAST)
    finally:
        helper.join()
    assert sorted(result.evicted) == [f"{NS}/guarded-a", f"{NS}/guarded-b"]
    assert eventually(lambda: _names_on(api, "d3") == set())


def _grant(api, user: str, rules: list[dict]) -> None:
    api.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": f"{user}-role"}, "rules": rules})
    api.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": f"{user}-binding"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                            "name": f"{user}-role"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                              "name": user}]})


def test_a_user_without_evict_rights_is_refused(cluster, api):
    _node(api, "d4")
    _pod(api, "kept", "d4")
    # May cordon and list, may not create pods/eviction.
    _grant(api, "cordoner", [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}])
    cordoner = cluster.kubeconfig("cordoner")
    with pytest.raises(DrainError) as exc:
        drain_node(str(cordoner), "d4", FAST)
    assert "error when evicting pods/'kept'" in str(exc.value)
    assert "forbidden" in str(exc.value).lower()
    assert _names_on(api, "d4") == {"kept"}
    # A user with no rights at all cannot even cordon.
    nobody = cluster.kubeconfig("nobody")
    with pytest.raises(DrainError, match="403"):
        drain_node(str(nobody), "d4", FAST)
    with pytest.raises(DrainError, match="403"):
        uncordon_node(str(nobody), "d4")
    assert api.get(NODES, "d4")["spec"]["unschedulable"] is True
