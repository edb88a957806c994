"""The Job controller's pure parts (upstream's pkg/controller/job: indexed_job_utils.go,
pod_failure_policy.go, backoff_utils.go): completion indexes, pod failure policy
matching and the pod-failure backoff."""

from __future__ import annotations

from bootstrap.agents.controllers import podcontrol as pc
from bootstrap.api.meta import parse_time

JOB_TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
BACKOFF_BASE = 10.0          # DefaultJobPodFailureBackOff
BACKOFF_MAX = 600.0          # MaxJobPodFailureBackOff


def parse_indexes(text: str | None) -> set[int]:
    """"1,3-5" -> {1, 3, 4, 5} (status.completedIndexes)."""
    out: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        first, sep, last = part.partition("-")
        try:
            lo = int(first)
            hi = int(last) if sep else lo
        except ValueError:
            continue
        out.update(range(lo, hi + 1))
    return out


def format_indexes(indexes: set[int]) -> str:
    """{1, 3, 4, 5} -> "1,3-5": ordered intervals as upstream writes them."""
    parts: list[str] = []
    run: list[int] = []
    for i in sorted(indexes):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [i]
    if run:
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(parts)


def pod_index(pod: dict) -> int | None:
    meta = pod.get("metadata") or {}
    raw = (meta.get("annotations") or {}).get(COMPLETION_INDEX) or \
        (meta.get("labels") or {}).get(COMPLETION_INDEX)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def is_failed(pod: dict) -> bool:
    """A pod counts as failed when Failed, or being deleted before it succeeded."""
    phase = pc.pod_phase(pod)
    if phase == "Failed":
        return True
    return bool((pod.get("metadata") or {}).get("deletionTimestamp")) and phase != "Succeeded"


def _terminated_codes(pod: dict, container: str | None) -> list[tuple[str, int]]:
    status = pod.get("status") or {}
    out = []
    for cs in (status.get("initContainerStatuses") or []) + \
            (status.get("containerStatuses") or []):
        if container and cs.get("name") != container:
            continue
        term = (cs.get("state") or {}).get("terminated")
        if term is not None and int(term.get("exitCode") or 0) != 0:
            out.append((cs.get("name", ""), int(term["exitCode"])))
    return out


def match_failure_policy(policy: dict | None, pod: dict) -> tuple[str | None, str | None]:
    """(action, message) of the first podFailurePolicy rule matching a failed pod,
    or (None, None). Exit code 0 never matches, as upstream."""
    meta = pod.get("metadata") or {}
    for i, rule in enumerate((policy or {}).get("rules") or []):
        action = rule.get("action")
        on_codes = rule.get("onExitCodes")
        if on_codes:
            values = {int(v) for v in on_codes.get("values") or []}
            notin = on_codes.get("operator") == "NotIn"
            for name, code in _terminated_codes(pod, on_codes.get("containerName")):
                if (code in values) != notin:
                    return action, (f"Container {name} for pod {meta.get('namespace')}/"
                                    f"{meta.get('name')} failed with exit code {code} matching "
                                    f"{action} rule at index {i}")
        for want in rule.get("onPodConditions") or []:
            for cond in (pod.get("status") or {}).get("conditions") or []:
                if cond.get("type") == want.get("type") and \
                        cond.get("status") == want.get("status", "True"):
                    return action, (f"Pod {meta.get('namespace')}/{meta.get('name')} has "
                                    f"condition {cond['type']} matching {action} rule at "
                                    f"index {i}")
    return None, None


def finish_time(pod: dict) -> float | None:
    """When a finished pod stopped: its latest container termination, else the time
    its Ready condition last changed."""
    latest = None
    status = pod.get("status") or {}
    for cs in (status.get("containerStatuses") or []) + \
            (status.get("initContainerStatuses") or []):
        term = (cs.get("state") or {}).get("terminated") or {}
        if term.get("finishedAt"):
            t = parse_time(term["finishedAt"]).timestamp()
            latest = t if latest is None else max(latest, t)
    if latest is None:
        cond = pc.condition(pod, "Ready")
        if cond and cond.get("lastTransitionTime"):
            latest = parse_time(cond["lastTransitionTime"]).timestamp()
    return latest


def backoff_delay(failures: int) -> float:
    """Pod recreation delay after ``failures`` consecutive failures: 10 s doubling to 10 min."""
    if failures <= 0:
        return 0.0
    return min(BACKOFF_BASE * 2 ** (failures - 1), BACKOFF_MAX)
