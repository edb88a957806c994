"""ResourceQuota and LimitRange validation (upstream's ValidateResourceQuota and
ValidateLimitRange), with upstream's paths and messages. Quantity syntax was checked
when the body was decoded; these are the semantic rules, after defaulting."""

from __future__ import annotations

from bootstrap.api import quantity, quota
from bootstrap.api.errors import FieldError, duplicate, forbidden_field, invalid_value, required

_STANDARD_QUOTA = frozenset({
    "pods", "services", "replicationcontrollers", "resourcequotas", "secrets", "configmaps",
    "persistentvolumeclaims", "services.nodeports", "services.loadbalancers", "cpu", "memory",
    "ephemeral-storage", "requests.cpu", "requests.memory", "requests.storage",
    "requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage"})
_INTEGER = frozenset({"pods", "services", "replicationcontrollers", "resourcequotas",
                      "secrets", "configmaps", "persistentvolumeclaims", "services.nodeports",
                      "services.loadbalancers"})
_COMPUTE = frozenset({"cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory",
                      "requests.ephemeral-storage", "limits.cpu", "limits.memory",
                      "limits.ephemeral-storage"})
# Which standard resources each scope may limit (IsResourceQuotaScopeValidForResource).
_SCOPE_RESOURCES = {
    "BestEffort": frozenset({"pods", "count/pods"}),
    **{s: frozenset({"pods", "count/pods"}) | _COMPUTE
       for s in ("Terminating", "NotTerminating", "NotBestEffort", "PriorityClass",
                 "CrossNamespacePodAffinity")},
}
_CONFLICTS = ({"BestEffort", "NotBestEffort"}, {"Terminating", "NotTerminating"})
_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def _hugepages(name: str) -> bool:
    return name.startswith(("hugepages-", "requests.hugepages-"))




def _quota_list(raw, path: str, out: list[FieldError]) -> None:
    for name, v in (raw or {}).items() if isinstance(raw, dict) else ():
        p = f"{path}[{name}]"
        if "/" not in name and name not in _STANDARD_QUOTA and not _hugepages(name):
            out.append(invalid_value(p, name, "must be a standard resource for quota"))
        q = quantity.parse_or_none(v)
        if q is None:
            continue
        if q < 0:
            out.append(invalid_value(p, quantity.canonical_or_text(v), "must be greater than or equal to 0"))
        if (name in _INTEGER or quota._extended(name)) and (q * 1000) % 1000:
            out.append(invalid_value(p, quantity.canonical_or_text(v), "must be an integer"))


def _scopes_text(scopes: list) -> str:
    return "[]core.ResourceQuotaScope{" + ", ".join(f'"{s}"' for s in scopes) + "}"


def resource_quota(obj: dict) -> list[FieldError]:
    out: list[FieldError] = []
    spec = obj.get("spec") or {}
    _quota_list(spec.get("hard"), "spec.hard", out)
    status = obj.get("status") or {}
    _quota_list(status.get("hard"), "status.hard", out)
    _quota_list(status.get("used"), "status.used", out)
    scopes = spec.get("scopes") or []
    hard = [k for k in (spec.get("hard") or {}) if k in _STANDARD_QUOTA or k == "count/pods"]
    for scope in scopes:
        if scope not in _SCOPE_RESOURCES:
            out.append(FieldError("FieldValueInvalid", "spec.scopes",
                                  f"Invalid value: {_scopes_text(scopes)}: unsupported scope"))
            continue
        if any(k not in _SCOPE_RESOURCES[scope] for k in hard):
            out.append(FieldError("FieldValueInvalid", "spec.scopes",
                                  f"Invalid value: {_scopes_text(scopes)}: unsupported scope "
                                  f"applied to resource"))
    for pair in _CONFLICTS:
        if pair <= set(scopes):
            out.append(FieldError("FieldValueInvalid", "spec.scopes",
                                  f"Invalid value: {_scopes_text(scopes)}: conflicting scopes"))
    selector = spec.get("scopeSelector") or {}
    for i, req in enumerate(selector.get("matchExpressions") or []):
        path = f"spec.scopeSelector.matchExpressions[{i}]"
        if req.get("scopeName") not in _SCOPE_RESOURCES:
            out.append(invalid_value(f"{path}.scopeName", req.get("scopeName"),
                                     "unsupported scope"))
        op = req.get("operator")
        if op not in _OPERATORS:
            out.append(invalid_value(f"{path}.operator", op, "not a valid selector operator"))
        elif op in ("In", "NotIn") and not req.get("values"):
            out.append(required(f"{path}.values",
                                "must be at least one value when `operator` is 'In' or "
                                "'NotIn' for scope selector"))
        elif op in ("Exists", "DoesNotExist") and req.get("values"):
            out.append(invalid_value(f"{path}.values", req.get("values"),
                                     "must be no value when `operator` is 'Exist' or "
                                     "'DoesNotExist' for scope selector"))
    return out


