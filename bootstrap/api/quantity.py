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


# Formats (resource.Format): how Quantity.String() writes a value back.
BINARY_SI, DECIMAL_SI, DECIMAL_EXPONENT = "BinarySI", "DecimalSI", "DecimalExponent"
_DECIMAL_SUFFIXES = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T",
                     15: "P", 18: "E"}
_BINARY_SUFFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")


def format_of(value) -> str:
    """The format a parsed Quantity keeps: binary suffixes give BinarySI, an exponent
    DecimalExponent, anything else (numbers included) DecimalSI."""
    if isinstance(value, str):
        m = _SYNTAX.fullmatch(value)
        if m is not None and m["suffix"] in _BINARY_SUFFIXES[1:]:
            return BINARY_SI
        if m is not None and m["exp"] is not None:
            return DECIMAL_EXPONENT
    return DECIMAL_SI


def _decimal_parts(d: Decimal) -> tuple[int, int]:
    """(mantissa, exponent) with trailing zeros removed and the exponent brought down
    to a multiple of 3, after rounding up to nano units (AsCanonicalBytes)."""
    nanos = math.ceil(abs(d) * 10 ** 9) * (1 if d >= 0 else -1)
    if nanos == 0:
        return 0, 0
    exponent = -9
    while nanos % 10 == 0:
        nanos //= 10
        exponent += 1
    while exponent % 3:
        nanos *= 10
        exponent -= 1
    return nanos, exponent


def to_string(d: Decimal, fmt: str = DECIMAL_SI) -> str:
    """Quantity.String(): the canonical text of ``d`` in format ``fmt``."""
    if fmt == BINARY_SI and not (-1024 < d < 1024) and d == d.to_integral_value():
        amount, exponent = int(d), 0
        while amount % 1024 == 0 and exponent < len(_BINARY_SUFFIXES) - 1:
            amount //= 1024
            exponent += 1
        return f"{amount}{_BINARY_SUFFIXES[exponent]}"
    mantissa, exponent = _decimal_parts(d)
    if fmt == DECIMAL_EXPONENT:
        return f"{mantissa}e{exponent}" if exponent else str(mantissa)
    while exponent > 18:
        mantissa *= 1000
        exponent -= 3
    return f"{mantissa}{_DECIMAL_SUFFIXES[exponent]}"


def canonical(value) -> str:
    """The text Go's API server writes back for a quantity it decoded."""
    return to_string(parse(value), format_of(value))


def parse_or_none(value) -> Decimal | None:
    """``parse`` for checks that report a bad quantity elsewhere (validation does)."""
    try:
        return parse(value)
    except QuantityError:
        return None


def canonical_or_text(value) -> str:
    """``canonical`` for messages: an unparsable value is shown as given."""
    try:
        return canonical(value)
    except QuantityError:
        return str(value)
