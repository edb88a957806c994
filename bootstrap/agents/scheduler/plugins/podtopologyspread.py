"""PodTopologySpread: DoNotSchedule constraints filter, ScheduleAnyway ones score
(upstream's skew, minDomains, matchLabelKeys, node inclusion policies and the
log-weighted spreading score). A pod without constraints gets the default ones
(defaultingType System: hostname maxSkew 3 and zone maxSkew 5, ScheduleAnyway,
or the args' defaultConstraints with List), selecting the pods of the same
Services and controller, as upstream."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bootstrap.api.placement import required_node_affinity, tolerated
from bootstrap.api.selectors import LabelSelector, label_selector_from_dict

from ..cache import HOSTNAME_LABEL, NodeInfo, PodInfo, Snapshot
from ..framework import (
    MAX_NODE_SCORE,
    NODE_DELETE,
    NODE_EVENTS,
    POD_EVENTS,
    SKIP,
    CycleState,
    Plugin,
    Status,
    unresolvable,
    unschedulable,
)

REASON = "node(s) didn't match pod topology spread constraints"
REASON_MISSING_LABEL = "node(s) didn't match pod topology spread constraints (missing required label)"
_PRE_FILTER, _PRE_SCORE = "PodTopologySpread/filter", "PodTopologySpread/score"


@dataclass(frozen=True)
class Constraint:
    max_skew: int
    topology_key: str
    selector: LabelSelector
    min_domains: int
    honor_affinity: bool
    honor_taints: bool
    memo_key: tuple = ()   # names this (namespace, selector) in NodeInfo.memo


SYSTEM_DEFAULT_CONSTRAINTS = (
    {"maxSkew": 3, "topologyKey": HOSTNAME_LABEL, "whenUnsatisfiable": "ScheduleAnyway"},
    {"maxSkew": 5, "topologyKey": "topology.kubernetes.io/zone",
     "whenUnsatisfiable": "ScheduleAnyway"},
)


def constraints(pod: PodInfo, when: str, raw: list | None = None) -> list[Constraint]:
    out = []
    for c in pod.spec.get("topologySpreadConstraints") or [] if raw is None else raw:
        if c.get("whenUnsatisfiable", "DoNotSchedule") != when:
            continue
        sel = c.get("labelSelector")
        keys = [k for k in c.get("matchLabelKeys") or [] if k in pod.labels]
        if keys and sel is not None:
            # matchLabelKeys pins the selector to this pod's own values (e.g. the
            # pod-template-hash), so each revision spreads on its own.
            sel = {**sel, "matchExpressions": list(sel.get("matchExpressions") or []) + [
                {"key": k, "operator": "In", "values": [pod.labels[k]]} for k in keys]}
        try:
            selector = label_selector_from_dict(sel)
        except ValueError:
            selector = LabelSelector(nothing=True)
        out.append(Constraint(int(c.get("maxSkew") or 1), c.get("topologyKey", ""), selector,
                              int(c.get("minDomains") or 1),
                              c.get("nodeAffinityPolicy", "Honor") == "Honor",
                              c.get("nodeTaintsPolicy", "Ignore") == "Honor",
                              ("PodTopologySpread", pod.namespace, str(selector),
                               selector.nothing)))
    return out


class _Inclusion:
    """Upstream's node inclusion policies plus: the node has every topology key
    (not required of system-defaulted constraints)."""

    def __init__(self, pod: PodInfo, cs: list[Constraint], require_keys: bool = True):
        spec = pod.spec
        self.spec = spec
        self.affinity = any(c.honor_affinity for c in cs) and bool(
            spec.get("nodeSelector") or (spec.get("affinity") or {}).get("nodeAffinity"))
        self.taints = any(c.honor_taints for c in cs)
        self.tolerations = spec.get("tolerations") or ()
        self.keys = tuple({c.topology_key for c in cs}) if require_keys else ()

    def __call__(self, node: NodeInfo) -> bool:
        if node.node is None:
            return False
        labels = node.labels
        for k in self.keys:
            if k not in labels:
                return False
        if self.affinity and not required_node_affinity(self.spec, labels, node.name):
            return False
        if self.taints:
            for t in node.taints:
                if t.get("effect") in ("NoSchedule", "NoExecute") and \
                        not tolerated(self.tolerations, t):
                    return False
        return True


def _count(node: NodeInfo, c: Constraint) -> int:
    n = node.memo.get(c.memo_key)
    if n is None:
        namespace, selector = c.memo_key[1], c.selector
        n = node.memo[c.memo_key] = sum(
            1 for p in node.pods.values()
            if p.namespace == namespace and not p.deleting and selector.matches(p.labels))
    return n


class PodTopologySpread(Plugin):
    name = "PodTopologySpread"
    events = POD_EVENTS | NODE_EVENTS | {NODE_DELETE}
    snapshot_state = True

    def __init__(self, args: dict | None = None):
        super().__init__(args)
        self.system_defaulted = self.args.get("defaultingType", "System") == "System"
        self.defaults = (SYSTEM_DEFAULT_CONSTRAINTS if self.system_defaulted
                         else tuple(self.args.get("defaultConstraints") or ()))

    def _constraints(self, pod: PodInfo, snapshot: Snapshot, when: str
                     ) -> tuple[list[Constraint], bool]:
        """(constraints, defaulted): the pod's own, or the defaults for its workload."""
        if pod.spec.get("topologySpreadConstraints") or not self.defaults:
            return constraints(pod, when), False
        selector = snapshot.workloads.default_selector(pod)
        if selector is None:
            return [], False
        raw = [{**c, "labelSelector": selector} for c in self.defaults]
        return constraints(pod, when, raw), True

    # filter -------------------------------------------------------------------------
    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        cs, _ = self._constraints(pod, snapshot, "DoNotSchedule")
        if not cs:
            state[_PRE_FILTER] = None
            return None
        counts: list[dict[str, int]] = [{} for _ in cs]
        eligible = _Inclusion(pod, cs)
        for node in snapshot.nodes:
            if not eligible(node):
                continue
            for i, c in enumerate(cs):
                value = node.labels[c.topology_key]
                counts[i][value] = counts[i].get(value, 0) + _count(node, c)
        mins = []
        for i, c in enumerate(cs):
            if len(counts[i]) < c.min_domains:
                mins.append(0)  # too few domains: every domain counts as empty
            else:
                mins.append(min(counts[i].values(), default=0))
        state[_PRE_FILTER] = (cs, counts, mins)
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        pre = state.get(_PRE_FILTER)
        if not pre:
            return None
        cs, counts, mins = pre
        for i, c in enumerate(cs):
            value = node.labels.get(c.topology_key)
            if value is None:
                return unresolvable(REASON_MISSING_LABEL)
            self_match = 1 if c.selector.matches(pod.labels) else 0
            skew = counts[i].get(value, 0) + self_match - mins[i]
            if skew > c.max_skew:
                return unschedulable(REASON)
        return None

    # score ---------------------------------------------------------------------------
    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                  nodes: list[NodeInfo]) -> Status | None:
        cs, defaulted = self._constraints(pod, snapshot, "ScheduleAnyway")
        if not cs:
            return Status(SKIP)
        # System defaults do not require every key: a node without a zone label
        # is still spread by hostname (upstream's requireAllTopologies).
        require_all = not (defaulted and self.system_defaulted)
        ignored = {n.name for n in nodes if require_all
                   and not all(c.topology_key in n.labels for c in cs)}
        pairs: list[dict[str, int]] = [{} for _ in cs]
        weights = []
        for i, c in enumerate(cs):
            values = {n.labels.get(c.topology_key, "") for n in nodes if n.name not in ignored}
            if c.topology_key != HOSTNAME_LABEL:
                pairs[i] = dict.fromkeys(values, 0)
                domains = len(values)
            else:
                domains = len(nodes) - len(ignored)
            weights.append(math.log(domains + 2))
        eligible = _Inclusion(pod, cs, require_all)
        for node in snapshot.nodes:
            if not eligible(node):
                continue
            for i, c in enumerate(cs):
                if c.topology_key == HOSTNAME_LABEL:
                    continue
                value = node.labels.get(c.topology_key, "")
                if value in pairs[i]:
                    pairs[i][value] += _count(node, c)
        state[_PRE_SCORE] = (cs, pairs, weights, ignored)
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        cs, pairs, weights, ignored = state[_PRE_SCORE]
        if node.name in ignored:
            return 0
        total = 0.0
        for i, c in enumerate(cs):
            value = node.labels.get(c.topology_key)
            if value is None:
                continue
            cnt = _count(node, c) if c.topology_key == HOSTNAME_LABEL else pairs[i].get(value, 0)
            total += cnt * weights[i] + (c.max_skew - 1)
        return round(total)

    def normalize(self, state: CycleState, pod: PodInfo, scores: dict[str, int]) -> None:
        ignored = state[_PRE_SCORE][3]
        live = [v for k, v in scores.items() if k not in ignored]
        if not live:
            return
        lo, hi = min(live), max(live)
        for k, v in scores.items():
            if k in ignored:
                scores[k] = 0
            elif hi == 0:
                scores[k] = MAX_NODE_SCORE
            else:
                # Fewer matching pods in the domain -> higher score.
                scores[k] = MAX_NODE_SCORE * (hi + lo - v) // hi
