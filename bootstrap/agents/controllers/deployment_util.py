"""The Deployment controller's arithmetic as pure functions over cached objects
(upstream's pkg/controller/deployment/util): fenceposts, new/old ReplicaSet
sizes, proportional scaling, revisions, status and conditions."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from bootstrap.agents.controllers.history import template_hash
from bootstrap.agents.controllers.intstr import scaled_value
from bootstrap.api.meta import parse_time

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE = "kubernetes.io/change-cause"
POD_TEMPLATE_HASH = "pod-template-hash"
# Annotations of the Deployment never copied to its ReplicaSets (annotationsToSkip).
_SKIP_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration", REVISION,
                               REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS,
                               "deprecated.deployment.rollback.to"})

# Condition reasons (deployment_util.go).
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"
FAILED_RS_CREATE = "ReplicaSetCreateError"


def replicas(obj: dict) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def status_of(obj: dict, name: str) -> int:
    return int((obj.get("status") or {}).get(name) or 0)


def annotations(obj: dict) -> dict:
    return (obj.get("metadata") or {}).get("annotations") or {}


def is_rolling(d: dict) -> bool:
    return ((d.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate") \
        == "RollingUpdate"


def _rolling(d: dict) -> dict:
    return ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}


def resolve_fenceposts(max_surge, max_unavailable, desired: int) -> tuple[int, int]:
    """(surge, unavailable): surge rounds up, unavailable down; both zero means one
    may be unavailable, or a rollout could never make progress."""
    surge = scaled_value(max_surge if max_surge is not None else 0, desired, True)
    unavailable = scaled_value(max_unavailable if max_unavailable is not None else 0,
                               desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: dict) -> int:
    if not is_rolling(d):
        return 0
    ru = _rolling(d)
    return resolve_fenceposts(ru.get("maxSurge", "25%"), ru.get("maxUnavailable", "25%"),
                              replicas(d))[0]


def max_unavailable(d: dict) -> int:
    if not is_rolling(d) or replicas(d) == 0:
        return 0
    ru = _rolling(d)
    unavailable = resolve_fenceposts(ru.get("maxSurge", "25%"), ru.get("maxUnavailable", "25%"),
                                     replicas(d))[1]
    return min(unavailable, replicas(d))


def total_replicas(rss: list[dict]) -> int:
    return sum(replicas(rs) for rs in rss if rs is not None)


def total_status(rss: list[dict], name: str) -> int:
    return sum(status_of(rs, name) for rs in rss if rs is not None)


def active(rss: list[dict]) -> list[dict]:
    return [rs for rs in rss if rs is not None and replicas(rs) > 0]


def revision_of(obj: dict) -> int:
    try:
        return int(annotations(obj).get(REVISION) or 0)
    except ValueError:
        return 0


def max_revision(rss: list[dict]) -> int:
    return max((revision_of(rs) for rs in rss), default=0)


def _created(obj: dict) -> tuple:
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    return (parse_time(stamp).timestamp() if stamp else 0.0, obj["metadata"].get("name", ""))


def by_creation(rss: list[dict]) -> list[dict]:
    return sorted(rss, key=_created)


def _without_hash(template: dict) -> dict:
    t = copy.deepcopy(template or {})
    labels = (t.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(POD_TEMPLATE_HASH, None)
    meta = t.get("metadata")
    if meta is not None:
        meta = {k: v for k, v in meta.items() if v not in (None, {}, [])}
        t["metadata"] = meta
    return t


def equal_ignore_hash(a: dict, b: dict) -> bool:
    """EqualIgnoreHash: templates equal once the pod-template-hash label is dropped."""
    return _without_hash(a) == _without_hash(b)


def find_new(d: dict, rss: list[dict]) -> dict | None:
    """The oldest ReplicaSet whose template equals the Deployment's (FindNewReplicaSet)."""
    template = (d.get("spec") or {}).get("template") or {}
    for rs in by_creation(rss):
        if equal_ignore_hash((rs.get("spec") or {}).get("template") or {}, template):
            return rs
    return None


