"""Resource quantities and pod requests as the scheduler counts them.

Quantities follow apimachinery's resource.Quantity syntax (decimal SI and binary
suffixes, exponents); cpu is counted in millicores and everything else in units,
both rounded up as Quantity.MilliValue()/Value() do. Pod requests follow
component-helpers' PodRequests: the sum of the app containers (plus restartable
init containers, which run alongside), or the largest init container if that is
bigger, plus the pod overhead.
"""

from __future__ import annotations

import functools
import math
from decimal import Decimal, InvalidOperation

CPU = "cpu"
MEMORY = "memory"
EPHEMERAL_STORAGE = "ephemeral-storage"
PODS = "pods"

# Requests the scoring plugins assume for a container that names none
# (upstream's DefaultMilliCPURequest / DefaultMemoryRequest), so best-effort pods
# still spread instead of piling onto one node.
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024

_SUFFIXES = {
    "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1,
    "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15, "E": 10 ** 18,
}


class QuantityError(ValueError):
    pass


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> Decimal:
    s = text.strip()
    if not s:
        raise QuantityError(f"quantities must match the regular expression: {text!r}")
    for suffix in ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"):
        if s.endswith(suffix):
            number, mult = s[:-2], _SUFFIXES[suffix]
            break
    else:
        last = s[-1]
        if last in "numkMGTPE" and not _is_exponent(s):
            number, mult = s[:-1], _SUFFIXES[last]
        else:
            number, mult = s, 1
    try:
        value = Decimal(number)
    except InvalidOperation:
        raise QuantityError(f"quantities must match the regular expression: {text!r}") from None
    if not value.is_finite():
        raise QuantityError(f"quantities must match the regular expression: {text!r}")
    return value * mult


def _is_exponent(s: str) -> bool:
    # "1E3" is an exponent, "1E" is exa: an E followed by digits is an exponent.
    i = max(s.rfind("e"), s.rfind("E"))
    return 0 < i < len(s) - 1 and s[i + 1:].lstrip("+-").isdigit()


def parse_quantity(value) -> Decimal:
    if isinstance(value, bool):
        raise QuantityError(f"invalid quantity {value!r}")
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    return _parse(str(value))


def milli_value(value) -> int:
    return math.ceil(parse_quantity(value) * 1000)


def int_value(value) -> int:
    return math.ceil(parse_quantity(value))


def to_units(name: str, value) -> int:
    """A quantity in the unit the scheduler counts ``name`` in."""
    return milli_value(value) if name == CPU else int_value(value)


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
