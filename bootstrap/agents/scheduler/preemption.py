"""DefaultPreemption as pure functions: which pods to evict, on which node.

For every node the filters rejected with a resolvable status (Insufficient cpu,
ports, anti-affinity, ...) all lower-priority pods are removed in simulation;
if the pod then fits, victims are reprieved one by one from the most important
down (PDB-violating ones first), so the fewest and least important are evicted.
Among the candidate nodes upstream's order picks one: fewest PDB violations,
lowest highest-victim priority, smallest priority sum, fewest victims, latest
start of the top victims. Executing the decision (status condition, graceful
delete, nominatedNodeName) is the scheduler's I/O, not done here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bootstrap.api.selectors import label_selector_from_dict

from .cache import NodeInfo, PodInfo, Snapshot
from .framework import UNRESOLVABLE, UNSCHEDULABLE, CycleState, Framework, Status, fit_message

NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
NEVER = "not eligible due to preemptionPolicy=Never."
TERMINATING = "not eligible due to a terminating pod on the nominated node."
MIN_CANDIDATE_PERCENTAGE = 10
MIN_CANDIDATE_ABSOLUTE = 100
_MAX_INT32 = 2 ** 31 - 1
# Upstream's DisruptionTarget condition on a victim, so its controller knows why it went.
DISRUPTION_TARGET = "DisruptionTarget"
PREEMPTION_BY_SCHEDULER = "PreemptionByScheduler"


@dataclass
class Candidate:
    node: str
    victims: list[PodInfo]
    pdb_violations: int = 0


@dataclass
class Outcome:
    """What DefaultPreemption decided: a candidate, or why not. ``hopeless`` (no node
    can be helped) clears the pod's nomination, as upstream's empty PostFilterResult;
    an ineligible pod keeps it."""
    candidate: Candidate | None = None
    message: str = ""
    hopeless: bool = False


def _importance(p: PodInfo) -> tuple:
    # Higher priority first; among equals, the one running longest (missing start
    # time sorts last, as "now").
    return (-p.priority, p.start_time or "~")


def terminating_by_preemption(p: PodInfo) -> bool:
    if not p.deleting:
        return False
    for c in (p.pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == DISRUPTION_TARGET:
            return c.get("status") == "True" and c.get("reason") == PREEMPTION_BY_SCHEDULER
    return False


def eligible(pod: PodInfo, snapshot: Snapshot, statuses: dict[str, Status],
             nominated_node: str) -> tuple[bool, str]:
    if pod.spec.get("preemptionPolicy") == "Never":
        return False, NEVER
    if nominated_node:
        st = statuses.get(nominated_node)
        if st is not None and st.code == UNRESOLVABLE:
            return True, ""
        node = snapshot.by_name.get(nominated_node)
        if node is not None and any(p.priority < pod.priority and terminating_by_preemption(p)
                                    for p in node.pods.values()):
            # Victims of an earlier round are still going away: wait for them.
            return False, TERMINATING
    return True, ""


def split_by_pdb(pods: list[PodInfo], pdbs: list[dict]) -> tuple[list[PodInfo], list[PodInfo]]:
    """(violating, non-violating), order kept, as upstream's filterPodsWithPDBViolation."""
    allowed = [int((p.get("status") or {}).get("disruptionsAllowed") or 0) for p in pdbs]
    selectors = []
    for pdb in pdbs:
        try:
            sel = label_selector_from_dict((pdb.get("spec") or {}).get("selector"))
        except ValueError:
            sel = None
        selectors.append(sel)
    violating, ok = [], []
    for pi in pods:
        bad = False
        if pi.labels:
            for i, pdb in enumerate(pdbs):
                sel = selectors[i]
                if (pdb.get("metadata") or {}).get("namespace") != pi.namespace or sel is None:
                    continue
                if sel.empty() or not sel.matches(pi.labels):
                    continue  # an empty PDB selector matches nothing
                if pi.name in ((pdb.get("status") or {}).get("disruptedPods") or {}):
                    continue
                allowed[i] -= 1
                if allowed[i] < 0:
                    bad = True
        (violating if bad else ok).append(pi)
    return violating, ok


