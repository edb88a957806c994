"""The strategies of the kinds that differ from the generic one."""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime, timedelta

from bootstrap.api import defaults, meta

from .base import DEFAULT, Strategy


class StatusOwned(Strategy):
    """Controllers own status (through /status); a client's create starts empty, with
    the fields Go serializes without omitempty present at their zero value (clients
    such as the official Python client require them)."""

    reset_status_on_create = True
    zero_status: dict = {}

    def prepare_create(self, obj: dict) -> None:
        obj["status"] = dict(self.zero_status)


def _status_owned(**zero) -> type[StatusOwned]:
    return type("StatusOwned", (StatusOwned,), {"zero_status": zero})


class Scalable(StatusOwned):
    scalable = True


def _scalable(**zero) -> type[Scalable]:
    return type("Scalable", (Scalable,), {"zero_status": zero})


class ReplicationControllerStrategy(Strategy):
    scalable = True
    zero_status = {"replicas": 0}

    def prepare_create(self, obj: dict) -> None:
        obj["status"] = dict(self.zero_status)

    def scale(self, obj: dict) -> dict:
        out = super().scale(obj)
        # An RC's selector is a plain label map, not a LabelSelector.
        selector = (obj.get("spec") or {}).get("selector") or {}
        out["status"]["selector"] = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        return out


class CreateOnUpdate(Strategy):
    allow_create_on_update = True


class EventStrategy(CreateOnUpdate):
    """Event times in Go's layouts (MicroTime with microseconds, Time in seconds, UTC),
    as upstream re-serialises whatever RFC 3339 a client sent: kubectl events parses
    eventTime with the exact MicroTime layout."""

    _MICRO = ("eventTime",)
    _SECONDS = ("firstTimestamp", "lastTimestamp", "deprecatedFirstTimestamp",
                "deprecatedLastTimestamp")

    def normalize(self, obj: dict) -> None:
        for key in self._MICRO:
            obj[key] = _go_time(obj.get(key), "%Y-%m-%dT%H:%M:%S.%fZ")
        series = obj.get("series")
        if isinstance(series, dict) and "lastObservedTime" in series:
            series["lastObservedTime"] = _go_time(series.get("lastObservedTime"),
                                                  "%Y-%m-%dT%H:%M:%S.%fZ")
        for key in self._SECONDS:
            obj[key] = _go_time(obj.get(key), "%Y-%m-%dT%H:%M:%SZ")
        for key in (*self._MICRO, *self._SECONDS):
            if obj.get(key) is None:
                obj.pop(key, None)


def _go_time(value, layout: str):
    if not isinstance(value, str) or not value:
        return value
    try:
        parsed = meta.parse_time(value)
    except ValueError:
        return value  # validation reports it
    if parsed.tzinfo is None:
        return value
    return parsed.astimezone(UTC).strftime(layout)


class JobStrategy(StatusOwned):
    def before_validate(self, obj: dict, user) -> None:
        # The generated selector is keyed on the uid, set just before this runs.
        defaults.generate_job_selector(obj)


class SecretStrategy(Strategy):
    def normalize(self, obj: dict) -> None:
        """stringData is write-only sugar for data."""
        if isinstance(obj.get("stringData"), dict):
            data = obj.setdefault("data", {}) or {}
            obj["data"] = data
            for k, v in obj.pop("stringData").items():
                data[k] = base64.b64encode(str(v).encode()).decode()


class NodeStrategy(Strategy):
    def prepare_update(self, new: dict, old: dict) -> None:
        # Kubelets publish status with the main resource as well as /status.
        meta.bump_generation(old, new)

    def prepare_subresource_update(self, sub: str, new: dict, old: dict) -> dict:
        out = super().prepare_subresource_update(sub, new, old)
        # kubelets also publish labels and annotations through status patches.
        for k in ("labels", "annotations"):
            if k in (new.get("metadata") or {}):
                out["metadata"][k] = new["metadata"][k]
        return out


class NamespaceStrategy(Strategy):
    def prepare_create(self, obj: dict) -> None:
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}

    def prepare_update(self, new: dict, old: dict) -> None:
        # spec.finalizers change only through the finalize subresource.
        new.setdefault("spec", {})["finalizers"] = copy.deepcopy(
            (old.get("spec") or {}).get("finalizers") or [])
        new["status"] = copy.deepcopy(old.get("status") or {})
        meta.bump_generation(old, new)

    def still_finalizing(self, obj: dict) -> bool:
        return bool((obj.get("spec") or {}).get("finalizers"))

    def delete(self, current: dict, grace, finalizers):
        md = current["metadata"]
        if not md.get("deletionTimestamp"):
            md["deletionTimestamp"] = meta.now_rfc3339()
            md["deletionGracePeriodSeconds"] = 0
        current.setdefault("status", {})["phase"] = "Terminating"
        if not (current.get("spec") or {}).get("finalizers") and not md.get("finalizers"):
            return None
        return current


