"""Watch cache: one etcd watch per resource, serving lists at RV "0" and watches.

The cache lists the resource's prefix at revision R, then watches from R+1. It
keeps the current objects and a bounded window of recent events. A client watch
from resourceVersion N replays the window's events after N (410 Expired when N
is older than the window) and then follows live events. Because list
resourceVersions are etcd's global revision, a quiet resource's cache may trail
them: ``sync_to`` asks etcd for a progress notification, which etcd sends once
this stream has delivered everything up to that revision. etcd before 3.4.25 may
send it ahead of pending events (etcd-io/etcd#15220), so each watcher drops events
at or below its start revision and lists other than RV=0 are read from etcd.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from bootstrap.api.errors import APIError, too_large_resource_version, too_old_resource_version
from bootstrap.api.resources import Resource

from .etcd import PROGRESS, Compacted, Etcd, WatchEvent

log = logging.getLogger(__name__)

WINDOW = 10000          # events kept per resource for watch resumption
WATCHER_QUEUE = 10000   # a watcher this far behind is closed, as upstream does


@dataclass(slots=True)
class Event:
    type: str            # ADDED, MODIFIED, DELETED
    rv: int
    obj: dict
    prev: dict | None


class Watcher:
    """One client's view of the cache. The initial snapshot (or the replayed window)
    is a list of references to events the cache already holds, walked lazily as
    upstream's watchCacheInterval is, so a watch over 50,000 objects costs no queue
    slots; only live events queue, bounded, and only those the filter can see (the
    object or its previous state matches), so a narrow watch on a busy resource
    holds nothing it will not send. A watcher that falls WATCHER_QUEUE events behind
    is closed, as upstream closes a blocked watcher."""

    def __init__(self, cache: WatchCache, filt: Callable[[dict], bool], since: int = 0):
        self.cache = cache
        self.filter = filt
        # Events at or below the start revision are already in the client's list;
        # a late one (see sync_to) must not be replayed.
        self.since = since
        self.initial: collections.deque[Event] = collections.deque()
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=WATCHER_QUEUE)
        self.closed = False

    def relevant(self, ev: Event) -> bool:
        return self.filter(ev.obj) or (ev.prev is not None and self.filter(ev.prev))

    def push(self, item) -> None:
        if self.closed or (item is not None and item.rv <= self.since):
            return
        if item is not None and not self.relevant(item):
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.closed = True
            self.initial.clear()
            self.queue = asyncio.Queue(maxsize=1)
            self.queue.put_nowait(None)

    def pending(self) -> bool:
        return bool(self.initial) or not self.queue.empty()

    async def get(self) -> Event | None:
        """The next event to send (None: the stream must end)."""
        if self.initial and not self.closed:
            return self.initial.popleft()
        return await self.queue.get()

    def close(self) -> None:
        self.cache.watchers.discard(self)


class WatchCache:
    def __init__(self, resource: Resource, etcd: Etcd, decode: Callable[[str, bytes, int], dict]):
        self.resource = resource
        self.etcd = etcd
        self.decode = decode
        self.prefix = resource.etcd_prefix + "/"
        self.objects: dict[str, dict] = {}
        self.events: collections.deque[Event] = collections.deque(maxlen=WINDOW)
        self.rev = 0
        # The revision the objects reflect: the last event applied. ``rev`` may be
        # ahead of it after a progress notification.
        self.applied = 0
        self.oldest = 0          # watches from below this revision get 410
        self.watchers: set[Watcher] = set()
        self.ready = asyncio.Event()
        self._progress_waiters: list[tuple[int, asyncio.Future]] = []
        self._task: asyncio.Task | None = None
        self._requests: asyncio.Queue = asyncio.Queue()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"watchcache-{self.resource.plural}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    async def _relist(self) -> None:
        objects: dict[str, dict] = {}
        kvs, rev, more = await self.etcd.range(self.prefix, limit=0)
        for kv in kvs:
            try:
                objects[kv.key] = self.decode(kv.key, kv.value, kv.mod_revision)
            except Exception:  # a corrupt or undecryptable value must not stop the cache
                log.exception("cannot decode %s", kv.key)
        self.objects = objects
        self.rev = self.applied = rev
        self.oldest = rev
        self.events.clear()
        # Existing watchers cannot be continued across a gap; clients re-watch.
        for w in list(self.watchers):
            w.push(None)
        self.watchers.clear()

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            try:
                await self._relist()
                self.ready.set()
                backoff = 0.2
                async for item in self.etcd.watch(self.prefix, self.rev + 1,
                                                  self._requests):
                    if isinstance(item, int):
                        self._advance(item)
                    else:
                        self._apply(item)
            except asyncio.CancelledError:
                raise
            except (Compacted, APIError, Exception) as exc:  # reconnect on any stream failure
                log.warning("watch cache %s restarting: %s", self.resource.plural, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5)

    def _advance(self, rev: int) -> None:
        if rev > self.rev:
            self.rev = rev
        still = []
        for want, fut in self._progress_waiters:
            if fut.done():
                continue
            if self.rev >= want:
                if not fut.done():
                    fut.set_result(None)
            else:
                still.append((want, fut))
        self._progress_waiters = still

    def _apply(self, batch: list[WatchEvent]) -> None:
        for ev in batch:
            prev = self.objects.get(ev.key)
            if ev.type == "PUT":
                try:
                    obj = self.decode(ev.key, ev.value, ev.mod_revision)
                except Exception:
                    log.exception("cannot decode %s", ev.key)
                    continue
                self.objects[ev.key] = obj
                event = Event("MODIFIED" if prev is not None else "ADDED", ev.mod_revision,
                              obj, prev)
            else:
                if prev is None:
                    continue
                del self.objects[ev.key]
                # A deleted object is reported at the deletion's revision, as upstream.
                obj = dict(prev)
                obj["metadata"] = dict(prev["metadata"], resourceVersion=str(ev.mod_revision))
                event = Event("DELETED", ev.mod_revision, obj, prev)
            if len(self.events) == self.events.maxlen:
                self.oldest = self.events[0].rv
            self.events.append(event)
            self.applied = ev.mod_revision
            for w in list(self.watchers):
                w.push(event)
        if batch:
            self._advance(batch[-1].mod_revision)

    async def sync_to(self, rev: int, timeout: float = 3.0) -> None:
        """Wait until the cache has seen everything up to ``rev``."""
        await self.ready.wait()
        if self.rev >= rev:
            return
        fut = asyncio.get_running_loop().create_future()
        self._progress_waiters.append((rev, fut))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # etcd ignores a progress request while the stream is catching up, so ask again.
        while not fut.done():
            self._requests.put_nowait(PROGRESS)
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                await asyncio.wait_for(asyncio.shield(fut), min(0.25, left))
            except TimeoutError:
                continue
        if not fut.done():
            fut.cancel()
            # Upstream's watch cache asks for a retry after 1 s (resourceVersionTooHighRetrySeconds).
            raise too_large_resource_version(rev, self.rev, retry_after=1)

    def list(self) -> tuple[list[dict], int]:
        return list(self.objects.values()), self.applied

    def get(self, key: str) -> dict | None:
        return self.objects.get(key)

    def watch(self, since: int | None, filt: Callable[[dict], bool]) -> Watcher:
        """Register a watcher; ``since`` None means: current state as ADDED, then live.

        Runs without awaiting, so the snapshot and the registration are atomic.
        """
        w = Watcher(self, filt)
        if since is None:
            w.initial.extend(Event("ADDED", int(obj["metadata"]["resourceVersion"]), obj, None)
                             for obj in self.objects.values() if filt(obj))
            w.since = self.applied
        else:
            if since < self.oldest:
                raise too_old_resource_version(since, self.oldest)
            w.since = since
            w.initial.extend(ev for ev in self.events if ev.rv > since and w.relevant(ev))
        self.watchers.add(w)
        return w


def dumps(obj) -> bytes:
    return orjson.dumps(obj)
