"""List-then-watch informer with a local cache, as client-go's reflector + indexer.

``run()`` lists (paginated) to fill the cache and learn a resourceVersion, then
watches from it. A dropped stream or a server restart resumes the watch from the
last resourceVersion seen (events and bookmarks advance it); 410 Expired (the
revision was compacted) or "Too large resource version" (etcd is behind it: restored
from a snapshot) lists again from scratch, as client-go's reflector does, and the
cache is reconciled against the new list so handlers see the adds, updates and
deletes they missed.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections import deque
from collections.abc import Callable
from typing import Any

import aiohttp

from bootstrap.api.cache import Indexer, IndexFunc, meta_key
from bootstrap.api.client import Client, ResourceRef, _resource
from bootstrap.api.errors import APIError, is_too_large_resource_version

log = logging.getLogger(__name__)

Handler = Callable[..., Any]


object_key = meta_key  # ``namespace/name`` (or ``name``), client-go's key


class _Listener:
    """One handler's buffer and delivery task (client-go's processorListener): the
    informer appends and never waits, so a slow handler delays only itself."""

    def __init__(self, name: str, on_add: Handler | None, on_update: Handler | None,
                 on_delete: Handler | None):
        self.name = name
        self.fns = (on_add, on_update, on_delete)
        self.pending: deque[tuple] = deque()
        self.synced = asyncio.Event()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    def push(self, *item) -> None:
        self.pending.append(item)
        if self._wake is not None:
            self._wake.set()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._wake.set()
            self._task = asyncio.create_task(self._run(), name=f"listener-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.pending:
                kind, *args = self.pending.popleft()
                if kind == _SYNCED:
                    self.synced.set()
                    continue
                fn = self.fns[kind]
                if fn is None:
                    continue
                try:
                    result = fn(*args)
                    if inspect.isawaitable(result):
                        await result
                except Exception:  # a handler bug must not stop its listener
                    log.exception("informer %s: handler failed", self.name)


ADD, UPDATE, DELETE, _SYNCED = 0, 1, 2, 3


class Informer:
    def __init__(self, client: Client, resource: ResourceRef, namespace: str | None = None,
                 label_selector: str | None = None, field_selector: str | None = None, *,
                 page_size: int = 500, min_watch_timeout: int = 300,
                 backoff_max: float = 30.0, resync: float = 0.0):
        self.client = client
        self.resource = _resource(resource)
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.page_size = page_size
        self.resync = resync
        self._min_watch_timeout = min_watch_timeout
        self._backoff_max = backoff_max
        self.indexer = Indexer()
        self._listeners: list[_Listener] = []
        self._synced = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._resync_task: asyncio.Task | None = None
        self.resource_version: str = ""
        # Counters that tests and metrics read; never used for control flow.
        self.lists = 0
        self.watches = 0

    # handlers and cache -----------------------------------------------------------

    def add_handler(self, on_add: Handler | None = None, on_update: Handler | None = None,
                    on_delete: Handler | None = None) -> None:
        """on_add(obj), on_update(old, new), on_delete(obj); plain or async callables.
        Each handler gets its own buffered listener; one added after the informer
        synced first receives on_add for every cached object."""
        listener = _Listener(self.resource.plural, on_add, on_update, on_delete)
        self._listeners.append(listener)
        if self._synced.is_set():
            for obj in self.indexer.list():
                listener.push(ADD, obj)
            listener.push(_SYNCED)
        if self._task is not None:
            listener.start()

    def on_add(self, fn: Handler) -> Handler:
        self.add_handler(on_add=fn)
        return fn

    def on_update(self, fn: Handler) -> Handler:
        self.add_handler(on_update=fn)
        return fn

    def on_delete(self, fn: Handler) -> Handler:
        self.add_handler(on_delete=fn)
        return fn

    def add_indexers(self, indexers: dict[str, IndexFunc]) -> None:
        self.indexer.add_indexers(indexers)

    @property
    def has_synced(self) -> bool:
        """The cache holds the first list and every handler has received it."""
        return self._synced.is_set() and all(li.synced.is_set() for li in self._listeners)

    async def wait_synced(self, timeout: float | None = None) -> None:
        async def synced() -> None:
            await self._synced.wait()
            for listener in list(self._listeners):
                await listener.synced.wait()
        await asyncio.wait_for(synced(), timeout)

    def get(self, name: str, namespace: str | None = None) -> dict | None:
        key = f"{namespace}/{name}" if namespace and self.resource.namespaced else name
        return self.indexer.get(key)

    def list(self, namespace: str | None = None) -> list[dict]:
        return self.indexer.list(namespace)

    def keys(self) -> list[str]:
        return self.indexer.keys()

    def _deliver(self, *item) -> None:
        for listener in self._listeners:
            listener.push(*item)

    # lifecycle --------------------------------------------------------------------

    def start(self) -> asyncio.Task:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"informer-{self.resource.plural}")
            for listener in self._listeners:
                listener.start()
            if self.resync > 0:
                self._resync_task = asyncio.create_task(
                    self._resync_loop(), name=f"resync-{self.resource.plural}")
        return self._task

    @property
    def started(self) -> bool:
        return self._task is not None

    async def stop(self) -> None:
        tasks = [t for t in (self._task, self._resync_task) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = self._resync_task = None
        for listener in self._listeners:
            await listener.stop()

    async def _resync_loop(self) -> None:
        """client-go's resync: every period, each cached object again as on_update(o, o),
        so controllers re-check conditions that depend on the clock."""
        await self._synced.wait()
        while True:
            await asyncio.sleep(self.resync)
            for obj in self.indexer.list():
                self._deliver(UPDATE, obj, obj)

    async def run(self) -> None:
        backoff = 0.5
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                started = asyncio.get_running_loop().time()
                delivered = await self._watch()
                if delivered or asyncio.get_running_loop().time() - started > 1.0:
                    backoff = 0.5  # a watch that did its job resets the backoff
                else:
                    # A stream the server keeps closing at once must not become a busy loop.
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, self._backoff_max)
            except asyncio.CancelledError:
                raise
            except APIError as exc:
                # Only a watch's: the list itself is a quorum read, so the same error
                # from it would not go away by listing again at once.
                if not need_list and (exc.code == 410 or is_too_large_resource_version(exc)):
                    # Retrying the same resourceVersion would never succeed.
                    log.info("informer %s: %s; listing again", self.resource.plural,
                             exc.message)
                    need_list = True
                    continue
                log.warning("informer %s: %s", self.resource.plural, exc)
                await self._sleep(backoff)
                backoff = min(backoff * 2, self._backoff_max)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                log.info("informer %s: connection lost (%s); resuming at %s",
                         self.resource.plural, exc or type(exc).__name__,
                         self.resource_version)
                await self._sleep(backoff)
                backoff = min(backoff * 2, self._backoff_max)

    @staticmethod
    async def _sleep(seconds: float) -> None:
        await asyncio.sleep(seconds * (1 + random.random() * 0.2))

    async def _list(self) -> None:
        items: list[dict] = []
        token = None
        while True:
            try:
                page = await self.client.list(
                    self.resource, self.namespace, label_selector=self.label_selector,
                    field_selector=self.field_selector, limit=self.page_size,
                    continue_=token)
            except APIError as exc:
                if exc.code == 410 and token:
                    # The continue token expired mid-list: start over from a fresh snapshot.
                    items, token = [], None
                    continue
                raise
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                break
        self.lists += 1
        for obj in items:
            # List items may come without TypeMeta; cached objects always carry it, so
            # event references and apply configurations built from them are complete.
            obj.setdefault("apiVersion", self.resource.gv)
            obj.setdefault("kind", self.resource.kind)
        await self._replace(items, meta.get("resourceVersion", ""))

    async def _replace(self, items: list[dict], resource_version: str) -> None:
        old = self.indexer.replace(items)
        self.resource_version = resource_version
        for key, obj in old.items():
            if key not in self.indexer:
                # Missed the DELETED event (client-go's DeletedFinalStateUnknown):
                # hand over the last state we saw.
                self._deliver(DELETE, obj)
        for obj in items:
            prev = old.get(object_key(obj))
            if prev is None:
                self._deliver(ADD, obj)
            elif _rv(prev) != _rv(obj):
                self._deliver(UPDATE, prev, obj)
        if not self._synced.is_set():
            self._deliver(_SYNCED)
            self._synced.set()

    async def _watch(self) -> int:
        """Watch from the current resourceVersion until the stream ends; returns the
        number of events received."""
        self.watches += 1
        timeout = int(self._min_watch_timeout * (1 + random.random()))
        count = 0
        async for event in self.client.watch(
                self.resource, self.namespace, resource_version=self.resource_version,
                label_selector=self.label_selector, field_selector=self.field_selector,
                timeout_seconds=timeout, allow_bookmarks=True):
            count += 1
            self._apply(event)
        return count

    def _apply(self, event: dict) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        rv = _rv(obj)
        if kind == "BOOKMARK":
            if rv:
                self.resource_version = rv
            return
        if kind in ("ADDED", "MODIFIED"):
            old = self.indexer.add(obj)
            if old is None:
                self._deliver(ADD, obj)
            elif _rv(old) != rv or not rv:
                self._deliver(UPDATE, old, obj)
        elif kind == "DELETED":
            self.indexer.delete(obj)
            self._deliver(DELETE, obj)
        if rv:
            self.resource_version = rv


def _rv(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("resourceVersion", "")


class SharedInformerFactory:
    """One informer per (resource, namespace, selectors) per process, however many
    consumers ask: every controller shares the same list+watch and cache."""

    def __init__(self, client: Client, *, resync: float = 0.0, **informer_options):
        self.client = client
        self.resync = resync
        self._options = informer_options
        self._informers: dict[tuple, Informer] = {}

    def informer(self, resource: ResourceRef, namespace: str | None = None, *,
                 label_selector: str | None = None,
                 field_selector: str | None = None) -> Informer:
        res = _resource(resource)
        key = (res.gvr, namespace, label_selector, field_selector)
        inf = self._informers.get(key)
        if inf is None:
            inf = Informer(self.client, res, namespace, label_selector, field_selector,
                           resync=self.resync, **self._options)
            self._informers[key] = inf
        return inf

    @property
    def informers(self) -> list[Informer]:
        return list(self._informers.values())

    async def remove(self, resource: ResourceRef, namespace: str | None = None) -> None:
        """Stop and forget the unfiltered informer of a resource that is no longer
        served (a deleted CustomResourceDefinition's), so it stops re-listing."""
        inf = self._informers.pop((_resource(resource).gvr, namespace, None, None), None)
        if inf is not None:
            await inf.stop()

    def start(self) -> None:
        """Start every informer not yet started (call again after asking for more)."""
        for inf in self._informers.values():
            if not inf.started:
                inf.start()

    @property
    def has_synced(self) -> bool:
        return all(inf.has_synced for inf in self._informers.values())

    async def wait_synced(self, timeout: float | None = None) -> None:
        """Wait until every informer asked for has synced, including ones started only
        later (a controller's run() starts the factory): callers may wait before the
        workers have been scheduled."""
        async def synced() -> None:
            for inf in list(self._informers.values()):
                await inf.wait_synced()
        await asyncio.wait_for(synced(), timeout)

    async def stop(self) -> None:
        for inf in self._informers.values():
            await inf.stop()