class _Simulation:
    """One node with pods removed/added, and the filters re-run against it."""

    def __init__(self, fw: Framework, state: CycleState, pod: PodInfo, node: NodeInfo,
                 snapshot: Snapshot, nominated: list[PodInfo]):
        self.fw, self.pod, self.snapshot = fw, pod, snapshot
        self.node = node.clone()
        self.base_state = state
        self.nominated = nominated

    def fits(self) -> Status | None:
        state = self.base_state.clone()
        if self.fw.snapshot_pre_filters:
            # Spread and inter-pod affinity counted other pods at PreFilter: count
            # again with this node as simulated.
            st = self.fw.run_pre_filter(state, self.pod, self.snapshot.replace(self.node),
                                        self.fw.snapshot_pre_filters)
            if st is not None:
                return st
        return self.fw.run_filters_with_nominated(state, self.pod, self.node, self.nominated)


def select_victims(fw: Framework, state: CycleState, pod: PodInfo, node: NodeInfo,
                   snapshot: Snapshot, pdbs: list[dict],
                   nominated: list[PodInfo] | None = None) -> Candidate | Status:
    potential = [p for p in node.pods.values() if p.priority < pod.priority]
    if not potential:
        return Status(UNRESOLVABLE, (NO_VICTIMS,))
    sim = _Simulation(fw, state, pod, node, snapshot, nominated or [])
    for p in potential:
        sim.node.remove_pod(p.key)
    st = sim.fits()
    if st is not None:
        return st
    potential.sort(key=_importance)
    violating, non_violating = split_by_pdb(potential, pdbs)
    victims: list[PodInfo] = []
    violations = 0
    for group, counts in ((violating, True), (non_violating, False)):
        for p in group:
            sim.node.add_pod(p)
            if sim.fits() is not None:
                sim.node.remove_pod(p.key)
                victims.append(p)
                violations += counts
    victims.sort(key=_importance)
    return Candidate(node.name, victims, violations)


def pick_one(candidates: list[Candidate]) -> Candidate:
    def earliest_top_start(c: Candidate) -> str:
        top = c.victims[0].priority
        return min((v.start_time or "~") for v in c.victims if v.priority == top)

    keys = (
        lambda c: -c.pdb_violations,
        lambda c: -c.victims[0].priority,
        lambda c: -sum(v.priority + _MAX_INT32 + 1 for v in c.victims),
        lambda c: -len(c.victims),
        earliest_top_start,  # later start of the top victims is better
    )
    pool = candidates
    for key in keys:
        best = max(key(c) for c in pool)
        pool = [c for c in pool if key(c) == best]
        if len(pool) == 1:
            break
    return pool[0]


def preempt(fw: Framework, state: CycleState, pod: PodInfo, snapshot: Snapshot,
            statuses: dict[str, Status], pdbs: list[dict], nominated_node: str = "",
            nominated: dict[str, list[PodInfo]] | None = None,
            rng: random.Random | None = None) -> Outcome:
    """The chosen candidate, or the message (without the "preemption: " prefix)."""
    ok, msg = eligible(pod, snapshot, statuses, nominated_node)
    if not ok:
        return Outcome(message=msg)
    total = len(snapshot.nodes)
    potential = [n for n in snapshot.nodes
                 if (st := statuses.get(n.name)) is not None and st.code == UNSCHEDULABLE]
    if not potential:
        return Outcome(message=fit_message(total, {}, absent_reason=NOT_HELPFUL), hopeless=True)
    want = min(len(potential), max(len(potential) * MIN_CANDIDATE_PERCENTAGE // 100,
                                   MIN_CANDIDATE_ABSOLUTE))
    offset = (rng or random).randrange(len(potential))
    nominated = nominated or {}
    candidates: list[Candidate] = []
    node_statuses: dict[str, Status] = {}
    for i in range(len(potential)):
        node = potential[(offset + i) % len(potential)]
        result = select_victims(fw, state, pod, node, snapshot, pdbs,
                                nominated.get(node.name))
        if isinstance(result, Candidate) and not result.victims:
            # Fits once nominated pods are accounted differently: nothing to evict here.
            node_statuses[node.name] = Status(UNSCHEDULABLE, (NO_VICTIMS,))
        elif isinstance(result, Candidate):
            candidates.append(result)
            if sum(1 for c in candidates if not c.pdb_violations) and len(candidates) >= want:
                break
        else:
            node_statuses[node.name] = result
    if not candidates:
        return Outcome(message=fit_message(total, node_statuses, absent_reason=NOT_HELPFUL),
                       hopeless=True)
    return Outcome(candidate=pick_one(candidates))
