"""Object builders shared by the scheduler unit tests (objects in, decisions out)."""

from __future__ import annotations

import itertools
import random

from bootstrap.agents.scheduler.cache import PodInfo, SchedulerCache
from bootstrap.agents.scheduler.config import default_config, frameworks

_uid = itertools.count(1)


def node(name: str, cpu: str = "4", memory: str = "8Gi", pods: str = "110", *,
         labels: dict | None = None, taints: list | None = None, unschedulable: bool = False,
         images: list | None = None, extra: dict | None = None) -> dict:
    alloc = {"cpu": cpu, "memory": memory, "pods": pods, "ephemeral-storage": "100Gi",
             **(extra or {})}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": f"node-{name}",
                         "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": taints or [], "unschedulable": unschedulable},
            "status": {"capacity": dict(alloc), "allocatable": dict(alloc),
                       "images": images or []}}


def pod(name: str, ns: str = "default", *, cpu: str | None = None, memory: str | None = None,
        labels: dict | None = None, priority: int | None = None, node_name: str | None = None,
        tolerations: list | None = None, affinity: dict | None = None,
        node_selector: dict | None = None, host_port: int | None = None,
        spread: list | None = None, scheduler: str | None = None, image: str = "busybox",
        init: list | None = None, overhead: dict | None = None, extra_requests: dict | None = None,
        start: str | None = None, preemption_policy: str | None = None) -> dict:
    requests = {}
    if cpu:
        requests["cpu"] = cpu
    if memory:
        requests["memory"] = memory
    requests.update(extra_requests or {})
    container = {"name": "c", "image": image, "resources": {"requests": requests}}
    if host_port:
        container["ports"] = [{"containerPort": 80, "hostPort": host_port, "protocol": "TCP"}]
    spec: dict = {"containers": [container], "schedulerName": scheduler or "default-scheduler"}
    for key, value in (("priority", priority), ("nodeName", node_name),
                       ("tolerations", tolerations), ("affinity", affinity),
                       ("nodeSelector", node_selector), ("topologySpreadConstraints", spread),
                       ("initContainers", init), ("overhead", overhead),
                       ("preemptionPolicy", preemption_policy)):
        if value is not None:
            spec[key] = value
    status: dict = {"phase": "Pending"}
    if start:
        status["startTime"] = start
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "uid": f"uid-{next(_uid)}",
                         "labels": labels or {}, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": spec, "status": status}


def cache_of(nodes: list[dict], pods: list[dict] = (), workloads=()) -> SchedulerCache:
    """``workloads``: (kind, object) pairs: Services and controllers."""
    c = SchedulerCache()
    for kind, obj in workloads:
        c.workloads.set(kind, obj)
    for n in nodes:
        c.add_node(n)
    for p in pods:
        c.add_pod(p)
    c.namespaces.setdefault("default", {"kubernetes.io/metadata.name": "default"})
    return c


def default_framework(seed: int = 0):
    return frameworks(default_config(), random.Random(seed))["default-scheduler"]


def schedule(p: dict, nodes: list[dict], pods: list[dict] = (), fw=None):
    """Run one cycle; returns the ScheduleResult or FitError."""
    fw = fw or default_framework()
    result, _ = fw.schedule(PodInfo(p), cache_of(nodes, pods).snapshot())
    return result


def filter_status(plugin, p: dict, n: dict, pods: list[dict] = (), nodes: list[dict] | None = None):
    """One plugin's PreFilter + Filter on one node: None (fits) or the Status."""
    from bootstrap.agents.scheduler.framework import CycleState

    c = cache_of(nodes or [n], pods)
    snap = c.snapshot()
    state = CycleState()
    pi = PodInfo(p)
    if hasattr(plugin, "pre_filter"):
        st = plugin.pre_filter(state, pi, snap)
        if st is not None:
            return st
    return plugin.filter(state, pi, snap.by_name[n["metadata"]["name"]])


def scores(plugin, p: dict, nodes: list[dict], pods: list[dict] = (),
           workloads=()) -> dict[str, int]:
    """One plugin's PreScore + Score + NormalizeScore over the nodes."""
    from bootstrap.agents.scheduler.framework import SKIP, CycleState

    c = cache_of(nodes, pods, workloads)
    snap = c.snapshot()
    state = CycleState()
    pi = PodInfo(p)
    if hasattr(plugin, "pre_score"):
        st = plugin.pre_score(state, pi, snap, snap.nodes)
        if st is not None and st.code == SKIP:
            return {n.name: 0 for n in snap.nodes}
    out = {n.name: plugin.score(state, pi, n) for n in snap.nodes}
    if hasattr(plugin, "normalize"):
        plugin.normalize(state, pi, out)
    return out
