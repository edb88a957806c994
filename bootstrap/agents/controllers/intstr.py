"""IntOrString arithmetic (apimachinery's intstr.GetScaledValueFromIntOrPercent)."""

from __future__ import annotations

import math


def scaled_value(value: int | str | None, total: int, round_up: bool) -> int:
    """An int as is; "25%" of ``total``, rounded up or down as the caller's upstream
    counterpart does (surge up, unavailable down)."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not text.endswith("%"):
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"invalid value for IntOrString: invalid type: string is not a "
                             f"percentage: {value!r}") from None
    try:
        percent = int(text[:-1])
    except ValueError:
        raise ValueError(f"invalid value for IntOrString: invalid value {value!r}") from None
    scaled = percent * total / 100
    return math.ceil(scaled) if round_up else math.floor(scaled)


def is_percent(value) -> bool:
    return isinstance(value, str) and value.strip().endswith("%")