def find_old(rss: list[dict], new_rs: dict | None) -> list[dict]:
    uid = (new_rs or {}).get("metadata", {}).get("uid")
    return [rs for rs in rss if rs["metadata"].get("uid") != uid]


def pod_template_hash(d: dict) -> str:
    spec = d.get("spec") or {}
    return template_hash(spec.get("template") or {}, (d.get("status") or {}).get(
        "collisionCount"), drop_label=POD_TEMPLATE_HASH)


def new_rs_object(d: dict, revision: int) -> dict:
    """The ReplicaSet a Deployment wants for its current template: named
    ``<deployment>-<hash>``, the hash label on selector, template and labels,
    the Deployment's annotations (but its own bookkeeping ones), replicas 0 for the
    caller to size."""
    spec = d.get("spec") or {}
    digest = pod_template_hash(d)
    template = copy.deepcopy(spec.get("template") or {})
    tmeta = template.setdefault("metadata", {})
    tmeta.setdefault("labels", {})[POD_TEMPLATE_HASH] = digest
    selector = copy.deepcopy(spec.get("selector") or {})
    selector.setdefault("matchLabels", {})[POD_TEMPLATE_HASH] = digest
    meta = d["metadata"]
    ann = {k: v for k, v in annotations(d).items() if k not in _SKIP_ANNOTATIONS}
    ann[REVISION] = str(revision)
    ann[DESIRED_REPLICAS] = str(replicas(d))
    ann[MAX_REPLICAS] = str(replicas(d) + max_surge(d))
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {
            "name": f"{meta['name']}-{digest}", "namespace": meta.get("namespace"),
            "labels": dict(tmeta["labels"]), "annotations": ann,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                 "name": meta["name"], "uid": meta["uid"], "controller": True,
                                 "blockOwnerDeletion": True}],
        },
        "spec": {"replicas": 0, "minReadySeconds": spec.get("minReadySeconds") or 0,
                 "selector": selector, "template": template},
    }


def synced_annotations(d: dict, rs: dict, new_revision: int | None) -> dict:
    """The annotations an existing ReplicaSet should carry: the Deployment's (but
    the skipped ones), and for the new RS the revision, keeping the old number in
    revision-history when it moves (a rollback reuses an old RS)."""
    ann = dict(annotations(rs))
    for k, v in annotations(d).items():
        if k not in _SKIP_ANNOTATIONS:
            ann[k] = v
    if new_revision is not None:
        old = ann.get(REVISION)
        if old and int(old) < new_revision:
            history = [h for h in (ann.get(REVISION_HISTORY) or "").split(",") if h]
            history.append(old)
            ann[REVISION_HISTORY] = ",".join(history)
        if not old or int(old) < new_revision:
            ann[REVISION] = str(new_revision)
    return ann


def replicas_annotations(ann: dict, d: dict) -> dict:
    out = dict(ann)
    out[DESIRED_REPLICAS] = str(replicas(d))
    out[MAX_REPLICAS] = str(replicas(d) + max_surge(d))
    return out


# ------------------------------------------------------------------ sizing

def new_rs_new_replicas(d: dict, all_rss: list[dict], new_rs: dict) -> int:
    """NewRSNewReplicas: how big the new RS may be this step."""
    if not is_rolling(d):
        return replicas(d)
    current = total_replicas(all_rss)
    max_total = replicas(d) + max_surge(d)
    if current >= max_total:
        return replicas(new_rs)
    up = min(max_total - current, replicas(d) - replicas(new_rs))
    return replicas(new_rs) + up


