"""Ansible's ``serial``: how many hosts a rolling play changes at once.

kubespray's upgrade-cluster.yml upgrades its workers with
``serial: "{{ serial | default('20%') }}"``; ``bootstrap cluster upgrade`` takes
the same value from ``--serial`` or the inventory's ``serial`` variable (default
1). A value is a number of hosts (1 or more) or a percentage of the hosts
(1%-100%); as Ansible does, a percentage is rounded down with at least one host
per batch (``max(1, floor(hosts * percent / 100))``, in integers: Ansible's float
arithmetic can land one below, e.g. 29% of 100).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["DEFAULT_SERIAL", "KUBESPRAY_DEFAULT", "Serial", "parse_serial"]

KUBESPRAY_DEFAULT = "20%"  # upgrade-cluster.yml's default; ours is DEFAULT_SERIAL
EXPECTED = "a number of hosts (1 or more) or a percentage of them (1% to 100%)"


@dataclass(frozen=True)
class Serial:
    count: int | None = None  # hosts per batch
    percent: int | None = None  # or a percentage of the hosts

    def batch_size(self, hosts: int) -> int:
        """Hosts per batch when ``hosts`` hosts are to be changed."""
        if self.percent is not None:
            return max(1, hosts * self.percent // 100)
        return self.count or 1

    def __str__(self) -> str:
        return f"{self.percent}%" if self.percent is not None else str(self.count)


DEFAULT_SERIAL = Serial(count=1)
_COUNT = re.compile(r"\d+")
_PERCENT = re.compile(r"(\d+)\s*%")


def parse_serial(value: object) -> Serial:
    """``2``, ``"2"``, ``"20%"``; anything else raises ValueError saying why."""
    if isinstance(value, Serial):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{value!r} is not {EXPECTED}")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"{value} is not {EXPECTED}")
        return Serial(count=value)
    text = value.strip()
    if _COUNT.fullmatch(text):
        count = int(text)
        if count < 1:
            raise ValueError(f"{value!r} is not {EXPECTED}")
        return Serial(count=count)
    m = _PERCENT.fullmatch(text)
    if m:
        percent = int(m.group(1))
        if not 1 <= percent <= 100:
            raise ValueError(f"{value!r} is not {EXPECTED}")
        return Serial(percent=percent)
    raise ValueError(f"{value!r} is not {EXPECTED}")
