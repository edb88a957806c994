"""Node taints the controllers manage (upstream's k8s.io/api/core/v1 taint constants);
the toleration rules pods are judged by are bootstrap.api.placement's."""

from __future__ import annotations

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
PID_PRESSURE = "node.kubernetes.io/pid-pressure"
NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"
OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"

NO_SCHEDULE = "NoSchedule"
NO_EXECUTE = "NoExecute"

# Node condition (type, status) -> taint key, as upstream's nodeConditionToTaintKeyStatusMap.
CONDITION_TAINTS: dict[tuple[str, str], str] = {
    ("Ready", "False"): NOT_READY,
    ("Ready", "Unknown"): UNREACHABLE,
    ("MemoryPressure", "True"): MEMORY_PRESSURE,
    ("DiskPressure", "True"): DISK_PRESSURE,
    ("NetworkUnavailable", "True"): NETWORK_UNAVAILABLE,
    ("PIDPressure", "True"): PID_PRESSURE,
}
# Every NoSchedule key the condition pass owns (and so may remove).
CONDITION_TAINT_KEYS = frozenset(CONDITION_TAINTS.values()) | {UNSCHEDULABLE}


def same_taint(a: dict, b: dict) -> bool:
    """Taint.MatchTaint: key and effect identify a taint."""
    return a.get("key") == b.get("key") and a.get("effect") == b.get("effect")
