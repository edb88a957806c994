"""Namespaced lists for admission plugins (LimitRanger, ResourceQuota) from the watch
cache, with upstream's live lookup: when the cache has none, etcd is asked once and
the answer kept for 30 s per namespace, so an object created a moment ago is not
missed while creates in namespaces without any stay off etcd."""

from __future__ import annotations

import time
from collections.abc import Callable

TTL = 30.0
MAX_ENTRIES = 10_000


class LiveLookup:
    def __init__(self, plural: str, *, ttl: float = TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.plural = plural
        self.ttl = ttl
        self.clock = clock
        self._live: dict[str, tuple[float, list[dict]]] = {}

    async def list(self, store, namespace: str) -> list[dict]:
        items = await store.list(self.plural, namespace)
        if items:
            return items
        now = self.clock()
        hit = self._live.get(namespace)
        if hit is not None and hit[0] > now:
            return hit[1]
        items = await store.list_fresh(self.plural, namespace)
        if len(self._live) >= MAX_ENTRIES:
            self._live.clear()
        self._live[namespace] = (now + self.ttl, items)
        return items
