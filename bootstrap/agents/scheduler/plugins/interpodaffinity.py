"""InterPodAffinity: required pod affinity / anti-affinity of the incoming pod and
the required anti-affinity of existing pods (filter), preferred terms both ways
plus existing pods' required affinity at hardPodAffinityWeight (score)."""

from __future__ import annotations

from ..cache import AffinityTerm, NodeInfo, PodInfo, Snapshot
from ..framework import (
    MAX_NODE_SCORE,
    NODE_EVENTS,
    POD_EVENTS,
    SKIP,
    CycleState,
    Plugin,
    Status,
    unresolvable,
    unschedulable,
)

REASON_AFFINITY = "node(s) didn't match pod affinity rules"
REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
_PRE_FILTER, _PRE_SCORE = "InterPodAffinity/filter", "InterPodAffinity/score"


def _matches_all(terms: tuple[AffinityTerm, ...], pod: PodInfo, ns_labels: dict) -> bool:
    return all(t.matches(pod, ns_labels) for t in terms)


class InterPodAffinity(Plugin):
    name = "InterPodAffinity"
    events = POD_EVENTS | NODE_EVENTS
    snapshot_state = True

    def __init__(self, args: dict | None = None):
        super().__init__(args)
        self.hard_weight = int(self.args.get("hardPodAffinityWeight", 1))
        self.ignore_existing_preferred = bool(self.args.get("ignorePreferredTermsOfExistingPods"))

    # filter ---------------------------------------------------------------------------
    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        ns_labels = snapshot.namespace_labels
        pod_ns_labels = ns_labels.get(pod.namespace, {})
        existing_anti: dict[tuple[str, str], int] = {}
        for node in snapshot.nodes_with_required_anti_affinity_pods():
            for other in node.pods.values():
                for t in other.required_anti_affinity:
                    value = node.labels.get(t.topology_key)
                    if value is not None and t.matches(pod, pod_ns_labels):
                        pair = (t.topology_key, value)
                        existing_anti[pair] = existing_anti.get(pair, 0) + 1
        affinity: dict[tuple[str, str], int] = {}
        anti: dict[tuple[str, str], int] = {}
        if pod.required_affinity or pod.required_anti_affinity:
            for node in snapshot.nodes:
                if not node.labels:
                    continue
                for other in node.pods.values():
                    other_ns = ns_labels.get(other.namespace, {})
                    if pod.required_affinity and _matches_all(pod.required_affinity, other, other_ns):
                        for t in pod.required_affinity:
                            value = node.labels.get(t.topology_key)
                            if value is not None:
                                affinity[(t.topology_key, value)] = affinity.get((t.topology_key, value), 0) + 1
                    for t in pod.required_anti_affinity:
                        value = node.labels.get(t.topology_key)
                        if value is not None and t.matches(other, other_ns):
                            anti[(t.topology_key, value)] = anti.get((t.topology_key, value), 0) + 1
        if not existing_anti and not pod.required_affinity and not pod.required_anti_affinity:
            state[_PRE_FILTER] = None
            return None
        self_match = _matches_all(pod.required_affinity, pod, pod_ns_labels)
        state[_PRE_FILTER] = (existing_anti, affinity, anti, self_match)
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        pre = state.get(_PRE_FILTER)
        if not pre:
            return None
        existing_anti, affinity, anti, self_match = pre
        labels = node.labels
        if pod.required_affinity:
            pods_exist = True
            for t in pod.required_affinity:
                value = labels.get(t.topology_key)
                if value is None:
                    return unresolvable(REASON_AFFINITY)
                if affinity.get((t.topology_key, value), 0) <= 0:
                    pods_exist = False
            # The first pod of a group that selects itself may go anywhere the
            # topology keys exist, or the group could never start.
            if not pods_exist and not (not affinity and self_match):
                return unresolvable(REASON_AFFINITY)
        for t in pod.required_anti_affinity:
            value = labels.get(t.topology_key)
            if value is not None and anti.get((t.topology_key, value), 0) > 0:
                return unschedulable(REASON_ANTI_AFFINITY)
        for (key, value), n in existing_anti.items():
            if n > 0 and labels.get(key) == value:
                return unschedulable(REASON_EXISTING_ANTI_AFFINITY)
        return None

    # score ---------------------------------------------------------------------------
    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                  nodes: list[NodeInfo]) -> Status | None:
        has_own = bool(pod.preferred_affinity or pod.preferred_anti_affinity)
        if not has_own and self.ignore_existing_preferred:
            return Status(SKIP)
        ns_labels = snapshot.namespace_labels
        pod_ns_labels = ns_labels.get(pod.namespace, {})
        scores: dict[str, dict[str, int]] = {}

        def add(terms, target: PodInfo, target_ns: dict, node: NodeInfo, sign: int,
                weight: int | None = None) -> None:
            for t in terms:
                w = t.weight if weight is None else weight
                if w and t.matches(target, target_ns):
                    value = node.labels.get(t.topology_key)
                    if value is not None:
                        by_value = scores.setdefault(t.topology_key, {})
                        by_value[value] = by_value.get(value, 0) + sign * w

        candidates = snapshot.nodes if has_own else snapshot.nodes_with_affinity_pods()
        for node in candidates:
            if not node.labels:
                continue
            for other in node.pods.values():
                if not has_own and not other.has_affinity:
                    continue
                other_ns = ns_labels.get(other.namespace, {})
                add(pod.preferred_affinity, other, other_ns, node, 1)
                add(pod.preferred_anti_affinity, other, other_ns, node, -1)
                if self.hard_weight > 0:
                    add(other.required_affinity, pod, pod_ns_labels, node, 1, self.hard_weight)
                add(other.preferred_affinity, pod, pod_ns_labels, node, 1)
                add(other.preferred_anti_affinity, pod, pod_ns_labels, node, -1)
        if not scores:
            return Status(SKIP)
        state[_PRE_SCORE] = scores
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        total = 0
        for key, by_value in state[_PRE_SCORE].items():
            value = node.labels.get(key)
            if value is not None:
                total += by_value.get(value, 0)
        return total

    def normalize(self, state: CycleState, pod: PodInfo, scores: dict[str, int]) -> None:
        if not scores:
            return
        lo, hi = min(scores.values()), max(scores.values())
        for k, v in scores.items():
            scores[k] = int(MAX_NODE_SCORE * (v - lo) / (hi - lo)) if hi > lo else 0
