"""Pod requests as the scheduler counts them.

Quantities are bootstrap.api.quantity's (apimachinery's resource.Quantity); cpu
is counted in millicores and everything else in units, both rounded up as
Quantity.MilliValue()/Value() do. Pod requests follow
component-helpers' PodRequests: the sum of the app containers (plus restartable
init containers, which run alongside), or the largest init container if that is
bigger, plus the pod overhead.
"""

from __future__ import annotations

from bootstrap.api import quantity

CPU = "cpu"
MEMORY = "memory"
EPHEMERAL_STORAGE = "ephemeral-storage"
PODS = "pods"

# Requests the scoring plugins assume for a container that names none
# (upstream's DefaultMilliCPURequest / DefaultMemoryRequest), so best-effort pods
# still spread instead of piling onto one node.
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024


def to_units(name: str, value) -> int:
    """A quantity in the unit the scheduler counts ``name`` in."""
    return quantity.milli_value(value) if name == CPU else quantity.value(value)


def resource_list(rl: dict | None) -> dict[str, int]:
    return {k: to_units(k, v) for k, v in (rl or {}).items()}


def _add(into: dict[str, int], other: dict[str, int]) -> None:
    for k, v in other.items():
        into[k] = into.get(k, 0) + v


def _max(into: dict[str, int], other: dict[str, int]) -> None:
    for k, v in other.items():
        if v > into.get(k, 0):
            into[k] = v


def _container_requests(c: dict, non_zero: bool) -> dict[str, int]:
    req = resource_list((c.get("resources") or {}).get("requests"))
    if non_zero:
        req.setdefault(CPU, DEFAULT_MILLI_CPU)
        req.setdefault(MEMORY, DEFAULT_MEMORY)
    return req


def pod_requests(spec: dict, *, non_zero: bool = False) -> dict[str, int]:
    """Effective requests of a pod spec, in scheduler units."""
    reqs: dict[str, int] = {}
    for c in spec.get("containers") or []:
        _add(reqs, _container_requests(c, non_zero))
    restartable: dict[str, int] = {}
    init_max: dict[str, int] = {}
    for c in spec.get("initContainers") or []:
        creq = _container_requests(c, non_zero)
        if c.get("restartPolicy") == "Always":
            # A sidecar keeps running: it adds to the app containers and to every
            # init container that starts after it.
            _add(reqs, creq)
            _add(restartable, creq)
            step = dict(restartable)
        else:
            step = dict(creq)
            _add(step, restartable)
        _max(init_max, step)
    _max(reqs, init_max)
    _add(reqs, resource_list(spec.get("overhead")))
    return reqs
