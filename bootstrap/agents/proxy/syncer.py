"""Upstream's BoundedFrequencyRunner: run the sync when asked, but at most once
per ``min_interval`` (bursts of informer events collapse into one sync) and at
least once per ``max_interval`` (then as a full resync)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class SyncRunner:
    def __init__(self, fn: Callable[[bool], Awaitable[None]], min_interval: float,
                 max_interval: float, *, clock: Callable[[], float] = time.monotonic):
        self.fn = fn
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.clock = clock
        self._wanted = asyncio.Event()
        self._last_run = float("-inf")
        self._last_full = float("-inf")
        self.runs = 0

    def request(self) -> None:
        self._wanted.set()

    async def run(self) -> None:
        while True:
            until_full = self._last_full + self.max_interval - self.clock()
            if until_full > 0:
                try:
                    await asyncio.wait_for(self._wanted.wait(), until_full)
                except TimeoutError:
                    pass
            wait = self._last_run + self.min_interval - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)
            self._wanted.clear()
            full = self.clock() - self._last_full >= self.max_interval
            self._last_run = self.clock()
            try:
                await self.fn(full)
                if full:
                    # Counted from the end: a full resync slower than the period
                    # (5,000 Services on iptables-nft) still leaves room for the
                    # partial syncs that carry changes.
                    self._last_full = self.clock()
            except asyncio.CancelledError:
                raise
            except Exception as exc:   # retried at the next interval, as upstream
                log.error("sync failed: %s", exc)
                self._wanted.set()
            self.runs += 1
