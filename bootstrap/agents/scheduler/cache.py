"""The scheduler's view of the cluster: nodes with the pods on them, precomputed.

``PodInfo`` and ``NodeInfo`` hold what the plugins read on every cycle (requests
in scheduler units, host ports, parsed affinity terms, taints) so filters never
parse quantities or copy objects. ``SchedulerCache`` keeps one NodeInfo per node,
updated incrementally from the informers, plus the pods the scheduler has
*assumed* onto a node while their binding is in flight (upstream's assume/forget:
an assumed pod counts against its node until the informer shows it bound, or is
forgotten when the binding fails).

The scheduling cycle runs synchronously on the event loop, so the live NodeInfos
are a consistent snapshot for its duration; preemption simulates on clones.
"""

from __future__ import annotations

from dataclasses import dataclass

from bootstrap.api.selectors import LabelSelector, label_selector_from_dict

from . import resources as res

HOSTNAME_LABEL = "kubernetes.io/hostname"


def pod_key(pod: dict) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def pod_priority(pod: dict) -> int:
    p = (pod.get("spec") or {}).get("priority")
    return p if isinstance(p, int) else 0


@dataclass(frozen=True)
class AffinityTerm:
    namespaces: frozenset
    selector: LabelSelector
    topology_key: str
    ns_selector: LabelSelector
    weight: int = 0

    def matches(self, pod: PodInfo, ns_labels: dict | None) -> bool:
        if pod.namespace in self.namespaces or self.ns_selector.matches(ns_labels or {}):
            return self.selector.matches(pod.labels)
        return False


def _terms(pod_ns: str, terms: list | None, weighted: bool) -> tuple[AffinityTerm, ...]:
    out = []
    for t in terms or []:
        weight = 0
        if weighted:
            weight = int(t.get("weight") or 0)
            t = t.get("podAffinityTerm") or {}
        namespaces = t.get("namespaces") or []
        ns_sel = t.get("namespaceSelector")
        if not namespaces and ns_sel is None:
            namespaces = [pod_ns]
        try:
            selector = label_selector_from_dict(t.get("labelSelector"))
            ns_selector = label_selector_from_dict(ns_sel)
        except ValueError:
            # An invalid selector matches nothing (upstream drops the pod at parse).
            selector = ns_selector = LabelSelector(nothing=True)
        out.append(AffinityTerm(frozenset(namespaces), selector, t.get("topologyKey", ""),
                                ns_selector, weight))
    return tuple(out)


