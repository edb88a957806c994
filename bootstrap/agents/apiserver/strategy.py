"""Per-kind rules applied on create and update, as upstream's REST strategies.

What the main resource may change versus its status subresource, which status
a new object starts with, and the defaulting and validation calls into the
shared model (bootstrap.api).
"""

from __future__ import annotations

import base64
import copy

from bootstrap.api import defaults, meta, schema
from bootstrap.api.resources import Resource

# Kinds whose status is owned by a subresource: the main endpoint keeps the old
# status, the status endpoint keeps everything but status.
_STATUS_RESET_ON_CREATE = {"Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Job",
                           "CronJob", "PodDisruptionBudget", "CertificateSigningRequest",
                           "ResourceQuota", "PersistentVolumeClaim"}


def apply_defaults(obj: dict, res: Resource) -> None:
    defaults.apply_defaults(obj, res.gvk)


def normalize(obj: dict, res: Resource) -> None:
    """Conversion-time rules: a Secret's stringData is write-only sugar for data."""
    if res.kind == "Secret" and isinstance(obj.get("stringData"), dict):
        data = obj.setdefault("data", {}) or {}
        obj["data"] = data
        for k, v in obj.pop("stringData").items():
            data[k] = base64.b64encode(str(v).encode()).decode()


def decode(obj: dict, res: Resource, mode: str) -> list[str]:
    """Type and unknown-field checks, before defaulting; returns warnings."""
    return schema.decode(obj, res.gvk, mode=mode)


def validate(obj: dict, res: Resource) -> None:
    """Required fields and per-kind rules, after defaulting."""
    schema.validate_object(obj, res.gvk)


def validate_update(new: dict, old: dict, res: Resource) -> None:
    schema.validate_update(new, old, res.gvk)


def has_status(res: Resource) -> bool:
    return "status" in res.subresources


def prepare_create(res: Resource, obj: dict) -> None:
    kind = res.kind
    if kind == "Pod":
        # A client-sent pod status is dropped; the kubelet owns it.
        obj["status"] = {"phase": "Pending", "qosClass": _qos_class(obj)}
    elif kind == "Namespace":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}
    elif kind in _STATUS_RESET_ON_CREATE:
        obj["status"] = {}


def prepare_update(res: Resource, new: dict, old: dict) -> None:
    """Main-resource update: status changes are ignored for kinds with a status subresource."""
    if has_status(res) and res.kind not in ("Node",):
        if "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        else:
            new.pop("status", None)
    if res.kind == "CertificateSigningRequest":
        new["status"] = copy.deepcopy(old.get("status") or {})
    if res.kind == "Namespace":
        # spec.finalizers change only through the finalize subresource.
        new.setdefault("spec", {})["finalizers"] = copy.deepcopy(
            (old.get("spec") or {}).get("finalizers") or [])
        new["status"] = copy.deepcopy(old.get("status") or {})
    meta.bump_generation(old, new)


def prepare_status_update(res: Resource, new: dict, old: dict) -> dict:
    """Status update: only status (and for CSRs, conditions) changes."""
    out = copy.deepcopy(old)
    out["status"] = copy.deepcopy(new.get("status") or {})
    out["metadata"]["resourceVersion"] = new.get("metadata", {}).get("resourceVersion",
                                                                     old["metadata"].get(
                                                                         "resourceVersion"))
    if res.kind == "Node":
        # kubelets also publish labels/annotations through status patches.
        for k in ("labels", "annotations"):
            if k in new.get("metadata", {}):
                out["metadata"][k] = new["metadata"][k]
    return out


def prepare_approval_update(new: dict, old: dict) -> dict:
    """certificatesigningrequests/approval: only the Approved/Denied conditions change."""
    out = copy.deepcopy(old)
    out.setdefault("status", {})["conditions"] = copy.deepcopy(
        (new.get("status") or {}).get("conditions") or [])
    out["metadata"]["resourceVersion"] = new.get("metadata", {}).get(
        "resourceVersion", old["metadata"].get("resourceVersion"))
    return out


def _qos_class(pod: dict) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    requests_any = limits_all = False
    guaranteed = bool(containers)
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            requests_any = True
        for r in ("cpu", "memory"):
            if r not in lim or (r in req and req[r] != lim[r]):
                guaranteed = False
        limits_all = limits_all or bool(lim)
    if guaranteed:
        return "Guaranteed"
    return "Burstable" if requests_any else "BestEffort"


def scale_of(res: Resource, obj: dict) -> dict:
    """autoscaling/v1 Scale view of a deployment, replicaset or statefulset."""
    m = obj["metadata"]
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: m[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                       "creationTimestamp") if k in m},
        "spec": {"replicas": spec.get("replicas", 0)},
        "status": {"replicas": status.get("replicas", 0),
                   "selector": ",".join(f"{k}={v}" for k, v in sorted(selector.items()))},
    }
