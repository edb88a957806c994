"""NodeResourcesFit (filter and the LeastAllocated / MostAllocated scores) and
NodeResourcesBalancedAllocation, with upstream's reasons and formulas."""

from __future__ import annotations

import math

from .. import resources as res
from ..cache import NodeInfo, PodInfo, Snapshot
from ..framework import (
    MAX_NODE_SCORE,
    NODE_EVENTS,
    POD_DELETE,
    POD_UPDATE,
    SKIP,
    CycleState,
    Plugin,
    Status,
    unschedulable,
)

LEAST_ALLOCATED = "LeastAllocated"
MOST_ALLOCATED = "MostAllocated"
STRATEGIES = (LEAST_ALLOCATED, MOST_ALLOCATED)
DEFAULT_RESOURCES = ({"name": res.CPU, "weight": 1}, {"name": res.MEMORY, "weight": 1})
_BASIC = (res.CPU, res.MEMORY, res.EPHEMERAL_STORAGE)


class NodeResourcesFit(Plugin):
    name = "NodeResourcesFit"
    events = NODE_EVENTS | {POD_DELETE, POD_UPDATE}

    def __init__(self, args: dict | None = None):
        super().__init__(args)
        strategy = self.args.get("scoringStrategy") or {}
        self.strategy = strategy.get("type") or LEAST_ALLOCATED
        self.resources = tuple((r["name"], int(r.get("weight") or 1))
                               for r in strategy.get("resources") or DEFAULT_RESOURCES)
        self.ignored = frozenset(self.args.get("ignoredResources") or ())
        self.ignored_groups = frozenset(self.args.get("ignoredResourceGroups") or ())

    def _ignored(self, name: str) -> bool:
        return name in self.ignored or (
            "/" in name and name.split("/", 1)[0] in self.ignored_groups)

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        reasons = []
        if len(node.pods) + 1 > node.allowed_pods:
            reasons.append("Too many pods")
        req = pod.requests
        if req:
            alloc, used = node.allocatable, node.requested
            for name in _BASIC:
                want = req.get(name, 0)
                if want > 0 and want > alloc.get(name, 0) - used.get(name, 0):
                    reasons.append(f"Insufficient {name}")
            for name, want in req.items():
                if name in _BASIC or name == res.PODS or want <= 0 or self._ignored(name):
                    continue
                if want > alloc.get(name, 0) - used.get(name, 0):
                    reasons.append(f"Insufficient {name}")
        return unschedulable(*reasons) if reasons else None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        total = weights = 0
        least = self.strategy == LEAST_ALLOCATED
        for name, weight in self.resources:
            capacity = node.allocatable.get(name, 0)
            if capacity == 0:
                continue
            if name == res.CPU:
                requested = node.non_zero_cpu + pod.non_zero_cpu
            elif name == res.MEMORY:
                requested = node.non_zero_mem + pod.non_zero_mem
            else:
                want = pod.requests.get(name, 0)
                if want == 0:
                    continue  # extended resources count only for pods that ask for them
                requested = node.requested.get(name, 0) + want
            if least:
                s = 0 if requested > capacity else (capacity - requested) * MAX_NODE_SCORE // capacity
            else:
                s = min(requested, capacity) * MAX_NODE_SCORE // capacity
            total += s * weight
            weights += weight
        return total // weights if weights else 0


class NodeResourcesBalancedAllocation(Plugin):
    name = "NodeResourcesBalancedAllocation"

    def __init__(self, args: dict | None = None):
        super().__init__(args)
        self.resources = tuple(r["name"] for r in self.args.get("resources") or DEFAULT_RESOURCES)

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                  nodes: list[NodeInfo]) -> Status | None:
        # Best-effort pods would all look balanced on the emptiest node: skipped.
        if not any(pod.requests.get(r, 0) for r in self.resources):
            return Status(SKIP)
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        fractions = []
        for name in self.resources:
            capacity = node.allocatable.get(name, 0)
            if capacity == 0:
                continue
            requested = node.requested.get(name, 0) + pod.requests.get(name, 0)
            fractions.append(min(requested / capacity, 1.0))
        if len(fractions) == 2:
            std = abs(fractions[0] - fractions[1]) / 2
        elif len(fractions) > 2:
            mean = sum(fractions) / len(fractions)
            std = math.sqrt(sum((f - mean) ** 2 for f in fractions) / len(fractions))
        else:
            std = 0.0
        return int((1 - std) * MAX_NODE_SCORE)