class PodInfo:
    """A pod plus what plugins need from it, computed once per pod version."""

    __slots__ = ("pod", "key", "namespace", "name", "uid", "labels", "priority", "requests",
                 "non_zero_cpu", "non_zero_mem", "host_ports", "node_name", "deleting",
                 "start_time", "required_affinity", "required_anti_affinity",
                 "preferred_affinity", "preferred_anti_affinity")

    def __init__(self, pod: dict):
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        self.pod = pod
        self.namespace = meta.get("namespace", "")
        self.name = meta.get("name", "")
        self.key = f"{self.namespace}/{self.name}"
        self.uid = meta.get("uid", "")
        self.labels = meta.get("labels") or {}
        self.priority = pod_priority(pod)
        self.requests = res.pod_requests(spec)
        nz = res.pod_requests(spec, non_zero=True)
        self.non_zero_cpu = nz.get(res.CPU, 0)
        self.non_zero_mem = nz.get(res.MEMORY, 0)
        self.host_ports = tuple(
            (p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP", int(p["hostPort"]))
            for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
            for p in c.get("ports") or [] if p.get("hostPort"))
        self.node_name = spec.get("nodeName") or ""
        self.deleting = bool(meta.get("deletionTimestamp"))
        self.start_time = (pod.get("status") or {}).get("startTime") or \
            meta.get("creationTimestamp") or ""
        aff = spec.get("affinity") or {}
        pa, paa = aff.get("podAffinity") or {}, aff.get("podAntiAffinity") or {}
        ns = self.namespace
        self.required_affinity = _terms(ns, pa.get("requiredDuringSchedulingIgnoredDuringExecution"), False)
        self.required_anti_affinity = _terms(ns, paa.get("requiredDuringSchedulingIgnoredDuringExecution"), False)
        self.preferred_affinity = _terms(ns, pa.get("preferredDuringSchedulingIgnoredDuringExecution"), True)
        self.preferred_anti_affinity = _terms(ns, paa.get("preferredDuringSchedulingIgnoredDuringExecution"), True)

    @property
    def spec(self) -> dict:
        return self.pod.get("spec") or {}

    @property
    def has_affinity(self) -> bool:
        return bool(self.required_affinity or self.required_anti_affinity
                    or self.preferred_affinity or self.preferred_anti_affinity)


def _allocatable(node: dict) -> dict[str, int]:
    status = node.get("status") or {}
    return res.resource_list(status.get("allocatable") or status.get("capacity"))


class NodeInfo:
    """One node and the pods on it (bound or assumed), with running totals."""

    __slots__ = ("name", "node", "labels", "taints", "unschedulable", "allocatable",
                 "requested", "non_zero_cpu", "non_zero_mem", "pods", "used_ports",
                 "images", "pods_with_affinity", "pods_with_required_anti_affinity", "memo")

    def __init__(self, node: dict | None = None, name: str = ""):
        self.pods: dict[str, PodInfo] = {}
        self.requested: dict[str, int] = {}
        self.non_zero_cpu = 0
        self.non_zero_mem = 0
        self.used_ports: dict[tuple, int] = {}
        self.pods_with_affinity = 0
        self.pods_with_required_anti_affinity = 0
        # Plugins' per-node results over its pods (e.g. pods matching a selector),
        # dropped whenever the pods or labels change: most nodes are unchanged
        # from one cycle to the next.
        self.memo: dict = {}
        self.name = name
        self.node = None
        self.set_node(node)

    def set_node(self, node: dict | None) -> None:
        self.node = node
        self.memo = {}
        if node is None:
            self.labels, self.taints, self.unschedulable = {}, (), False
            self.allocatable, self.images = {}, {}
            return
        meta, spec = node.get("metadata") or {}, node.get("spec") or {}
        self.name = meta.get("name", self.name)
        self.labels = meta.get("labels") or {}
        self.taints = tuple(spec.get("taints") or ())
        self.unschedulable = bool(spec.get("unschedulable"))
        self.allocatable = _allocatable(node)
        self.images = {}
        for image in (node.get("status") or {}).get("images") or []:
            size = int(image.get("sizeBytes") or 0)
            for n in image.get("names") or []:
                self.images[n] = size

    @property
    def allowed_pods(self) -> int:
        return self.allocatable.get(res.PODS, 0)

    def add_pod(self, pi: PodInfo) -> None:
        if pi.key in self.pods:
            self.remove_pod(pi.key)
        self.pods[pi.key] = pi
        self._account(pi, 1)

    def remove_pod(self, key: str) -> PodInfo | None:
        pi = self.pods.pop(key, None)
        if pi is not None:
            self._account(pi, -1)
        return pi

    def _account(self, pi: PodInfo, sign: int) -> None:
        self.memo = {}
        for k, v in pi.requests.items():
            self.requested[k] = self.requested.get(k, 0) + sign * v
        self.non_zero_cpu += sign * pi.non_zero_cpu
        self.non_zero_mem += sign * pi.non_zero_mem
        for port in pi.host_ports:
            n = self.used_ports.get(port, 0) + sign
            if n > 0:
                self.used_ports[port] = n
            else:
                self.used_ports.pop(port, None)
        if pi.has_affinity:
            self.pods_with_affinity += sign
        if pi.required_anti_affinity:
            self.pods_with_required_anti_affinity += sign

    def clone(self) -> NodeInfo:
        c = NodeInfo.__new__(NodeInfo)
        c.name, c.node, c.labels, c.taints = self.name, self.node, self.labels, self.taints
        c.unschedulable, c.allocatable, c.images = self.unschedulable, self.allocatable, self.images
        c.pods = dict(self.pods)
        c.requested = dict(self.requested)
        c.non_zero_cpu, c.non_zero_mem = self.non_zero_cpu, self.non_zero_mem
        c.used_ports = dict(self.used_ports)
        c.pods_with_affinity = self.pods_with_affinity
        c.pods_with_required_anti_affinity = self.pods_with_required_anti_affinity
        c.memo = {}
        return c


# Controllers whose selector PodTopologySpread's default constraints spread by.
_CONTROLLER_KINDS = ("ReplicaSet", "StatefulSet", "ReplicationController")


class Workloads:
    """Service and controller selectors (upstream's helper.DefaultSelector inputs)."""

    def __init__(self):
        self.services: dict[str, dict[str, dict]] = {}           # ns -> name -> selector
        self.controllers: dict[tuple[str, str, str], dict] = {}  # (kind, ns, name) -> selector

    def set(self, kind: str, obj: dict) -> None:
        # The kind comes from the informer: list items carry no kind of their own.
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        if kind == "Service":
            if spec.get("selector") is None:
                self.services.get(ns, {}).pop(name, None)  # a nil selector selects nothing
            else:
                self.services.setdefault(ns, {})[name] = spec["selector"]
        elif kind in _CONTROLLER_KINDS:
            self.controllers[(kind, ns, name)] = spec.get("selector") or {}

    def delete(self, kind: str, obj: dict) -> None:
        meta = obj.get("metadata") or {}
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        if kind == "Service":
            self.services.get(ns, {}).pop(name, None)
        else:
            self.controllers.pop((kind, ns, name), None)

    def default_selector(self, pod: PodInfo) -> dict | None:
        """matchLabels/matchExpressions of the Services selecting the pod and its
        controller; None when there are none (no default spreading then)."""
        labels: dict[str, str] = {}
        exprs: list[dict] = []
        for sel in self.services.get(pod.namespace, {}).values():
            if all(pod.labels.get(k) == v for k, v in sel.items()):
                labels.update(sel)
        owner = next((r for r in (pod.pod.get("metadata") or {}).get("ownerReferences") or []
                      if r.get("controller")), None)
        if owner is not None and owner.get("kind") in _CONTROLLER_KINDS:
            sel = self.controllers.get((owner["kind"], pod.namespace, owner.get("name", "")))
            if sel is not None and owner["kind"] == "ReplicationController":
                labels.update(sel)
            elif sel is not None:
                labels.update(sel.get("matchLabels") or {})
                exprs.extend(sel.get("matchExpressions") or [])
        if not labels and not exprs:
            return None
        return {"matchLabels": labels, "matchExpressions": exprs}


class Snapshot:
    """The nodes a cycle sees, in a stable order, plus namespace labels and workloads."""

    def __init__(self, nodes: list[NodeInfo], namespaces: dict[str, dict] | None = None,
                 workloads: Workloads | None = None):
        self.nodes = nodes
        self.by_name = {n.name: n for n in nodes}
        self.namespace_labels = namespaces or {}
        self.workloads = workloads or Workloads()
        self._with_affinity: list[NodeInfo] | None = None
        self._with_anti: list[NodeInfo] | None = None

    def nodes_with_affinity_pods(self) -> list[NodeInfo]:
        if self._with_affinity is None:
            self._with_affinity = [n for n in self.nodes if n.pods_with_affinity]
        return self._with_affinity

    def nodes_with_required_anti_affinity_pods(self) -> list[NodeInfo]:
        if self._with_anti is None:
            self._with_anti = [n for n in self.nodes if n.pods_with_required_anti_affinity]
        return self._with_anti

    def replace(self, node: NodeInfo) -> Snapshot:
        """The same snapshot with one node swapped for a (simulated) clone."""
        return Snapshot([node if n.name == node.name else n for n in self.nodes],
                        self.namespace_labels, self.workloads)


class SchedulerCache:
    def __init__(self):
        self.nodes: dict[str, NodeInfo] = {}
        self._order: list[str] = []          # node names in arrival order
        self._pod_node: dict[str, str] = {}  # pod key -> node it is counted on
        self.assumed: set[str] = set()
        self.namespaces: dict[str, dict] = {}
        self.workloads = Workloads()

    # nodes ----------------------------------------------------------------------
    def add_node(self, node: dict) -> None:
        name = (node.get("metadata") or {}).get("name", "")
        info = self.nodes.get(name)
        if info is None:
            # A pod may be seen before its node: it waits in a node-less NodeInfo.
            info = self.nodes[name] = NodeInfo(None, name)
        if info.node is None:
            self._order.append(name)
        info.set_node(node)

    update_node = add_node

    def remove_node(self, node: dict) -> None:
        name = (node.get("metadata") or {}).get("name", "")
        info = self.nodes.get(name)
        if info is None:
            return
        if name in self._order:
            self._order.remove(name)
        if info.pods:
            info.set_node(None)   # keep the pods accounted until they are deleted
        else:
            del self.nodes[name]

    # pods -------------------------------------------------------------------------
    def _place(self, pi: PodInfo, node_name: str) -> None:
        old = self._pod_node.get(pi.key)
        if old is not None and old in self.nodes:
            self.nodes[old].remove_pod(pi.key)
        info = self.nodes.get(node_name)
        if info is None:
            info = self.nodes[node_name] = NodeInfo(None, node_name)
        info.add_pod(pi)
        self._pod_node[pi.key] = node_name

    def add_pod(self, pod: dict) -> None:
        """A pod the informer shows bound (confirms an assumed one)."""
        pi = PodInfo(pod)
        if _terminal(pod):
            self.remove_pod(pod)
            return
        self.assumed.discard(pi.key)
        self._place(pi, pi.node_name)

    update_pod = add_pod

    def remove_pod(self, pod: dict) -> None:
        self.forget(pod_key(pod))

    def assume(self, pi: PodInfo, node_name: str) -> None:
        self.assumed.add(pi.key)
        self._place(pi, node_name)

    def forget(self, key: str) -> None:
        self.assumed.discard(key)
        node = self._pod_node.pop(key, None)
        if node is not None and node in self.nodes:
            info = self.nodes[node]
            info.remove_pod(key)
            if info.node is None and not info.pods:
                del self.nodes[node]

    def forget_assumed(self, key: str) -> None:
        """Undo an assume whose binding failed - unless the informer has meanwhile
        shown the pod bound (then it is a real pod on its node, not ours to drop)."""
        if key in self.assumed:
            self.forget(key)

    def is_assumed(self, key: str) -> bool:
        return key in self.assumed

    def has_pod(self, key: str) -> bool:
        return key in self._pod_node

    # snapshot -----------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        return Snapshot([self.nodes[n] for n in self._order], self.namespaces, self.workloads)


def _terminal(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