def old_scale_down(d: dict, all_rss: list[dict], old_rss: list[dict], new_rs: dict | None
                   ) -> dict[str, int]:
    """reconcileOldReplicaSets: new sizes for old ReplicaSets (by name), first
    dropping their unhealthy replicas, then available ones above minAvailable."""
    old_active = active(old_rss)
    if total_replicas(old_active) == 0:
        return {}
    all_count = total_replicas(all_rss)
    min_available = replicas(d) - max_unavailable(d)
    new_unavailable = (replicas(new_rs) - status_of(new_rs, "availableReplicas")) if new_rs else 0
    max_scaled_down = all_count - min_available - new_unavailable
    if max_scaled_down <= 0:
        return {}
    sizes = {rs["metadata"]["name"]: replicas(rs) for rs in old_active}
    # cleanupUnhealthyReplicas: the oldest first, only replicas that are not available.
    total_scaled = 0
    for rs in by_creation(old_active):
        if total_scaled >= max_scaled_down:
            break
        name = rs["metadata"]["name"]
        if sizes[name] == 0:
            continue
        unhealthy = sizes[name] - status_of(rs, "availableReplicas")
        if unhealthy <= 0:
            continue
        down = min(max_scaled_down - total_scaled, unhealthy)
        sizes[name] -= down
        total_scaled += down
    # scaleDownOldReplicaSetsForRollingUpdate: available pods above minAvailable.
    available = total_status([new_rs] + old_active if new_rs else old_active,
                             "availableReplicas")
    if available > min_available:
        total_down = available - min_available
        done = 0
        for rs in by_creation(old_active):
            if done >= total_down:
                break
            name = rs["metadata"]["name"]
            if sizes[name] == 0:
                continue
            down = min(sizes[name], total_down - done)
            sizes[name] -= down
            done += down
    return {name: size for name, size in sizes.items()
            if size != replicas(next(rs for rs in old_active if rs["metadata"]["name"] == name))}


def is_saturated(d: dict, rs: dict | None) -> bool:
    if rs is None:
        return False
    try:
        desired = int(annotations(rs).get(DESIRED_REPLICAS))
    except (TypeError, ValueError):
        return False
    return replicas(rs) == replicas(d) and desired == replicas(d) and \
        status_of(rs, "availableReplicas") == replicas(d)


def is_scaling_event(d: dict, rss: list[dict]) -> bool:
    for rs in active(rss):
        raw = annotations(rs).get(DESIRED_REPLICAS)
        if raw is not None and raw.isdigit() and int(raw) != replicas(d):
            return True
    return False


def proportional_scale(d: dict, new_rs: dict | None, old_rss: list[dict]) -> dict[str, int]:
    """scale(): new sizes by name when the Deployment's replicas changed. One active
    RS takes the whole count; a saturated new RS leaves the old ones at zero;
    during a rollout the change is spread in proportion to each RS's size."""
    all_rss = ([new_rs] if new_rs else []) + old_rss
    act = active(all_rss)
    want = replicas(d)
    latest = None
    if len(act) == 1:
        latest = act[0]
    elif not act and all_rss:
        latest = new_rs or by_creation(old_rss)[-1]
    if latest is not None:
        return {} if replicas(latest) == want else {latest["metadata"]["name"]: want}
    if is_saturated(d, new_rs):
        return {rs["metadata"]["name"]: 0 for rs in active(old_rss)}
    if not is_rolling(d):
        return {}
    allowed = want + max_surge(d)
    to_add = allowed - total_replicas(act)
    if to_add == 0:
        return {}
    # The largest first; on ties the newest when scaling up, the oldest when down.
    sign = -1 if to_add > 0 else 1
    order = sorted(act, key=lambda rs: (-replicas(rs), sign * _created(rs)[0]))
    sizes: dict[str, int] = {}
    added = 0
    for rs in order:
        name = rs["metadata"]["name"]
        prop = _proportion(d, rs, to_add, added)
        sizes[name] = replicas(rs) + prop
        added += prop
    if order and added != to_add:
        first = order[0]["metadata"]["name"]
        sizes[first] = max(0, sizes[first] + to_add - added)
    return {n: s for n, s in sizes.items()
            if s != replicas(next(rs for rs in act if rs["metadata"]["name"] == n))}


