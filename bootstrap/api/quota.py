"""Quota arithmetic and usage evaluators (upstream's pkg/quota/v1 and its evaluators),
shared by the API server's ResourceQuota admission and the controller manager's
resourcequota controller, so both count an object the same way.

A resource list is ``{name: Q}``; ``Q`` keeps the value and the format Go's
Quantity would keep, so messages print as upstream (``requests.memory=1Gi``).
Evaluators are a table by group/resource: pods, services and persistentvolumeclaims
have their own; every other resource is counted as ``count/<resource>[.<group>]``
(plus the legacy names ``configmaps``, ``secrets``, ``replicationcontrollers`` and
``resourcequotas``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bootstrap.api import quantity

ZERO = Decimal(0)


@dataclass(frozen=True)
class Q:
    value: Decimal
    fmt: str = quantity.DECIMAL_SI

    def __str__(self) -> str:
        return quantity.to_string(self.value, self.fmt)

    def __add__(self, other: Q) -> Q:
        # Quantity.Add keeps the receiver's format unless the receiver is zero.
        return Q(self.value + other.value, other.fmt if self.value == 0 else self.fmt)

    def __sub__(self, other: Q) -> Q:
        return Q(self.value - other.value, self.fmt)


ResourceList = dict[str, Q]


def q(value) -> Q:
    """A Q from a JSON quantity (QuantityError when malformed)."""
    return Q(quantity.parse(value), quantity.format_of(value))


def parse_list(raw: dict | None) -> ResourceList:
    """A resource list from an object; malformed values are skipped (validation
    reports them)."""
    out: ResourceList = {}
    for k, v in (raw or {}).items():
        try:
            out[k] = q(v)
        except quantity.QuantityError:
            continue
    return out


def to_json(rl: ResourceList) -> dict[str, str]:
    return {k: str(v) for k, v in sorted(rl.items())}


def add(a: ResourceList, b: ResourceList) -> ResourceList:
    out = dict(a)
    for k, v in b.items():
        out[k] = out[k] + v if k in out else v
    return out


def subtract_non_negative(a: ResourceList, b: ResourceList) -> ResourceList:
    out: ResourceList = {}
    for k, v in a.items():
        d = v - b[k] if k in b else v
        out[k] = d if d.value >= 0 else Q(ZERO, d.fmt)
    for k, v in b.items():
        if k not in out:
            out[k] = Q(ZERO, v.fmt)
    return out


def mask(rl: ResourceList, names: Iterable[str]) -> ResourceList:
    names = set(names)
    return {k: v for k, v in rl.items() if k in names}


def remove_zeros(rl: ResourceList) -> ResourceList:
    return {k: v for k, v in rl.items() if v.value != 0}


def equals(a: ResourceList, b: ResourceList) -> bool:
    return a.keys() == b.keys() and all(a[k].value == b[k].value for k in a)


def less_or_equal(a: ResourceList, b: ResourceList) -> tuple[bool, list[str]]:
    """Whether every value of ``a`` with a bound in ``b`` is within it, and the names
    that are not."""
    exceeded = sorted(k for k, v in a.items() if k in b and v.value > b[k].value)
    return not exceeded, exceeded


def pretty(rl: ResourceList) -> str:
    return ",".join(f"{k}={rl[k]}" for k in sorted(rl))


def _one() -> Q:
    return Q(Decimal(1))


# -- pods --------------------------------------------------------------------------

REQUESTS_PREFIX = "requests."
LIMITS_PREFIX = "limits."
_HUGEPAGES = "hugepages-"
_POD_RESOURCES = frozenset({
    "cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory",
    "requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage",
    "pods", "count/pods"})
# Quotas on these make every container state them (upstream's validationSet).
_MUST_SPECIFY = frozenset({"cpu", "memory", "requests.cpu", "requests.memory",
                           "limits.cpu", "limits.memory"})
POD_SCOPES = ("Terminating", "NotTerminating", "BestEffort", "NotBestEffort",
              "PriorityClass", "CrossNamespacePodAffinity")


def _extended(name: str) -> bool:
    # IsExtendedResourceName: a domain-qualified name outside kubernetes.io.
    return "/" in name and "kubernetes.io/" not in name and \
        not name.startswith(REQUESTS_PREFIX)


def _add_max(acc: dict[str, Decimal], rl: dict[str, Decimal], *, use_max: bool) -> None:
    for k, v in rl.items():
        acc[k] = (max(acc[k], v) if use_max else acc[k] + v) if k in acc else v


def _container_list(c: dict, field: str) -> ResourceList:
    return parse_list((c.get("resources") or {}).get(field))


def _pod_aggregate(pod: dict, field: str) -> ResourceList:
    """PodRequests / PodLimits: the containers' sum, or more when an init container
    (plus the sidecars started before it) needs more; sidecars run all along; the
    pod's overhead on top."""
    spec = pod.get("spec") or {}
    total: ResourceList = {}
    for c in spec.get("containers") or []:
        total = add(total, _container_list(c, field))
    sidecars: ResourceList = {}
    init_peak: ResourceList = {}
    for c in spec.get("initContainers") or []:
        own = _container_list(c, field)
        if c.get("restartPolicy") == "Always":
            total = add(total, own)
            sidecars = add(sidecars, own)
            need = sidecars
        else:
            need = add(dict(own), sidecars)
        for k, v in need.items():
            if k not in init_peak or v.value > init_peak[k].value:
                init_peak[k] = v
    for k, v in init_peak.items():
        if k not in total or v.value > total[k].value:
            total[k] = v
    return add(total, parse_list(spec.get("overhead")))