def _milli(v) -> int:
    return quantity.milli_value(v)


_LIMIT_ORDER = (
    ("min", "max", "min", "min", "min value {lo} is greater than max value {hi}"),
    ("min", "defaultRequest", "defaultRequest", "defaultRequest",
     "min value {lo} is greater than default request value {hi}"),
    ("defaultRequest", "max", "defaultRequest", "defaultRequest",
     "default request value {lo} is greater than max value {hi}"),
    ("defaultRequest", "default", "defaultRequest", "defaultRequest",
     "default request value {lo} is greater than default limit value {hi}"),
    ("min", "default", "default", "min", "min value {lo} is greater than default value {hi}"),
    ("default", "max", "default", "max", "default value {lo} is greater than max value {hi}"),
)


def limit_range(obj: dict) -> list[FieldError]:
    out: list[FieldError] = []
    seen: set[str] = set()
    for i, item in enumerate((obj.get("spec") or {}).get("limits") or []):
        if not isinstance(item, dict):
            continue
        base = f"spec.limits[{i}]"
        kind = item.get("type", "")
        if kind in seen:
            out.append(duplicate(f"{base}.type", kind))
        seen.add(kind)
        lists = {k: item.get(k) if isinstance(item.get(k), dict) else {}
                 for k in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio")}
        if kind == "Pod":
            for k in ("default", "defaultRequest"):
                if lists[k]:
                    out.append(forbidden_field(f"{base}.{k}",
                                               "may not be specified when `type` is 'Pod'"))
                    lists[k] = {}
        if kind == "PersistentVolumeClaim" and "storage" not in lists["min"] and \
                "storage" not in lists["max"]:
            out.append(required(f"{base}.limits", "either minimum or maximum storage value is "
                                "required, but neither was provided"))
        names = sorted(set().union(*(set(v) for v in lists.values())))
        for name in names:
            q = {k: lists[k][name] for k in lists if name in lists[k] and
                 quantity.parse_or_none(lists[k][name]) is not None}
            mn, mx, ratio = q.get("min"), q.get("max"), q.get("maxLimitRequestRatio")

            def bad(field: str, shown, message: str, base=base, name=name) -> None:
                out.append(invalid_value(f"{base}.{field}[{name}]", quantity.canonical_or_text(shown), message))
            text = {k: quantity.canonical_or_text(v) for k, v in q.items()}
            # (smaller, larger, field reported, value shown, message): upstream's order.
            for lo, hi, field, shown, msg in _LIMIT_ORDER:
                if lo in q and hi in q and quantity.parse(q[lo]) > quantity.parse(q[hi]):
                    bad(field, q[shown], msg.format(**{"lo": text[lo], "hi": text[hi]}))
            if ratio is not None and quantity.parse(ratio) < 1:
                bad("maxLimitRequestRatio", ratio, f"ratio {text['maxLimitRequestRatio']} is less than 1")
            if ratio is not None and mn is not None and mx is not None and _milli(mn) > 0:
                limit = _milli(mx) / _milli(mn)
                if _milli(ratio) / 1000 > limit:
                    bad("maxLimitRequestRatio", ratio,
                        f"ratio {text['maxLimitRequestRatio']} is greater than max/min = {limit:f}")
    return out
