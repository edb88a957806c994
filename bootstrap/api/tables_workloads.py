"""Columns for pods and workload controllers (upstream printPod, printDeployment, ...)."""

from __future__ import annotations

from datetime import datetime

from bootstrap.api.selectors import label_selector_from_dict
from bootstrap.api.table_columns import Column, _doc, age_column, name_column, since

NONE = "<none>"
_CORE = "io.k8s.api.core.v1."
_APPS = "io.k8s.api.apps.v1."


def _spec(o: dict) -> dict:
    return o.get("spec") or {}


def _status(o: dict) -> dict:
    return o.get("status") or {}


def _template_spec(o: dict) -> dict:
    return ((_spec(o).get("template") or {}).get("spec")) or {}


def _containers(o: dict) -> str:
    return ",".join(c.get("name", "") for c in _template_spec(o).get("containers") or []) or NONE


def _images(o: dict) -> str:
    return ",".join(c.get("image", "") for c in _template_spec(o).get("containers") or []) or NONE


def _selector(o: dict) -> str:
    sel = _spec(o).get("selector")
    if sel is None:
        return NONE
    try:
        s = str(label_selector_from_dict(sel))
    except ValueError:
        return "<error>"
    return s or NONE


def _workload_wide() -> list[Column]:
    return [Column("Containers", lambda o, n: _containers(o), priority=1,
                   description="Names of each container in the template."),
            Column("Images", lambda o, n: _images(o), priority=1,
                   description="Images referenced by each container in the template."),
            Column("Selector", lambda o, n: _selector(o), priority=1,
                   description=_doc(_APPS + "DeploymentSpec", "selector"))]


# --------------------------------------------------------------------- pods

def pod_cells(o: dict, now: datetime) -> tuple[str, str, str]:
    """(Ready, Status, Restarts) as printPod computes them."""
    spec, status = _spec(o), _status(o)
    total = len(spec.get("containers") or [])
    ready = 0
    restarts = 0
    last_restart: str | None = None
    reason = status.get("reason") or status.get("phase") or ""

    init_statuses = status.get("initContainerStatuses") or []
    initializing = False
    n_init = len(spec.get("initContainers") or [])
    for i, cs in enumerate(init_statuses):
        restarts += cs.get("restartCount", 0)
        last_restart = _later(last_restart, _last_termination(cs))
        state = cs.get("state") or {}
        term = state.get("terminated")
        if term and term.get("exitCode") == 0:
            continue
        if term:
            if term.get("reason"):
                reason = "Init:" + term["reason"]
            elif term.get("signal"):
                reason = f"Init:Signal:{term['signal']}"
            else:
                reason = f"Init:ExitCode:{term.get('exitCode', 0)}"
        elif (state.get("waiting") or {}).get("reason") not in (None, "", "PodInitializing"):
            reason = "Init:" + state["waiting"]["reason"]
        else:
            reason = f"Init:{i}/{n_init}"
        initializing = True
        break

    if not initializing:
        restarts = 0
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += cs.get("restartCount", 0)
            last_restart = _later(last_restart, _last_termination(cs))
            state = cs.get("state") or {}
            waiting, term = state.get("waiting"), state.get("terminated")
            if waiting and waiting.get("reason"):
                reason = waiting["reason"]
            elif term and term.get("reason"):
                reason = term["reason"]
            elif term:
                reason = (f"Signal:{term['signal']}" if term.get("signal")
                          else f"ExitCode:{term.get('exitCode', 0)}")
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            ready_cond = any(c.get("type") == "Ready" and c.get("status") == "True"
                             for c in status.get("conditions") or [])
            reason = "Running" if ready_cond else "NotReady"

    meta = o.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"

    restarts_str = str(restarts)
    if restarts and last_restart:
        restarts_str = f"{restarts} ({since(last_restart, now)} ago)"
    return f"{ready}/{total}", reason, restarts_str


