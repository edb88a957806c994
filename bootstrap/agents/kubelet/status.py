"""PodStatus from the runtime's state and the pod worker's view (pure).

Upstream: kubelet_pods.go generateAPIPodStatus / getPhase / convertToAPIContainerStatuses,
status/generate.go for the conditions. ``View`` carries what only the worker
knows: why a container is waiting (CrashLoopBackOff, ErrImagePull, ...) and the
probe results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from bootstrap.agents.kubelet.runtime_state import ContainerRecord, PodRuntime
from bootstrap.agents.kubelet.translate import qos_class

RUNTIME_PREFIX = "containerd://"

# Waiting reasons (upstream's strings, kept together).
CONTAINER_CREATING = "ContainerCreating"
POD_INITIALIZING = "PodInitializing"
CRASH_LOOP = "CrashLoopBackOff"
ERR_IMAGE_PULL = "ErrImagePull"
IMAGE_PULL_BACKOFF = "ImagePullBackOff"
ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"
CREATE_CONFIG_ERROR = "CreateContainerConfigError"


@dataclass
class View:
    """The worker's knowledge that the runtime does not hold."""
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (reason, msg)
    ready: dict[str, bool] = field(default_factory=dict)    # readiness probe results
    started: dict[str, bool] = field(default_factory=dict)  # startup probe results
    runtime_id: str = RUNTIME_PREFIX


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _terminated(c: ContainerRecord, prefix: str) -> dict:
    out = {"exitCode": c.exit_code, "reason": c.reason or ("Completed" if c.exit_code == 0
                                                            else "Error"),
           "startedAt": rfc3339(c.started_at) if c.started_at else None,
           "finishedAt": rfc3339(c.finished_at) if c.finished_at else None,
           "containerID": prefix + c.id}
    if c.message:
        out["message"] = c.message
    return {k: v for k, v in out.items() if v is not None}


def container_status(spec: dict, runtime: PodRuntime, view: View, *, init: bool,
                     default_waiting: str) -> dict:
    name = spec["name"]
    cur, prev = runtime.current(name), runtime.previous(name)
    prefix = view.runtime_id
    out: dict = {"name": name, "image": spec.get("image", ""), "imageID": "",
                 "restartCount": 0, "ready": False, "started": False}
    last = prev
    if cur is not None:
        out["restartCount"] = cur.attempt
        out["imageID"] = cur.image_ref
        out["containerID"] = prefix + cur.id
    waiting = view.waiting.get(name)
    if cur is not None and cur.running:
        out["state"] = {"running": {"startedAt": rfc3339(cur.started_at)}}
        started = view.started.get(name, True)
        out["started"] = started
        out["ready"] = started and view.ready.get(name, True)
    elif waiting is not None and (cur is None or cur.exited):
        # A container that exited and waits to restart shows its exit as lastState.
        if cur is not None and cur.exited:
            last = cur
        out["state"] = {"waiting": {"reason": waiting[0],
                                    **({"message": waiting[1]} if waiting[1] else {})}}
    elif cur is not None and cur.exited:
        out["state"] = {"terminated": _terminated(cur, prefix)}
    else:
        out["state"] = {"waiting": {"reason": default_waiting}}
    if last is not None and last.exited:
        out["lastState"] = {"terminated": _terminated(last, prefix)}
    else:
        out["lastState"] = {}
    if init and "terminated" in out["state"] and out["state"]["terminated"]["exitCode"] == 0:
        out["ready"] = True  # upstream marks succeeded init containers ready
    return out


def _succeeded(status: dict) -> bool:
    t = status["state"].get("terminated")
    return t is not None and t.get("exitCode") == 0


def _failed(status: dict) -> bool:
    t = status["state"].get("terminated")
    return t is not None and t.get("exitCode") != 0


def phase(pod: dict, init_statuses: list[dict], statuses: list[dict]) -> str:
    """getPhase: Pending until initialized and every container has run; then Running,
    Succeeded or Failed by restartPolicy."""
    spec = pod.get("spec") or {}
    policy = spec.get("restartPolicy") or "Always"
    for s in init_statuses:
        if _succeeded(s):
            continue
        failed = _failed(s) or ("waiting" in s["state"] and s["lastState"].get("terminated")
                                and s["lastState"]["terminated"].get("exitCode") != 0)
        if failed and policy == "Never":
            return "Failed"
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for s in statuses:
        st = s["state"]
        if "running" in st:
            running += 1
        elif "terminated" in st:
            stopped += 1
            if st["terminated"].get("exitCode") == 0:
                succeeded += 1
        elif s["lastState"].get("terminated"):
            stopped += 1
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _condition(type_: str, ok: bool, reason: str = "", message: str = "") -> dict:
    c = {"type": type_, "status": "True" if ok else "False"}
    if not ok:
        if reason:
            c["reason"] = reason
        if message:
            c["message"] = message
    return c


