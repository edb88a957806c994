"""Node-local filters and scores: NodeName, NodeUnschedulable, TaintToleration,
NodeAffinity, NodePorts, ImageLocality (upstream names, reasons and formulas)."""

from __future__ import annotations

from bootstrap.api.placement import required_node_affinity, term_matches, tolerated

from ..cache import NodeInfo, PodInfo, Snapshot
from ..framework import (
    MAX_NODE_SCORE,
    NODE_ADD,
    NODE_EVENTS,
    POD_DELETE,
    SKIP,
    CycleState,
    Plugin,
    Status,
    default_normalize,
    unresolvable,
    unschedulable,
)

UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"


class NodeName(Plugin):
    name = "NodeName"
    events = frozenset({NODE_ADD})
    REASON = "node(s) didn't match the requested node name"

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if pod.node_name and pod.node_name != node.name:
            return unresolvable(self.REASON)
        return None


class NodeUnschedulable(Plugin):
    name = "NodeUnschedulable"
    events = NODE_EVENTS
    REASON = "node(s) were unschedulable"
    _TAINT = {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if node.node is None:
            return unresolvable("node(s) not found")
        if node.unschedulable and not tolerated(pod.spec.get("tolerations") or (), self._TAINT):
            return unresolvable(self.REASON)
        return None


class TaintToleration(Plugin):
    name = "TaintToleration"
    events = NODE_EVENTS

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not node.taints:
            return None
        tolerations = pod.spec.get("tolerations") or ()
        for taint in node.taints:
            if taint.get("effect") not in ("NoSchedule", "NoExecute"):
                continue
            if not tolerated(tolerations, taint):
                return unresolvable(f"node(s) had untolerated taint "
                                    f"{{{taint.get('key', '')}: {taint.get('value', '')}}}")
        return None

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                  nodes: list[NodeInfo]) -> Status | None:
        state["TaintToleration"] = [t for t in pod.spec.get("tolerations") or ()
                                    if (t.get("effect") or "PreferNoSchedule") == "PreferNoSchedule"]
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        tolerations = state["TaintToleration"]
        return sum(1 for t in node.taints if t.get("effect") == "PreferNoSchedule"
                   and not tolerated(tolerations, t))

    def normalize(self, state: CycleState, pod: PodInfo, scores: dict[str, int]) -> None:
        default_normalize(scores, reverse=True)


class NodeAffinity(Plugin):
    name = "NodeAffinity"
    events = NODE_EVENTS
    REASON = "node(s) didn't match Pod's node affinity/selector"

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        spec = pod.spec
        if not spec.get("nodeSelector") and not spec.get("affinity"):
            return None
        if not required_node_affinity(spec, node.labels, node.name):
            return unresolvable(self.REASON)
        return None

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                  nodes: list[NodeInfo]) -> Status | None:
        preferred = (((pod.spec.get("affinity") or {}).get("nodeAffinity") or {})
                     .get("preferredDuringSchedulingIgnoredDuringExecution") or [])
        if not preferred:
            return Status(SKIP)
        state["NodeAffinity"] = preferred
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        return sum(int(t.get("weight") or 0) for t in state["NodeAffinity"]
                   if term_matches(t.get("preference") or {}, node.labels, node.name))

    def normalize(self, state: CycleState, pod: PodInfo, scores: dict[str, int]) -> None:
        default_normalize(scores)


class NodePorts(Plugin):
    name = "NodePorts"
    events = frozenset({POD_DELETE, NODE_ADD})
    REASON = "node(s) didn't have free ports for the requested pod ports"

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not pod.host_ports or not node.used_ports:
            return None
        used = node.used_ports
        for ip, proto, port in pod.host_ports:
            if ip == "0.0.0.0":
                clash = any(p == port and pr == proto for _, pr, p in used)
            else:
                clash = (ip, proto, port) in used or ("0.0.0.0", proto, port) in used
            if clash:
                return unschedulable(self.REASON)
        return None


MB = 1024 * 1024
_MIN_THRESHOLD = 23 * MB
_MAX_CONTAINER_THRESHOLD = 1000 * MB


def normalized_image_name(name: str) -> str:
    # An image without a tag (or digest) is the :latest one, as the kubelet pulls it.
    if "@" not in name and name.rfind(":") <= name.rfind("/"):
        return name + ":latest"
    return name


class ImageLocality(Plugin):
    name = "ImageLocality"

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                  nodes: list[NodeInfo]) -> Status | None:
        spec = pod.spec
        containers = (spec.get("initContainers") or []) + (spec.get("containers") or [])
        images = [normalized_image_name(c.get("image") or "") for c in containers]
        spread = {img: sum(1 for n in snapshot.nodes if img in n.images) for img in set(images)}
        if not any(spread.values()):
            return Status(SKIP)
        state["ImageLocality"] = (images, spread, len(snapshot.nodes), len(containers))
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        images, spread, total, containers = state["ImageLocality"]
        total_score = 0
        for img in images:
            size = node.images.get(img)
            if size is not None:
                # Scaled by how many nodes have it, so one node with a big image
                # does not attract every pod (upstream's scaledImageScore).
                total_score += int(size * spread[img] / total)
        top = _MAX_CONTAINER_THRESHOLD * containers
        total_score = min(max(total_score, _MIN_THRESHOLD), top)
        return MAX_NODE_SCORE * (total_score - _MIN_THRESHOLD) // (top - _MIN_THRESHOLD)