def _proportion(d: dict, rs: dict, to_add: int, added: int) -> int:
    if replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    if replicas(d) == 0:
        fraction = -replicas(rs)
    else:
        deployment_replicas = replicas(d) + max_surge(d)
        try:
            annotated = int(annotations(rs).get(MAX_REPLICAS))
        except (TypeError, ValueError):
            annotated = status_of(d, "replicas")
        if annotated <= 0:
            annotated = deployment_replicas
        fraction = round(replicas(rs) * deployment_replicas / annotated) - replicas(rs)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def history_to_delete(d: dict, old_rss: list[dict]) -> list[dict]:
    """cleanupDeployment: old RSs beyond revisionHistoryLimit, oldest revision first,
    only those already scaled to zero with no pods left."""
    limit = (d.get("spec") or {}).get("revisionHistoryLimit")
    if limit is None:
        return []
    candidates = [rs for rs in old_rss if not rs["metadata"].get("deletionTimestamp")]
    diff = len(candidates) - int(limit)
    if diff <= 0:
        return []
    candidates.sort(key=lambda rs: (revision_of(rs), _created(rs)))
    out = []
    for rs in candidates[:diff]:
        if status_of(rs, "replicas") != 0 or replicas(rs) != 0 or \
                (rs.get("metadata") or {}).get("generation", 1) > \
                (rs.get("status") or {}).get("observedGeneration", 0):
            continue
        out.append(rs)
    return out


# ------------------------------------------------------------------ status

def _rfc3339(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def get_condition(status: dict, type_: str) -> dict | None:
    for c in status.get("conditions") or []:
        if c.get("type") == type_:
            return c
    return None


def new_condition(type_: str, status: str, reason: str, message: str, now: float) -> dict:
    stamp = _rfc3339(now)
    return {"type": type_, "status": status, "lastUpdateTime": stamp,
            "lastTransitionTime": stamp, "reason": reason, "message": message}


def set_condition(status: dict, cond: dict) -> None:
    """SetDeploymentCondition: same status and reason leave it alone; same status
    keeps the transition time."""
    current = get_condition(status, cond["type"])
    if current is not None and current.get("status") == cond["status"] and \
            current.get("reason") == cond["reason"]:
        return
    if current is not None and current.get("status") == cond["status"]:
        cond = {**cond, "lastTransitionTime": current.get("lastTransitionTime")}
    status["conditions"] = [c for c in status.get("conditions") or []
                            if c.get("type") != cond["type"]] + [cond]


def remove_condition(status: dict, type_: str) -> None:
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != type_]


