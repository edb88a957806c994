"""LimitRanger admission (upstream's plugin/pkg/admission/limitranger): the namespace's
LimitRanges default the resources of a new pod's containers (type Container:
``default`` limits, ``defaultRequest`` requests, recorded in the
``kubernetes.io/limit-ranger`` annotation) and bound them (min, max,
maxLimitRequestRatio per Container and per Pod); PersistentVolumeClaims are
bounded by type PersistentVolumeClaim (min and max of requests.storage).

Pods are only looked at on create (their containers' resources cannot change
later); claims on create and update. Messages are upstream's, joined as its
aggregate error (``[a, b]`` for several).
"""

from __future__ import annotations

import copy
from decimal import Decimal

from bootstrap.api import errors, quantity

from .livelookup import LiveLookup

ANNOTATION = "kubernetes.io/limit-ranger"
PODS = ("", "v1", "pods")
PVCS = ("", "v1", "persistentvolumeclaims")


def _applies(a) -> bool:
    if a.subresource or a.op not in ("CREATE", "UPDATE"):
        return False
    if a.resource.gvr == PODS:
        return a.op == "CREATE"
    if a.resource.gvr != PVCS:
        return False
    return not ((a.old or {}).get("metadata") or {}).get("deletionTimestamp")


_LOOKUP = LiveLookup("limitranges")


async def _limit_ranges(a) -> list[dict]:
    items = await _LOOKUP.list(a.store, a.namespace)
    return sorted(items, key=lambda lr: lr["metadata"]["name"])


def _limits(lr: dict, kind: str) -> list[dict]:
    return [item for item in (lr.get("spec") or {}).get("limits") or []
            if item.get("type") == kind]


# -- defaults -------------------------------------------------------------------------

def _defaults(lrs: list[dict]) -> tuple[dict, dict]:
    """(requests, limits) that type Container items default (later ones win)."""
    requests: dict = {}
    limits: dict = {}
    for lr in lrs:
        for item in _limits(lr, "Container"):
            requests.update(item.get("defaultRequest") or {})
            limits.update(item.get("default") or {})
    return requests, limits


def _merge(container: dict, requests: dict, limits: dict, what: str) -> list[str]:
    res = container.get("resources")
    if not isinstance(res, dict):
        res = container["resources"] = {}
    notes = []
    for field, defaults, word in (("requests", requests, "request"),
                                  ("limits", limits, "limit")):
        have = res.get(field) if isinstance(res.get(field), dict) else {}
        missing = sorted(k for k in defaults if k not in have)
        if missing:
            res[field] = {**have, **{k: defaults[k] for k in missing}}
            notes.append(f"{', '.join(missing)} {word} for {what} {container.get('name', '')}")
    return notes


async def mutate(a) -> dict | None:
    if not _applies(a) or a.resource.gvr != PODS:
        return a.obj
    requests, limits = _defaults(await _limit_ranges(a))
    if not requests and not limits:
        return a.obj
    pod = copy.deepcopy(a.obj)
    spec = pod.get("spec") or {}
    notes: list[str] = []
    for c in spec.get("containers") or []:
        notes += _merge(c, requests, limits, "container")
    for c in spec.get("initContainers") or []:
        notes += _merge(c, requests, limits, "init container")
    if notes:
        md = pod.setdefault("metadata", {})
        md.setdefault("annotations", {})[ANNOTATION] = "LimitRanger plugin set: " + \
            "; ".join(notes)
    return pod


# -- constraints ----------------------------------------------------------------------



def _min(kind: str, name: str, enforced, requests: dict, limits: dict) -> str | None:
    bound = quantity.parse_or_none(enforced)
    if name not in requests:
        return f"minimum {name} usage per {kind} is {quantity.canonical_or_text(enforced)}.  No request is specified"
    req, lim = quantity.parse_or_none(requests[name]), quantity.parse_or_none(limits.get(name))
    if req is not None and bound is not None and req < bound:
        return f"minimum {name} usage per {kind} is {quantity.canonical_or_text(enforced)}, but request is " \
               f"{quantity.canonical_or_text(requests[name])}"
    if lim is not None and bound is not None and lim < bound:
        return f"minimum {name} usage per {kind} is {quantity.canonical_or_text(enforced)}, but limit is " \
               f"{quantity.canonical_or_text(limits[name])}"
    return None


