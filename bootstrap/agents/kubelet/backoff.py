"""Per-key exponential back-off with an injected clock (client-go util/flowcontrol.Backoff).

The kubelet keeps two: container restarts (CrashLoopBackOff, 10 s doubling to
5 min) and image pulls (ImagePullBackOff, same bounds). As upstream's doBackOff:
the first failure restarts at once and starts the back-off; a later failure
inside the current window waits for it to pass, then doubles it; an entry idle
for longer than the maximum starts over from the initial delay.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

INITIAL = 10.0
MAXIMUM = 300.0


@dataclass
class _Entry:
    backoff: float
    last_update: float


class Backoff:
    def __init__(self, initial: float = INITIAL, maximum: float = MAXIMUM,
                 clock: Callable[[], float] = time.time):
        self.initial = initial
        self.maximum = maximum
        self.clock = clock
        self._entries: dict[str, _Entry] = {}

    def _expired(self, entry: _Entry, event_time: float) -> bool:
        return event_time - entry.last_update > self.maximum

    def get(self, key: str) -> float:
        entry = self._entries.get(key)
        return entry.backoff if entry else 0.0

    def next(self, key: str, event_time: float) -> float:
        """Record a (re)start after the event at ``event_time``; returns the new window."""
        entry = self._entries.get(key)
        now = self.clock()
        if entry is None or self._expired(entry, event_time):
            entry = self._entries[key] = _Entry(self.initial, now)
        else:
            entry.backoff = min(entry.backoff * 2, self.maximum)
            entry.last_update = now
        return entry.backoff

    def in_backoff_since(self, key: str, event_time: float) -> bool:
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, event_time):
            return False
        return self.clock() - event_time < entry.backoff

    def in_backoff_since_update(self, key: str) -> bool:
        entry = self._entries.get(key)
        return entry is not None and self.clock() - entry.last_update < entry.backoff

    def remaining(self, key: str, event_time: float) -> float:
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        return max(0.0, entry.backoff - (self.clock() - event_time))

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)

    def gc(self) -> None:
        """Forget entries idle for twice the maximum (upstream's GC)."""
        now = self.clock()
        for key in [k for k, e in self._entries.items() if now - e.last_update > 2 * self.maximum]:
            del self._entries[key]


def format_duration(seconds: float) -> str:
    """Go's time.Duration String for whole seconds and minutes (10s, 1m20s, 5m0s)."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    return f"{s // 60}m{s % 60}s"
