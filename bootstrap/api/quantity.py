"""apimachinery's resource.Quantity: parsing and the canonical error, shared by the
API server's validation, the scheduler and the kubelet.

Syntax (resource.ParseQuantity): an optional sign, a decimal number, then a binary
suffix (Ki..Ei), a decimal SI suffix (n, u, m, k, M, G, T, P, E) or an exponent
(e3, E-2). Values are exact (Decimal); callers round as Quantity.Value() and
MilliValue() do (up).
"""

from __future__ import annotations

import functools
import math
import re
from decimal import Decimal, InvalidOperation

REGEX = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
ERROR = f"quantities must match the regular expression '{REGEX}'"
_SYNTAX = re.compile(r"(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
                     r"(?:(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])|[eE](?P<exp>[+-]?[0-9]+))?")
_MULTIPLIERS = {
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), None: Decimal(1),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
}


class QuantityError(ValueError):
    def __init__(self, value=None):
        super().__init__(ERROR)
        self.value = value


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> Decimal:
    m = _SYNTAX.fullmatch(text)
    if m is None:
        raise QuantityError(text)
    try:
        number = Decimal(m["number"])
    except InvalidOperation:
        raise QuantityError(text) from None
    if m["exp"] is not None:
        return number.scaleb(int(m["exp"]))
    return number * _MULTIPLIERS[m["suffix"]]


def parse(value) -> Decimal:
    """A Quantity from its JSON form (a string, or a number as JSON allows)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise QuantityError(value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise QuantityError(value)
        return Decimal(str(value))
    return _parse(value)


def is_valid(value) -> bool:
    try:
        parse(value)
    except QuantityError:
        return False
    return True


def value(q) -> int:
    """Quantity.Value(): whole units, rounded up."""
    return math.ceil(parse(q))


def milli_value(q) -> int:
    """Quantity.MilliValue(): thousandths, rounded up."""
    return math.ceil(parse(q) * 1000)
