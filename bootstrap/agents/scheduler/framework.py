"""The scheduling framework: one profile's plugins run over a snapshot.

A cycle is upstream's: PreFilter (per pod) -> Filter (per node, first failure
wins) -> PreScore -> Score (per feasible node) -> NormalizeScore -> weighted sum
-> the best node (ties broken at random). Plugins are objects with optional
methods; each method is a pure function of the pod, the cycle state and the
NodeInfos it is given, so a plugin is tested as data in, decision out.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from .cache import NodeInfo, PodInfo, Snapshot

MAX_NODE_SCORE = 100

# Status codes (upstream framework.Code); Unschedulable can be resolved by
# preemption, UnschedulableAndUnresolvable cannot.
SUCCESS, ERROR, UNSCHEDULABLE, UNRESOLVABLE, SKIP = range(5)

# Cluster events that can make a rejected pod schedulable (upstream ClusterEvent
# resource/action pairs the plugins register for); the queue moves a pod back
# only on events one of its rejecting plugins listens to.
NODE_ADD, NODE_UPDATE, NODE_DELETE = "NodeAdd", "NodeUpdate", "NodeDelete"
POD_ADD, POD_UPDATE, POD_DELETE = "AssignedPodAdd", "AssignedPodUpdate", "AssignedPodDelete"
NODE_EVENTS = frozenset({NODE_ADD, NODE_UPDATE})
POD_EVENTS = frozenset({POD_ADD, POD_UPDATE, POD_DELETE})

# percentageOfNodesToScore's floor and the adaptive default's shape (upstream).
MIN_FEASIBLE_NODES = 100
MIN_FEASIBLE_PERCENTAGE = 5


@dataclass
class Status:
    code: int
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)


def unschedulable(*reasons: str) -> Status:
    return Status(UNSCHEDULABLE, reasons)


def unresolvable(*reasons: str) -> Status:
    return Status(UNRESOLVABLE, reasons)


class CycleState(dict):
    """Per-cycle data the PreFilter/PreScore step of a plugin hands to its later steps."""

    def clone(self) -> CycleState:
        return CycleState(self)


class Plugin:
    """Base of every plugin; subclasses implement the extension points they take part in.

    pre_filter(state, pod, snapshot) -> Status | None
    filter(state, pod, node) -> Status | None
    pre_score(state, pod, snapshot, nodes) -> Status | None   (SKIP: do not score)
    score(state, pod, node) -> int
    normalize(state, pod, scores: dict[str, int]) -> None  (in place)

    ``events`` names the cluster events that may make a pod this plugin rejected
    schedulable (the queue moves it back on those); ``snapshot_state`` marks a
    PreFilter whose result depends on other pods, recomputed when preemption
    simulates removing victims.
    """

    name = ""
    events: frozenset[str] = frozenset()
    snapshot_state = False

    def __init__(self, args: dict | None = None):
        self.args = args or {}


@dataclass
class FitError:
    pod: PodInfo
    num_nodes: int
    statuses: dict[str, Status] = field(default_factory=dict)
    pre_filter_msg: str = ""
    post_filter_msg: str = ""

    def unschedulable_plugins(self) -> set[str]:
        return {s.plugin for s in self.statuses.values() if s.plugin}

    def message(self) -> str:
        return fit_message(self.num_nodes, self.statuses, self.pre_filter_msg,
                           self.post_filter_msg)


def fit_message(num_nodes: int, statuses: dict[str, Status], pre_filter_msg: str = "",
                post_filter_msg: str = "", absent_reason: str = "") -> str:
    """Upstream FitError.Error(): "0/N nodes are available: <counts sorted>. <post>"."""
    msg = f"0/{num_nodes} nodes are available:"
    if pre_filter_msg:
        msg += f" {pre_filter_msg}."
    else:
        counts: dict[str, int] = {}
        for st in statuses.values():
            for r in st.reasons:
                counts[r] = counts.get(r, 0) + 1
        if absent_reason and len(statuses) < num_nodes:
            counts[absent_reason] = counts.get(absent_reason, 0) + num_nodes - len(statuses)
        # Sorted as strings, count first, as upstream's sortReasonsHistogram.
        parts = sorted(f"{n} {r}" for r, n in counts.items())
        if parts:
            msg += f" {', '.join(parts)}."
    if post_filter_msg:
        msg += f" {post_filter_msg}"
    return msg


@dataclass
class ScheduleResult:
    node: str
    evaluated: int
    feasible: int


def num_feasible_nodes_to_find(total: int, percentage: int | None) -> int:
    if total < MIN_FEASIBLE_NODES:
        return total
    pct = percentage or 0
    if pct <= 0:
        pct = max(50 - total // 125, MIN_FEASIBLE_PERCENTAGE)
    if pct >= 100:
        return total
    return min(total, max(total * pct // 100, MIN_FEASIBLE_NODES))


def default_normalize(scores: dict[str, int], reverse: bool = False) -> None:
    """Upstream helper.DefaultNormalizeScore: scale to 0..100 by the maximum."""
    top = max(scores.values(), default=0)
    if top == 0:
        if reverse:
            for k in scores:
                scores[k] = MAX_NODE_SCORE
        return
    for k, v in scores.items():
        s = MAX_NODE_SCORE * v // top
        scores[k] = MAX_NODE_SCORE - s if reverse else s


class Framework:
    """One profile: its plugins per extension point and the score weights."""

    def __init__(self, scheduler_name: str, filters: list[Plugin], scorers: list[tuple[Plugin, int]],
                 *, preemption: bool = True, gates: bool = True,
                 percentage_of_nodes_to_score: int | None = None,
                 rng: random.Random | None = None):
        self.scheduler_name = scheduler_name
        self.filters = filters
        self.scorers = scorers
        self.preemption = preemption  # DefaultPreemption at PostFilter
        self.gates = gates            # SchedulingGates at PreEnqueue
        self.percentage = percentage_of_nodes_to_score
        self.rng = rng or random.Random()
        self._next_start = 0
        self.pre_filters = [p for p in filters if _has(p, "pre_filter")]
        self.snapshot_pre_filters = [p for p in self.pre_filters if p.snapshot_state]

    def plugin_events(self) -> dict[str, frozenset[str]]:
        return {p.name: p.events for p in self.filters}

    # filter ---------------------------------------------------------------------------
    def run_pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                       plugins: Iterable[Plugin] | None = None) -> Status | None:
        for p in self.pre_filters if plugins is None else plugins:
            st = p.pre_filter(state, pod, snapshot)
            if st is not None and st.code != SUCCESS:
                st.plugin = p.name
                return st
        return None

    def run_filters(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        for p in self.filters:
            st = p.filter(state, pod, node)
            if st is not None:
                st.plugin = p.name
                return st
        return None

    def run_filters_with_nominated(self, state: CycleState, pod: PodInfo, node: NodeInfo,
                                   nominated: list[PodInfo]) -> Status | None:
        """Filters with equal-or-higher priority pods nominated to the node counted as
        if already there (so preemption's room is not taken), then without them."""
        others = [n for n in nominated if n.key != pod.key and n.priority >= pod.priority]
        if others:
            sim = node.clone()
            for n in others:
                sim.add_pod(n)
            st = self.run_filters(state, pod, sim)
            if st is not None:
                return st
        return self.run_filters(state, pod, node)

    # the cycle ----------------------------------------------------------------------------
    def schedule(self, pod: PodInfo, snapshot: Snapshot,
                 nominated: dict[str, list[PodInfo]] | None = None
                 ) -> tuple[ScheduleResult | FitError, CycleState]:
        state = CycleState()
        nodes = snapshot.nodes
        if not nodes:
            return FitError(pod, 0), state
        st = self.run_pre_filter(state, pod, snapshot)
        if st is not None:
            err = FitError(pod, len(nodes), {n.name: st for n in nodes},
                           pre_filter_msg=st.message)
            return err, state
        nominated = nominated or {}
        want = num_feasible_nodes_to_find(len(nodes), self.percentage)
        feasible: list[NodeInfo] = []
        statuses: dict[str, Status] = {}
        total = len(nodes)
        start = self._next_start % total
        evaluated = 0
        for i in range(total):
            node = nodes[(start + i) % total]
            evaluated += 1
            noms = nominated.get(node.name)
            st = (self.run_filters_with_nominated(state, pod, node, noms) if noms
                  else self.run_filters(state, pod, node))
            if st is None:
                feasible.append(node)
                if len(feasible) >= want:
                    break
            else:
                statuses[node.name] = st
        # Round robin over where the search starts, so partial searches are fair.
        self._next_start = (start + evaluated) % total
        if not feasible:
            return FitError(pod, total, statuses), state
        if len(feasible) == 1:
            return ScheduleResult(feasible[0].name, evaluated, 1), state
        totals = self.run_scores(state, pod, snapshot, feasible)
        return ScheduleResult(self._select(totals), evaluated, len(feasible)), state

    def run_scores(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                   nodes: list[NodeInfo]) -> dict[str, int]:
        totals = dict.fromkeys((n.name for n in nodes), 0)
        for p, weight in self.scorers:
            if _has(p, "pre_score"):
                st = p.pre_score(state, pod, snapshot, nodes)
                if st is not None and st.code == SKIP:
                    continue
            scores = {n.name: p.score(state, pod, n) for n in nodes}
            if _has(p, "normalize"):
                p.normalize(state, pod, scores)
            for k, v in scores.items():
                totals[k] += v * weight
        return totals

    def _select(self, totals: dict[str, int]) -> str:
        # Reservoir sampling among the best, as upstream's selectHost.
        best, chosen, ties = None, "", 0
        for name, score in totals.items():
            if best is None or score > best:
                best, chosen, ties = score, name, 1
            elif score == best:
                ties += 1
                if self.rng.randrange(ties) == 0:
                    chosen = name
        return chosen


def _has(plugin: Plugin, method: str) -> bool:
    return callable(getattr(plugin, method, None))