class PodStrategy(Strategy):
    def prepare_create(self, obj: dict) -> None:
        # A client-sent pod status is dropped; the kubelet owns it.
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj)}

    def delete(self, current: dict, grace, finalizers):
        """A pod bound to a node and still running is deleted gracefully: it gets a
        deletionTimestamp and the kubelet removes it with grace 0 once stopped."""
        md = current["metadata"]
        running = (current.get("spec") or {}).get("nodeName") and \
            (current.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        if not running:
            return DEFAULT
        g = grace if grace is not None else (current.get("spec") or {}).get(
            "terminationGracePeriodSeconds", 30)
        if md.get("deletionTimestamp") and g > 0 and g >= md.get(
                "deletionGracePeriodSeconds", 0):
            return current  # already terminating at least this fast
        if g <= 0 and md.get("deletionTimestamp"):
            md["deletionGracePeriodSeconds"] = 0
        if g > 0:
            md["deletionGracePeriodSeconds"] = g
            md["deletionTimestamp"] = (datetime.now(UTC) + timedelta(seconds=g)).strftime(
                "%Y-%m-%dT%H:%M:%SZ")
            if finalizers:
                md["finalizers"] = finalizers
            return current
        return DEFAULT


class CSRStrategy(StatusOwned):
    def before_validate(self, obj: dict, user) -> None:
        """CSRs record who asked, from the authenticated user, never from the body."""
        spec = obj.setdefault("spec", {})
        for k in ("username", "uid", "groups", "extra"):
            spec.pop(k, None)
        if user is None:
            return
        spec["username"] = user.name
        if user.uid:
            spec["uid"] = user.uid
        if user.groups:
            spec["groups"] = list(user.groups)
        if user.extra:
            spec["extra"] = {k: list(v) for k, v in user.extra.items()}

    def owns_subresource_update(self, sub: str) -> bool:
        return sub in ("status", "approval")

    def prepare_subresource_update(self, sub: str, new: dict, old: dict) -> dict:
        if sub != "approval":
            return super().prepare_subresource_update(sub, new, old)
        # certificatesigningrequests/approval: only the Approved/Denied conditions change.
        out = copy.deepcopy(old)
        out.setdefault("status", {})["conditions"] = copy.deepcopy(
            (new.get("status") or {}).get("conditions") or [])
        out["metadata"]["resourceVersion"] = (new.get("metadata") or {}).get(
            "resourceVersion", old["metadata"].get("resourceVersion"))
        return out


def qos_class(pod: dict) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    requests_any = False
    guaranteed = bool(containers)
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            requests_any = True
        for r in ("cpu", "memory"):
            if r not in lim or (r in req and req[r] != lim[r]):
                guaranteed = False
    if guaranteed:
        return "Guaranteed"
    return "Burstable" if requests_any else "BestEffort"


STRATEGIES: dict[tuple[str, str, str], type[Strategy]] = {
    ("", "v1", "Pod"): PodStrategy,
    ("", "v1", "Namespace"): NamespaceStrategy,
    ("", "v1", "Node"): NodeStrategy,
    ("", "v1", "Secret"): SecretStrategy,
    ("", "v1", "Endpoints"): CreateOnUpdate,
    ("", "v1", "ReplicationController"): ReplicationControllerStrategy,
    ("", "v1", "PersistentVolume"): _status_owned(phase="Pending"),
    ("autoscaling", "v2", "HorizontalPodAutoscaler"): _status_owned(desiredReplicas=0),
    ("autoscaling", "v1", "HorizontalPodAutoscaler"): _status_owned(currentReplicas=0,
                                                                    desiredReplicas=0),
    ("networking.k8s.io", "v1", "Ingress"): StatusOwned,
    ("storage.k8s.io", "v1", "VolumeAttachment"): _status_owned(attached=False),
    ("flowcontrol.apiserver.k8s.io", "v1", "FlowSchema"): StatusOwned,
    ("flowcontrol.apiserver.k8s.io", "v1", "PriorityLevelConfiguration"): StatusOwned,
    ("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy"): StatusOwned,
    ("", "v1", "Event"): EventStrategy,
    ("events.k8s.io", "v1", "Event"): EventStrategy,
    ("", "v1", "ResourceQuota"): StatusOwned,
    ("", "v1", "PersistentVolumeClaim"): StatusOwned,
    ("apps", "v1", "Deployment"): Scalable,
    ("apps", "v1", "ReplicaSet"): _scalable(replicas=0),
    ("apps", "v1", "StatefulSet"): _scalable(replicas=0, availableReplicas=0),
    ("apps", "v1", "DaemonSet"): _status_owned(
        currentNumberScheduled=0, numberMisscheduled=0, desiredNumberScheduled=0,
        numberReady=0),
    ("batch", "v1", "Job"): JobStrategy,
    ("batch", "v1", "CronJob"): StatusOwned,
    ("policy", "v1", "PodDisruptionBudget"): _status_owned(
        disruptionsAllowed=0, currentHealthy=0, desiredHealthy=0, expectedPods=0),
    ("certificates.k8s.io", "v1", "CertificateSigningRequest"): CSRStrategy,
    ("coordination.k8s.io", "v1", "Lease"): CreateOnUpdate,
    ("discovery.k8s.io", "v1", "EndpointSlice"): CreateOnUpdate,
    ("rbac.authorization.k8s.io", "v1", "Role"): CreateOnUpdate,
    ("rbac.authorization.k8s.io", "v1", "RoleBinding"): CreateOnUpdate,
    ("rbac.authorization.k8s.io", "v1", "ClusterRole"): CreateOnUpdate,
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"): CreateOnUpdate,
}