def _max(kind: str, name: str, enforced, requests: dict, limits: dict) -> str | None:
    bound = quantity.parse_or_none(enforced)
    if name not in limits:
        return f"maximum {name} usage per {kind} is {quantity.canonical_or_text(enforced)}.  No limit is specified"
    req, lim = quantity.parse_or_none(requests.get(name)), quantity.parse_or_none(limits[name])
    if lim is not None and bound is not None and lim > bound:
        return f"maximum {name} usage per {kind} is {quantity.canonical_or_text(enforced)}, but limit is " \
               f"{quantity.canonical_or_text(limits[name])}"
    if req is not None and bound is not None and req > bound:
        return f"maximum {name} usage per {kind} is {quantity.canonical_or_text(enforced)}, but request is " \
               f"{quantity.canonical_or_text(requests[name])}"
    return None


def _max_request(kind: str, name: str, enforced, requests: dict) -> str | None:
    bound = quantity.parse_or_none(enforced)
    if name not in requests:
        return f"maximum {name} usage per {kind} is {quantity.canonical_or_text(enforced)}.  No request is specified"
    req = quantity.parse_or_none(requests[name])
    if req is not None and bound is not None and req > bound:
        return f"maximum {name} usage per {kind} is {quantity.canonical_or_text(enforced)}, but request is " \
               f"{quantity.canonical_or_text(requests[name])}"
    return None


def _ratio(kind: str, name: str, enforced, requests: dict, limits: dict) -> str | None:
    req, lim = quantity.parse_or_none(requests.get(name)), quantity.parse_or_none(limits.get(name))
    if not req:
        return f"{name} max limit to request ratio per {kind} is {quantity.canonical_or_text(enforced)}, but no " \
               f"request is specified or request is 0"
    if not lim:
        return f"{name} max limit to request ratio per {kind} is {quantity.canonical_or_text(enforced)}, but no " \
               f"limit is specified or limit is 0"
    # Upstream compares milli-values and prints the ratio with %f.
    observed = Decimal(quantity.milli_value(limits[name])) / \
        Decimal(quantity.milli_value(requests[name]))
    if observed * 1000 > quantity.milli_value(enforced):
        return f"{name} max limit to request ratio per {kind} is {quantity.canonical_or_text(enforced)}, but " \
               f"provided ratio is {float(observed):f}"
    return None


def _check(item: dict, kind: str, requests: dict, limits: dict) -> list[str]:
    out = []
    for name, v in sorted((item.get("min") or {}).items()):
        out.append(_min(kind, name, v, requests, limits))
    for name, v in sorted((item.get("max") or {}).items()):
        out.append(_max(kind, name, v, requests, limits))
    for name, v in sorted((item.get("maxLimitRequestRatio") or {}).items()):
        out.append(_ratio(kind, name, v, requests, limits))
    return [m for m in out if m]


def _resources(c: dict) -> tuple[dict, dict]:
    res = c.get("resources") or {}
    return (res.get("requests") if isinstance(res.get("requests"), dict) else {},
            res.get("limits") if isinstance(res.get("limits"), dict) else {})


def _pod_problems(lr: dict, pod: dict) -> list[str]:
    from bootstrap.api import quota
    spec = pod.get("spec") or {}
    out = []
    for item in (lr.get("spec") or {}).get("limits") or []:
        if item.get("type") == "Container":
            for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
                out += _check(item, "Container", *_resources(c))
        elif item.get("type") == "Pod":
            out += _check(item, "Pod", {k: str(v) for k, v in quota.pod_requests(pod).items()},
                          {k: str(v) for k, v in quota.pod_limits(pod).items()})
    return out


def _pvc_problems(lr: dict, pvc: dict) -> list[str]:
    requests = ((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}
    out = []
    for item in _limits(lr, "PersistentVolumeClaim"):
        for name, v in sorted((item.get("min") or {}).items()):
            out.append(_min("PersistentVolumeClaim", name, v, requests, {}))
        for name, v in sorted((item.get("max") or {}).items()):
            out.append(_max_request("PersistentVolumeClaim", name, v, requests))
    return [m for m in out if m]


async def validate(a) -> None:
    if not _applies(a):
        return
    problems = _pod_problems if a.resource.gvr == PODS else _pvc_problems
    for lr in await _limit_ranges(a):
        found = problems(lr, a.obj or {})
        if found:
            message = found[0] if len(found) == 1 else "[" + ", ".join(found) + "]"
            raise errors.forbidden_message(a.resource.plural, a.name, message)
