"""Conversion between served versions of one stored kind, as upstream's generated and
hand-written conversions do through the internal type:

* autoscaling/v1 <-> autoscaling/v2 HorizontalPodAutoscaler (stored at v2): v1 keeps
  the CPU utilization target in ``targetCPUUtilizationPercentage`` and everything v1
  cannot say (other metrics, current metrics, conditions, behavior) in upstream's
  ``autoscaling.alpha.kubernetes.io/*`` annotations, so a round trip loses nothing;
* core v1 <-> events.k8s.io/v1 Event (stored as core v1): ``regarding`` /
  ``involvedObject``, ``note`` / ``message``, ``reportingController`` /
  ``reportingComponent``, ``deprecatedSource`` / ``source``,
  ``deprecatedFirstTimestamp`` / ``firstTimestamp``, ``deprecatedLastTimestamp`` /
  ``lastTimestamp``, ``deprecatedCount`` / ``count``; ``series``, ``eventTime``,
  ``action``, ``reason``, ``related``, ``type`` and ``reportingInstance`` keep their
  names.

Any other pair (custom resources, conversion strategy None) only rewrites
``apiVersion``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import orjson

from bootstrap.api import defaults

HPA_METRICS = "autoscaling.alpha.kubernetes.io/metrics"
HPA_CURRENT_METRICS = "autoscaling.alpha.kubernetes.io/current-metrics"
HPA_CONDITIONS = "autoscaling.alpha.kubernetes.io/conditions"
HPA_BEHAVIOR = "autoscaling.alpha.kubernetes.io/behavior"


def _is_cpu_utilization(m: dict, key: str) -> bool:
    res = m.get("resource") or {}
    value = res.get("target" if key == "target" else "current") or {}
    return m.get("type") == "Resource" and res.get("name") == "cpu" and (
        value.get("type") == "Utilization" if key == "target"
        else value.get("averageUtilization") is not None)


def _dump(value) -> str:
    return orjson.dumps(value).decode()


def _hpa_v2_to_v1(obj: dict) -> dict:
    out = {k: copy.deepcopy(v) for k, v in obj.items() if k not in ("spec", "status")}
    out["apiVersion"] = "autoscaling/v1"
    annotations = dict((out.get("metadata") or {}).get("annotations") or {})
    spec = obj.get("spec") or {}
    v1spec = {k: spec[k] for k in ("scaleTargetRef", "minReplicas", "maxReplicas") if k in spec}
    others = []
    for m in spec.get("metrics") or []:
        if _is_cpu_utilization(m, "target") and "targetCPUUtilizationPercentage" not in v1spec:
            v1spec["targetCPUUtilizationPercentage"] = \
                m["resource"]["target"].get("averageUtilization")
        else:
            others.append(m)
    if others:
        annotations[HPA_METRICS] = _dump(others)
    if spec.get("behavior"):
        annotations[HPA_BEHAVIOR] = _dump(spec["behavior"])
    out["spec"] = v1spec
    if "status" in obj:
        status = obj.get("status") or {}
        v1status = {k: status[k] for k in ("observedGeneration", "lastScaleTime",
                                            "currentReplicas", "desiredReplicas")
                    if k in status}
        current = []
        for m in status.get("currentMetrics") or []:
            if _is_cpu_utilization(m, "current") and \
                    "currentCPUUtilizationPercentage" not in v1status:
                v1status["currentCPUUtilizationPercentage"] = \
                    m["resource"]["current"]["averageUtilization"]
            else:
                current.append(m)
        if current:
            annotations[HPA_CURRENT_METRICS] = _dump(current)
        if status.get("conditions"):
            annotations[HPA_CONDITIONS] = _dump(status["conditions"])
        v1status.setdefault("currentReplicas", 0)
        v1status.setdefault("desiredReplicas", 0)
        out["status"] = v1status
    if annotations:
        out.setdefault("metadata", {})["annotations"] = annotations
    return out


def _load(annotations: dict, key: str):
    raw = annotations.pop(key, None)
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _hpa_v1_to_v2(obj: dict) -> dict:
    out = {k: copy.deepcopy(v) for k, v in obj.items() if k not in ("spec", "status")}
    out["apiVersion"] = "autoscaling/v2"
    md = out.get("metadata") or {}
    annotations = dict(md.get("annotations") or {})
    spec = obj.get("spec") or {}
    v2spec = {k: spec[k] for k in ("scaleTargetRef", "minReplicas", "maxReplicas") if k in spec}
    metrics = []
    if spec.get("targetCPUUtilizationPercentage") is not None:
        metrics.append({"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization",
            "averageUtilization": spec["targetCPUUtilizationPercentage"]}}})
    metrics += [m for m in _load(annotations, HPA_METRICS) or [] if isinstance(m, dict)]
    # What v2's defaulting gives an HPA without metrics (upstream applies it on read).
    v2spec["metrics"] = metrics or copy.deepcopy(list(defaults.DEFAULT_HPA_METRICS))
    behavior = _load(annotations, HPA_BEHAVIOR)
    if isinstance(behavior, dict):
        v2spec["behavior"] = behavior
    out["spec"] = v2spec
    current = _load(annotations, HPA_CURRENT_METRICS)
    conditions = _load(annotations, HPA_CONDITIONS)
    if "status" in obj:
        status = obj.get("status") or {}
        v2status = {k: status[k] for k in ("observedGeneration", "lastScaleTime",
                                            "currentReplicas", "desiredReplicas")
                    if k in status}
        cur = []
        if status.get("currentCPUUtilizationPercentage") is not None:
            cur.append({"type": "Resource", "resource": {"name": "cpu", "current": {
                "averageUtilization": status["currentCPUUtilizationPercentage"]}}})
        cur += [m for m in current or [] if isinstance(m, dict)]
        if cur:
            v2status["currentMetrics"] = cur
        if isinstance(conditions, list):
            v2status["conditions"] = conditions
        v2status.setdefault("desiredReplicas", 0)
        out["status"] = v2status
    if annotations:
        md["annotations"] = annotations
    elif "annotations" in md:
        del md["annotations"]
    return out


# events.k8s.io/v1 name -> core/v1 name
_EVENT_RENAMES = {
    "regarding": "involvedObject", "note": "message",
    "reportingController": "reportingComponent", "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp", "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
}
_EVENT_RENAMES_BACK = {v: k for k, v in _EVENT_RENAMES.items()}


def _renamed(obj: dict, names: dict, api_version: str) -> dict:
    out = {names.get(k, k): copy.deepcopy(v) for k, v in obj.items()}
    out["apiVersion"] = api_version
    return out


def _event_core_to_events(obj: dict) -> dict:
    out = _renamed(obj, _EVENT_RENAMES_BACK, "events.k8s.io/v1")
    # core's zero values that events.k8s.io/v1 leaves out
    for k in ("deprecatedCount", "deprecatedFirstTimestamp", "deprecatedLastTimestamp"):
        if out.get(k) in (0, None):
            out.pop(k, None)
    if out.get("deprecatedSource") in ({}, None):
        out.pop("deprecatedSource", None)
    return out


def _event_events_to_core(obj: dict) -> dict:
    return _renamed(obj, _EVENT_RENAMES, "v1")


_CONVERTERS: dict[tuple[str, str, str], Callable[[dict], dict]] = {
    ("HorizontalPodAutoscaler", "autoscaling/v2", "autoscaling/v1"): _hpa_v2_to_v1,
    ("HorizontalPodAutoscaler", "autoscaling/v1", "autoscaling/v2"): _hpa_v1_to_v2,
    ("Event", "v1", "events.k8s.io/v1"): _event_core_to_events,
    ("Event", "events.k8s.io/v1", "v1"): _event_events_to_core,
}


def convert(obj: dict, api_version: str) -> dict:
    """``obj`` at ``api_version`` (the same dict when it is there already)."""
    have = obj.get("apiVersion")
    if have == api_version:
        return obj
    fn = _CONVERTERS.get((obj.get("kind", ""), have, api_version))
    if fn is None:
        return dict(obj, apiVersion=api_version)
    return fn(obj)
