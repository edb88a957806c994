"""Node health as upstream's node lifecycle controller judges it (tryUpdateNodeHealth).

A node is alive while its kubelet changes something we can observe: the Ready
condition's lastHeartbeatTime or its Lease's renewTime. What counts is *when this
controller saw the change* on its own clock, never the timestamps themselves, so
clock skew between hosts cannot make a node look alive or dead. When nothing
changed for the grace period (the startup grace period for a node that never
posted a Ready condition), the Ready and pressure conditions become Unknown.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from .taints import (
    CONDITION_TAINT_KEYS,
    CONDITION_TAINTS,
    NO_EXECUTE,
    NO_SCHEDULE,
    NOT_READY,
    UNREACHABLE,
    UNSCHEDULABLE,
    same_taint,
)
from .util import find_condition, rfc3339

# Conditions set to Unknown when the kubelet goes silent; NetworkUnavailable is
# owned by the network plugin and left alone, as upstream.
STALE_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
STOPPED_REASON, STOPPED_MESSAGE = "NodeStatusUnknown", "Kubelet stopped posting node status."
NEVER_REASON, NEVER_MESSAGE = "NodeStatusNeverUpdated", "Kubelet never posted node status."


@dataclass
class _Seen:
    probe: float                 # our clock when a heartbeat last changed
    heartbeat: str | None        # Ready.lastHeartbeatTime last seen
    renew: str | None            # Lease spec.renewTime last seen


class NodeHealth:
    """Per-node memory of the last observed heartbeat (upstream's nodeHealthMap)."""

    def __init__(self, grace: float, startup_grace: float):
        self.grace = grace
        self.startup_grace = startup_grace
        self._seen: dict[str, _Seen] = {}

    def forget(self, name: str) -> None:
        self._seen.pop(name, None)

    def observe(self, node: dict, lease: dict | None, now: float,
                created: float) -> tuple[dict | None, str, float]:
        """Returns (node with Unknown conditions to write, or None; the Ready status
        observed before; seconds until the node would go stale)."""
        name = node["metadata"]["name"]
        conditions = (node.get("status") or {}).get("conditions") or []
        ready = find_condition(conditions, "Ready")
        heartbeat = (ready or {}).get("lastHeartbeatTime")
        renew = ((lease or {}).get("spec") or {}).get("renewTime")
        seen = self._seen.get(name)
        if ready is None:
            grace = self.startup_grace
            observed = "Unknown"
            if seen is None:
                # Never posted: the grace period runs from the node's creation.
                seen = _Seen(created, None, None)
        else:
            grace = self.grace
            observed = ready.get("status", "Unknown")
            if seen is None or seen.heartbeat != heartbeat:
                seen = _Seen(now, heartbeat, seen.renew if seen else None)
        if renew and renew != seen.renew:
            seen.renew = renew
            seen.probe = now
        self._seen[name] = seen
        left = seen.probe + grace - now
        if left >= 0:
            return None, observed, left
        updated = copy.deepcopy(node)
        conds = updated.setdefault("status", {}).setdefault("conditions", [])
        changed = False
        for type_ in STALE_CONDITIONS:
            c = find_condition(conds, type_)
            if c is None:
                conds.append({"type": type_, "status": "Unknown", "reason": NEVER_REASON,
                              "message": NEVER_MESSAGE,
                              "lastHeartbeatTime": node["metadata"].get("creationTimestamp"),
                              "lastTransitionTime": rfc3339(now)})
                changed = True
            elif c.get("status") != "Unknown":
                c.update(status="Unknown", reason=STOPPED_REASON, message=STOPPED_MESSAGE,
                         lastTransitionTime=rfc3339(now))
                changed = True
        return (updated if changed else None), observed, 0.0


# NoExecute modes (see wanted_taints): add what Ready asks for; only keep (or swap
# not-ready <-> unreachable on) a NoExecute taint the node already has; remove them.
ADD, KEEP, REMOVE = "add", "keep", "remove"

# Zone states, as upstream's node lifecycle controller names them.
ZONE_NORMAL, ZONE_PARTIAL, ZONE_FULL = "Normal", "PartialDisruption", "FullDisruption"
EXCLUDE_DISRUPTION = "node.kubernetes.io/exclude-disruption"
REGION, ZONE = "topology.kubernetes.io/region", "topology.kubernetes.io/zone"


def zone_key(node: dict) -> str:
    """GetZoneKey: region and zone labels (the beta ones as fallback)."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    region = labels.get(REGION) or labels.get("failure-domain.beta.kubernetes.io/region", "")
    zone = labels.get(ZONE) or labels.get("failure-domain.beta.kubernetes.io/zone", "")
    return f"{region}:\x00:{zone}" if region or zone else ""


def zone_state(ready: list[str], unhealthy_threshold: float = 0.55) -> str:
    """ComputeZoneState over the Ready statuses of a zone's nodes."""
    healthy = sum(1 for r in ready if r == "True")
    unhealthy = len(ready) - healthy
    if healthy == 0 and unhealthy > 0:
        return ZONE_FULL
    if unhealthy > 2 and unhealthy / len(ready) >= unhealthy_threshold:
        return ZONE_PARTIAL
    return ZONE_NORMAL


def wanted_taints(node: dict, now: float, no_execute: str = ADD) -> list[dict]:
    """The node's taints with the condition-owned ones made to match its conditions:
    NoSchedule for every condition upstream maps (taint-nodes-by-condition) and
    spec.unschedulable, NoExecute not-ready / unreachable from Ready (taint-based
    eviction, limited by ``no_execute``). Taints that stay keep their timeAdded."""
    spec = node.get("spec") or {}
    current = list(spec.get("taints") or [])
    conditions = (node.get("status") or {}).get("conditions") or []
    want: list[dict] = []
    for c in conditions:
        key = CONDITION_TAINTS.get((c.get("type"), c.get("status")))
        if key:
            want.append({"key": key, "effect": NO_SCHEDULE})
    if spec.get("unschedulable"):
        want.append({"key": UNSCHEDULABLE, "effect": NO_SCHEDULE})
    ready = find_condition(conditions, "Ready")
    status = (ready or {}).get("status")
    tainted = any(t.get("effect") == NO_EXECUTE and t.get("key") in (NOT_READY, UNREACHABLE)
                  for t in current)
    if no_execute == ADD or (no_execute == KEEP and tainted):
        if status == "False":
            want.append({"key": NOT_READY, "effect": NO_EXECUTE, "timeAdded": rfc3339(now)})
        elif status == "Unknown":
            want.append({"key": UNREACHABLE, "effect": NO_EXECUTE, "timeAdded": rfc3339(now)})

    def owned(t: dict) -> bool:
        if t.get("effect") == NO_SCHEDULE:
            return t.get("key") in CONDITION_TAINT_KEYS
        return t.get("effect") == NO_EXECUTE and t.get("key") in (NOT_READY, UNREACHABLE)

    out = [t for t in current if not owned(t) or any(same_taint(t, w) for w in want)]
    for w in want:
        if not any(same_taint(t, w) for t in out):
            out.append(w)
    return out
