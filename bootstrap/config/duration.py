"""Go duration strings, as kubeadm's metav1.Duration reads and writes them.

kubeadm fields such as ``certificateValidityPeriod`` hold Go durations
("8760h0m0s"); Go has no day unit, so neither do we: "365d" is rejected with a
hint rather than guessed at.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

# Go's units, in nanoseconds. timedelta keeps microseconds, so anything finer is
# rounded; certificate lifetimes never need it.
_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)([a-zA-Z\u00b5\u03bc]+)")


def parse_duration(text: str) -> timedelta:
    """Parse like Go's ``time.ParseDuration``; raises ValueError with a hint."""
    s = text.strip()
    if not s:
        raise ValueError("empty duration")
    sign = 1
    if s[0] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return timedelta(0)
    pos = 0
    total_ns = Decimal(0)
    while pos < len(s):
        m = _PART.match(s, pos)
        if not m:
            raise ValueError(f"{text!r} is not a duration (use Go syntax like 8760h0m0s or 90m)")
        number, unit = m.groups()
        if unit not in _UNITS_NS:
            hint = " (Go durations have no days: 365d is 8760h)" if unit == "d" else ""
            raise ValueError(f"{text!r} has unknown unit {unit!r}; use h, m, s, ms, us or ns{hint}")
        total_ns += Decimal(number) * _UNITS_NS[unit]
        pos = m.end()
    if pos == 0:
        raise ValueError(f"{text!r} is not a duration (use Go syntax like 8760h0m0s or 90m)")
    micros = int((total_ns / 1000).to_integral_value())
    return sign * timedelta(microseconds=micros)


def _trim(num: str) -> str:
    return num.rstrip("0").rstrip(".") if "." in num else num


def format_duration(td: timedelta) -> str:
    """Format like Go's ``Duration.String()`` ("8760h0m0s", "1m30s", "500ms")."""
    micros = (td.days * 86400 + td.seconds) * 1_000_000 + td.microseconds
    if micros == 0:
        return "0s"
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    if micros < 1_000:
        return f"{sign}{micros}\u00b5s"
    if micros < 1_000_000:
        return f"{sign}{_trim(f'{micros / 1000:.3f}')}ms"
    hours, rest = divmod(micros, 3600 * 1_000_000)
    minutes, rest = divmod(rest, 60 * 1_000_000)
    seconds = _trim(f"{rest // 1_000_000}.{rest % 1_000_000:06d}")
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{sign}{minutes}m{seconds}s"
    return f"{sign}{seconds}s"