def _last_termination(cs: dict) -> str | None:
    return ((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt")


def _later(a: str | None, b: str | None) -> str | None:
    if not a:
        return b
    if not b:
        return a
    return max(a, b)


def _pod_columns() -> list[Column]:
    return [
        name_column(),
        Column("Ready", lambda o, n: pod_cells(o, n)[0],
               description="The aggregate readiness state of this pod for accepting traffic."),
        Column("Status", lambda o, n: pod_cells(o, n)[1],
               description="The aggregate status of the containers in this pod."),
        Column("Restarts", lambda o, n: pod_cells(o, n)[2],
               description="The number of times the containers in this pod have been restarted "
                           "and when the last container in this pod has restarted."),
        age_column(),
        Column("IP", lambda o, n: _status(o).get("podIP") or NONE, priority=1,
               description=_doc(_CORE + "PodStatus", "podIP")),
        Column("Node", lambda o, n: _spec(o).get("nodeName") or NONE, priority=1,
               description=_doc(_CORE + "PodSpec", "nodeName")),
        Column("Nominated Node", lambda o, n: _status(o).get("nominatedNodeName") or NONE,
               priority=1, description=_doc(_CORE + "PodStatus", "nominatedNodeName")),
        Column("Readiness Gates", _readiness_gates, priority=1,
               description=_doc(_CORE + "PodSpec", "readinessGates")),
    ]


def _readiness_gates(o: dict, now: datetime) -> str:
    gates = _spec(o).get("readinessGates") or []
    if not gates:
        return NONE
    conds = {c.get("type"): c.get("status") for c in _status(o).get("conditions") or []}
    ok = sum(1 for g in gates if conds.get(g.get("conditionType")) == "True")
    return f"{ok}/{len(gates)}"


# ---------------------------------------------------------------- workloads

def _int(v) -> int:
    return int(v or 0)


def _deployment_columns() -> list[Column]:
    return [
        name_column(),
        Column("Ready", lambda o, n: f"{_int(_status(o).get('readyReplicas'))}/{_int(_spec(o).get('replicas'))}",
               description="Number of the pod with ready state"),
        Column("Up-to-date", lambda o, n: _int(_status(o).get("updatedReplicas")), type="integer",
               description=_doc(_APPS + "DeploymentStatus", "updatedReplicas")),
        Column("Available", lambda o, n: _int(_status(o).get("availableReplicas")), type="integer",
               description=_doc(_APPS + "DeploymentStatus", "availableReplicas")),
        age_column(),
        *_workload_wide(),
    ]


def _replicaset_columns() -> list[Column]:
    return [
        name_column(),
        Column("Desired", lambda o, n: _int(_spec(o).get("replicas")), type="integer",
               description=_doc(_APPS + "ReplicaSetSpec", "replicas")),
        Column("Current", lambda o, n: _int(_status(o).get("replicas")), type="integer",
               description=_doc(_APPS + "ReplicaSetStatus", "replicas")),
        Column("Ready", lambda o, n: _int(_status(o).get("readyReplicas")), type="integer",
               description=_doc(_APPS + "ReplicaSetStatus", "readyReplicas")),
        age_column(),
        *_workload_wide(),
    ]


def _node_selector(o: dict) -> str:
    sel = _template_spec(o).get("nodeSelector") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(sel.items())) or NONE


def _daemonset_columns() -> list[Column]:
    st = lambda k: (lambda o, n: _int(_status(o).get(k)))  # noqa: E731
    d = lambda f: _doc(_APPS + "DaemonSetStatus", f)  # noqa: E731
    return [
        name_column(),
        Column("Desired", st("desiredNumberScheduled"), type="integer", description=d("desiredNumberScheduled")),
        Column("Current", st("currentNumberScheduled"), type="integer", description=d("currentNumberScheduled")),
        Column("Ready", st("numberReady"), type="integer", description=d("numberReady")),
        Column("Up-to-date", st("updatedNumberScheduled"), type="integer", description=d("updatedNumberScheduled")),
        Column("Available", st("numberAvailable"), type="integer", description=d("numberAvailable")),
        Column("Node Selector", lambda o, n: _node_selector(o),
               description=_doc(_CORE + "PodSpec", "nodeSelector")),
        age_column(),
        *_workload_wide(),
    ]


def _statefulset_columns() -> list[Column]:
    return [
        name_column(),
        Column("Ready", lambda o, n: f"{_int(_status(o).get('readyReplicas'))}/{_int(_spec(o).get('replicas'))}",
               description="Number of the pod with ready state"),
        age_column(),
        *_workload_wide()[:2],
    ]


def _job_status(o: dict) -> str:
    conds = {c.get("type"): c.get("status") for c in _status(o).get("conditions") or []}
    if conds.get("Complete") == "True":
        return "Complete"
    if conds.get("Failed") == "True":
        return "Failed"
    if conds.get("FailureTarget") == "True" or conds.get("SuccessCriteriaMet") == "True":
        return "Terminating" if _status(o).get("terminating") else "Running"
    if conds.get("Suspended") == "True":
        return "Suspended"
    return "Running"


def _job_completions(o: dict) -> str:
    spec = _spec(o)
    succeeded = _int(_status(o).get("succeeded"))
    if spec.get("completions") is not None:
        return f"{succeeded}/{spec['completions']}"
    parallelism = _int(spec.get("parallelism"))
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def _job_duration(o: dict, now: datetime) -> str:
    from bootstrap.api import meta
    from bootstrap.api.table_columns import human_duration

    st = _status(o)
    if not st.get("startTime"):
        return ""
    start = meta.parse_time(st["startTime"])
    end = meta.parse_time(st["completionTime"]) if st.get("completionTime") else now
    return human_duration((end - start).total_seconds())


def _job_columns() -> list[Column]:
    return [
        name_column(),
        Column("Status", lambda o, n: _job_status(o), description="Status of the job."),
        Column("Completions", lambda o, n: _job_completions(o),
               description="The completion status of the job"),
        Column("Duration", _job_duration, description="Time required to complete the job."),
        age_column(),
        *_workload_wide(),
    ]


def _cronjob_columns() -> list[Column]:
    def job_spec(o):
        return ((_spec(o).get("jobTemplate") or {}).get("spec")) or {}

    def tmpl(o):
        return ((job_spec(o).get("template") or {}).get("spec")) or {}

    return [
        name_column(),
        Column("Schedule", lambda o, n: _spec(o).get("schedule", ""), description="The schedule in Cron format."),
        Column("Timezone", lambda o, n: _spec(o).get("timeZone") or NONE, description="The time zone."),
        Column("Suspend", lambda o, n: "True" if _spec(o).get("suspend") else "False", type="boolean",
               description="Whether the cron job is suspended."),
        Column("Active", lambda o, n: len(_status(o).get("active") or []), type="integer",
               description="Number of currently running jobs."),
        Column("Last Schedule", lambda o, n: since(_status(o).get("lastScheduleTime"), n)
               if _status(o).get("lastScheduleTime") else NONE, description="When the last job was scheduled."),
        age_column(),
        Column("Containers", lambda o, n: ",".join(c.get("name", "") for c in tmpl(o).get("containers") or []),
               priority=1, description="Names of each container in the template."),
        Column("Images", lambda o, n: ",".join(c.get("image", "") for c in tmpl(o).get("containers") or []),
               priority=1, description="Images referenced by each container in the template."),
        Column("Selector", lambda o, n: str(label_selector_from_dict(job_spec(o)["selector"]))
               if job_spec(o).get("selector") else NONE, priority=1, description="Selector of the jobs."),
    ]



WORKLOAD_COLUMNS = {
    "pods": _pod_columns,
    "deployments": _deployment_columns,
    "replicasets": _replicaset_columns,
    "daemonsets": _daemonset_columns,
    "statefulsets": _statefulset_columns,
    "jobs": _job_columns,
    "cronjobs": _cronjob_columns,
}