def calculate_status(d: dict, all_rss: list[dict], new_rs: dict | None, now: float) -> dict:
    """calculateStatus: counters from the ReplicaSets and the Available condition."""
    old = d.get("status") or {}
    available = total_status(all_rss, "availableReplicas")
    total = total_status(all_rss, "replicas")
    status = {
        "observedGeneration": (d.get("metadata") or {}).get("generation", 0),
        "replicas": total,
        "updatedReplicas": status_of(new_rs, "replicas") if new_rs else 0,
        "readyReplicas": total_status(all_rss, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": max(replicas(d) - available, 0),
        "conditions": copy.deepcopy(old.get("conditions") or []),
    }
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    # getReplicaFailures: a ReplicaSet that cannot create or delete pods (quota,
    # admission) shows on the Deployment, the new ReplicaSet's first.
    failure = None
    for rs in ([new_rs] if new_rs else []) + [r for r in all_rss if r is not new_rs]:
        c = get_condition((rs or {}).get("status") or {}, "ReplicaFailure")
        if c is not None and c.get("status") == "True":
            failure = c
            break
    if failure is not None:
        cond = new_condition("ReplicaFailure", "True", failure.get("reason", ""),
                             failure.get("message", ""), now)
        set_condition(status, cond)
    else:
        remove_condition(status, "ReplicaFailure")
    if available >= replicas(d) - max_unavailable(d):
        set_condition(status, new_condition("Available", "True", MIN_AVAILABLE,
                                            "Deployment has minimum availability.", now))
    else:
        set_condition(status, new_condition("Available", "False", MIN_UNAVAILABLE,
                                            "Deployment does not have minimum availability.",
                                            now))
    return status


def complete(d: dict, status: dict) -> bool:
    want = replicas(d)
    return status.get("updatedReplicas") == want and status.get("replicas") == want and \
        status.get("availableReplicas") == want and \
        status.get("observedGeneration", 0) >= (d.get("metadata") or {}).get("generation", 0)


def progressing(d: dict, new_status: dict) -> bool:
    old = d.get("status") or {}
    old_old = old.get("replicas", 0) - old.get("updatedReplicas", 0)
    new_old = new_status.get("replicas", 0) - new_status.get("updatedReplicas", 0)
    return new_status.get("updatedReplicas", 0) > old.get("updatedReplicas", 0) or \
        new_old < old_old or \
        new_status.get("readyReplicas", 0) > old.get("readyReplicas", 0) or \
        new_status.get("availableReplicas", 0) > old.get("availableReplicas", 0)


def has_progress_deadline(d: dict) -> bool:
    value = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return value is not None and value != 2147483647


def timed_out(d: dict, status: dict, now: float) -> bool:
    if not has_progress_deadline(d):
        return False
    cond = get_condition(status, "Progressing")
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    stamp = cond.get("lastUpdateTime")
    if not stamp:
        return False
    return parse_time(stamp).timestamp() + d["spec"]["progressDeadlineSeconds"] < now


def rollout_status(d: dict, status: dict, new_rs: dict | None, now: float) -> None:
    """syncRolloutStatus's condition logic, applied to ``status`` in place."""
    if not has_progress_deadline(d):
        remove_condition(status, "Progressing")
        return
    current = get_condition(status, "Progressing")
    done = status.get("replicas") == status.get("updatedReplicas") and current is not None \
        and current.get("reason") == NEW_RS_AVAILABLE
    if done:
        return
    name = d["metadata"]["name"]
    if complete(d, status):
        msg = f'ReplicaSet "{new_rs["metadata"]["name"]}" has successfully progressed.' \
            if new_rs else f'Deployment "{name}" has successfully progressed.'
        set_condition(status, new_condition("Progressing", "True", NEW_RS_AVAILABLE, msg, now))
    elif progressing(d, status):
        msg = f'ReplicaSet "{new_rs["metadata"]["name"]}" is progressing.' if new_rs else \
            f'Deployment "{name}" is progressing.'
        cond = new_condition("Progressing", "True", RS_UPDATED, msg, now)
        if current is not None and current.get("status") == "True":
            cond["lastTransitionTime"] = current.get("lastTransitionTime")
        remove_condition(status, "Progressing")
        set_condition(status, cond)
    elif timed_out(d, status, now):
        msg = f'ReplicaSet "{new_rs["metadata"]["name"]}" has timed out progressing.' \
            if new_rs else f'Deployment "{name}" has timed out progressing.'
        set_condition(status, new_condition("Progressing", "False", TIMED_OUT, msg, now))


def requeue_stuck(d: dict, status: dict, now: float) -> float | None:
    """Seconds until a progressing Deployment's deadline passes (requeueStuckDeployment)."""
    cond = get_condition(status, "Progressing")
    if not has_progress_deadline(d) or cond is None or \
            cond.get("reason") in (NEW_RS_AVAILABLE, TIMED_OUT) or complete(d, status):
        return None
    stamp = cond.get("lastUpdateTime")
    if not stamp:
        return None
    left = parse_time(stamp).timestamp() + d["spec"]["progressDeadlineSeconds"] - now
    return max(left, 0.0) + 1.0