def pod_requests(pod: dict) -> ResourceList:
    return _pod_aggregate(pod, "requests")


def pod_limits(pod: dict) -> ResourceList:
    return _pod_aggregate(pod, "limits")


def _compute_usage(requests: ResourceList, limits: ResourceList) -> ResourceList:
    out: ResourceList = {"pods": _one()}
    for name in ("cpu", "memory", "ephemeral-storage"):
        if name in requests:
            out[name] = requests[name]
            out[REQUESTS_PREFIX + name] = requests[name]
        if name in limits:
            out[LIMITS_PREFIX + name] = limits[name]
    for name, v in requests.items():
        if name.startswith(_HUGEPAGES):
            out[name] = v
            out[REQUESTS_PREFIX + name] = v
        elif _extended(name):
            out[REQUESTS_PREFIX + name] = v
    return out


def pod_counts(pod: dict, now: datetime | None = None) -> bool:
    """QuotaV1Pod: a pod that finished, or whose deletion grace period is over, no
    longer uses compute quota (it still counts in count/pods)."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    md = pod.get("metadata") or {}
    grace = md.get("deletionGracePeriodSeconds")
    if md.get("deletionTimestamp") and grace is not None:
        deleted = datetime.fromisoformat(md["deletionTimestamp"].replace("Z", "+00:00"))
        if (now or datetime.now(UTC)) > deleted + timedelta(seconds=grace):
            return False
    return True


def _best_effort(pod: dict) -> bool:
    spec = pod.get("spec") or {}
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        res = c.get("resources") or {}
        for field in ("requests", "limits"):
            if any(k in ("cpu", "memory") for k in (res.get(field) or {})):
                return False
    return True


def _cross_namespace_affinity(pod: dict) -> bool:
    affinity = (pod.get("spec") or {}).get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        a = affinity.get(kind) or {}
        terms = list(a.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
        terms += [w.get("podAffinityTerm") or {} for w in
                  a.get("preferredDuringSchedulingIgnoredDuringExecution") or []]
        if any(t.get("namespaces") or t.get("namespaceSelector") is not None for t in terms):
            return True
    return False


def _pod_scope(selector: dict, pod: dict) -> bool:
    scope, op = selector.get("scopeName"), selector.get("operator", "Exists")
    spec = pod.get("spec") or {}
    if scope == "Terminating":
        return spec.get("activeDeadlineSeconds") is not None and \
            spec["activeDeadlineSeconds"] >= 0
    if scope == "NotTerminating":
        return spec.get("activeDeadlineSeconds") is None or spec["activeDeadlineSeconds"] < 0
    if scope == "BestEffort":
        return _best_effort(pod)
    if scope == "NotBestEffort":
        return not _best_effort(pod)
    if scope == "CrossNamespacePodAffinity":
        return _cross_namespace_affinity(pod)
    if scope == "PriorityClass":
        # A label selector over {"PriorityClass": <name>}: the key always exists.
        name = spec.get("priorityClassName") or ""
        values = selector.get("values") or []
        return {"Exists": True, "DoesNotExist": False, "In": name in values,
                "NotIn": name not in values}.get(op, False)
    return False


def scope_selectors(rq: dict) -> list[dict]:
    spec = rq.get("spec") or {}
    out = [{"scopeName": s, "operator": "Exists"} for s in spec.get("scopes") or []]
    out += ((spec.get("scopeSelector") or {}).get("matchExpressions") or [])
    return out


# -- evaluators --------------------------------------------------------------------

@dataclass(frozen=True)
class Evaluator:
    """What quota knows about one group/resource (upstream's quota.Evaluator)."""

    group: str
    resource: str
    operations: tuple[str, ...] = ("CREATE",)

    @property
    def count_name(self) -> str:
        return f"count/{self.resource}" + (f".{self.group}" if self.group else "")

    def handles(self, op: str) -> bool:
        return op in self.operations

    def matching_resources(self, names: Iterable[str]) -> list[str]:
        own = {self.count_name}
        if not self.group and self.resource in _LEGACY_COUNTS:
            own.add(self.resource)
        return sorted(n for n in names if n in own)

    def matches_scope(self, selector: dict, obj: dict) -> bool:
        return False  # scopes only ever select pods

    def matches(self, rq: dict, obj: dict) -> bool:
        """The quota limits something this object uses and its scopes select it."""
        hard = (rq.get("status") or {}).get("hard") or {}
        return bool(self.matching_resources(hard)) and \
            all(self.matches_scope(s, obj) for s in scope_selectors(rq))

    def constraints(self, required: list[str], obj: dict) -> str | None:
        return None

    def usage(self, obj: dict, now: datetime | None = None) -> ResourceList:
        out = {self.count_name: _one()}
        if not self.group and self.resource in _LEGACY_COUNTS:
            out[self.resource] = _one()
        return out


_LEGACY_COUNTS = frozenset({"configmaps", "secrets", "replicationcontrollers",
                            "resourcequotas"})


class PodEvaluator(Evaluator):
    def matching_resources(self, names):
        return sorted(n for n in names if n in _POD_RESOURCES or n.startswith(_HUGEPAGES) or
                      n.startswith(REQUESTS_PREFIX + _HUGEPAGES) or
                      (n.startswith(REQUESTS_PREFIX) and _extended(n[len(REQUESTS_PREFIX):])))

    def matches_scope(self, selector, obj):
        return _pod_scope(selector, obj)

    def constraints(self, required, obj):
        needed = set(required) & _MUST_SPECIFY
        missing: dict[str, set[str]] = {}
        spec = obj.get("spec") or {}
        for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            have = _compute_usage(_container_list(c, "requests"), _container_list(c, "limits"))
            for name in needed - set(have):
                missing.setdefault(name, set()).add(c.get("name", ""))
        if not missing:
            return None
        return "must specify " + "; ".join(
            f"{name} for: {','.join(sorted(missing[name]))}" for name in sorted(missing))

    def usage(self, obj, now=None):
        out = {self.count_name: _one()}
        if not pod_counts(obj, now):
            return out
        return add(out, _compute_usage(pod_requests(obj), pod_limits(obj)))


class ServiceEvaluator(Evaluator):
    def matching_resources(self, names):
        own = {self.count_name, "services", "services.nodeports", "services.loadbalancers"}
        return sorted(n for n in names if n in own)

    def usage(self, obj, now=None):
        spec = obj.get("spec") or {}
        ports = len(spec.get("ports") or [])
        out = {self.count_name: _one(), "services": _one(),
               "services.loadbalancers": Q(ZERO), "services.nodeports": Q(ZERO)}
        kind = spec.get("type") or "ClusterIP"
        if kind == "NodePort":
            out["services.nodeports"] = Q(Decimal(ports))
        elif kind == "LoadBalancer":
            if spec.get("allocateLoadBalancerNodePorts") is not False:
                out["services.nodeports"] = Q(Decimal(ports))
            out["services.loadbalancers"] = _one()
        return out


STORAGE_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"


class PVCEvaluator(Evaluator):
    def matching_resources(self, names):
        own = {self.count_name, "persistentvolumeclaims", "requests.storage"}
        return sorted(n for n in names if n in own or (
            STORAGE_CLASS_SUFFIX in n and n.endswith(("/requests.storage",
                                                      "/persistentvolumeclaims"))))

    def usage(self, obj, now=None):
        spec = obj.get("spec") or {}
        out = {self.count_name: _one(), "persistentvolumeclaims": _one()}
        storage = parse_list((spec.get("resources") or {}).get("requests")).get("storage")
        cls = spec.get("storageClassName") or \
            ((obj.get("metadata") or {}).get("annotations") or {}).get(
                "volume.beta.kubernetes.io/storage-class", "")
        if cls:
            out[cls + STORAGE_CLASS_SUFFIX + "persistentvolumeclaims"] = _one()
        if storage is not None:
            out["requests.storage"] = storage
            if cls:
                out[cls + STORAGE_CLASS_SUFFIX + "requests.storage"] = storage
        return out


_EVALUATORS = {
    ("", "pods"): PodEvaluator("", "pods"),
    ("", "services"): ServiceEvaluator("", "services", ("CREATE", "UPDATE")),
    ("", "persistentvolumeclaims"): PVCEvaluator("", "persistentvolumeclaims",
                                                 ("CREATE", "UPDATE")),
}


def evaluator(group: str, resource: str) -> Evaluator:
    return _EVALUATORS.get((group, resource)) or Evaluator(group, resource)


def resource_of(name: str) -> tuple[str, str] | None:
    """The (group, resource) whose objects a quota resource name counts, for the
    controller: ``count/deployments.apps`` -> ("apps", "deployments")."""
    if name.startswith("count/"):
        plural, _, group = name[len("count/"):].partition(".")
        return group, plural
    if name in _LEGACY_COUNTS:
        return "", name
    for (group, plural), ev in _EVALUATORS.items():
        if ev.matching_resources([name]):
            return group, plural
    return None


def calculate_usage(ev: Evaluator, rq: dict, hard_names: list[str], objects: Iterable[dict],
                    now: datetime | None = None) -> ResourceList:
    """The usage of ``hard_names`` over ``objects`` of one resource that the quota's
    scopes select (UsageStats); zero for names nothing uses."""
    names = ev.matching_resources(hard_names)
    used: ResourceList = {n: Q(ZERO) for n in names}
    selectors = scope_selectors(rq)
    for obj in objects:
        if selectors and not all(ev.matches_scope(s, obj) for s in selectors):
            continue
        used = add(used, mask(ev.usage(obj, now), names))
    return used