def conditions(pod: dict, runtime: PodRuntime, init_statuses: list[dict],
               statuses: list[dict], phase_: str) -> list[dict]:
    sandbox = runtime.sandbox
    terminal = phase_ in ("Succeeded", "Failed")
    ready_to_start = sandbox is not None and sandbox.ready
    out = [_condition("PodReadyToStartContainers", ready_to_start)]
    pending_init = [s["name"] for s in init_statuses if not _succeeded(s)]
    initialized = not pending_init or terminal and not pending_init
    out.append(_condition("Initialized", initialized, "ContainersNotInitialized",
                          f"containers with incomplete status: [{' '.join(pending_init)}]"))
    unready = [s["name"] for s in statuses if not s["ready"]]
    if terminal:
        # upstream: a finished pod's containers are not ready (reason PodCompleted)
        reason = "PodCompleted"
        out.append(_condition("Ready", False, reason, ""))
        out.append(_condition("ContainersReady", False, reason, ""))
    else:
        msg = f"containers with unready status: [{' '.join(unready)}]"
        out.append(_condition("Ready", not unready, "ContainersNotReady", msg))
        out.append(_condition("ContainersReady", not unready, "ContainersNotReady", msg))
    out.append({"type": "PodScheduled", "status": "True"})
    return out


def pod_status(pod: dict, runtime: PodRuntime, view: View, host_ip: str, now: float) -> dict:
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    inits = [container_status(c, runtime, view, init=True, default_waiting=POD_INITIALIZING
                              if runtime.sandbox else CONTAINER_CREATING)
             for c in spec.get("initContainers") or []]
    initializing = any(not _succeeded(s) for s in inits)
    containers = [container_status(c, runtime, view, init=False,
                                   default_waiting=POD_INITIALIZING if initializing
                                   else CONTAINER_CREATING)
                  for c in spec.get("containers") or []]
    ph = phase(pod, inits, containers)
    if old.get("phase") in ("Succeeded", "Failed"):
        ph = old["phase"]  # terminal phases never go back
    conds = _with_transition_times(conditions(pod, runtime, inits, containers, ph),
                                   old.get("conditions") or [], now)
    status: dict = {"phase": ph, "conditions": conds, "hostIP": host_ip,
                    "hostIPs": [{"ip": host_ip}] if host_ip else [],
                    "qosClass": old.get("qosClass") or qos_class(pod),
                    "startTime": old.get("startTime") or rfc3339(now),
                    "containerStatuses": containers}
    if inits:
        status["initContainerStatuses"] = inits
    sandbox = runtime.sandbox
    ips = list(sandbox.ips) if sandbox and sandbox.ready else []
    if sandbox and sandbox.host_network and host_ip:
        ips = [host_ip]
    if ips:
        status["podIP"] = ips[0]
        status["podIPs"] = [{"ip": ip} for ip in ips]
    elif old.get("podIP") and ph in ("Succeeded", "Failed"):
        status["podIP"], status["podIPs"] = old["podIP"], old.get("podIPs") or []
    for keep in ("nominatedNodeName", "message", "reason"):
        if old.get(keep):
            status[keep] = old[keep]
    return status


def _with_transition_times(new: list[dict], old: list[dict], now: float) -> list[dict]:
    """lastTransitionTime survives while a condition's status does not change."""
    prev = {c.get("type"): c for c in old}
    for c in new:
        p = prev.get(c["type"])
        if p is not None and p.get("status") == c["status"] and p.get("lastTransitionTime"):
            c["lastTransitionTime"] = p["lastTransitionTime"]
        else:
            c["lastTransitionTime"] = rfc3339(now)
        c.setdefault("lastProbeTime", None)
    return new


def comparable(status: dict) -> dict:
    """A status without the fields that change on every write, for change detection."""
    out = dict(status)
    out["conditions"] = [{k: v for k, v in c.items() if k not in ("lastProbeTime",)}
                         for c in status.get("conditions") or []]
    out.pop("startTime", None)
    return out


def changed(old: dict | None, new: dict) -> bool:
    if not old:
        return True
    return comparable({k: old.get(k) for k in new}) != comparable(new)
