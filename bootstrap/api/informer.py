"""List-then-watch informer with a local cache, as client-go's reflector + indexer.

``run()`` lists (paginated) to fill the cache and learn a resourceVersion, then
watches from it. A dropped stream or a server restart resumes the watch from the
last resourceVersion seen (events and bookmarks advance it); 410 Expired (the
revision was compacted) lists again, and the cache is reconciled against the new
list so handlers see the adds, updates and deletes they missed.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Callable
from typing import Any

import aiohttp

from bootstrap.api.client import Client, ResourceRef, _resource
from bootstrap.api.errors import APIError

log = logging.getLogger(__name__)

Handler = Callable[..., Any]


def object_key(obj: dict) -> str:
    """``namespace/name`` (or ``name`` for cluster-scoped objects), client-go's key."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name', '')}" if ns else meta.get("name", "")


class Informer:
    def __init__(self, client: Client, resource: ResourceRef, namespace: str | None = None,
                 label_selector: str | None = None, field_selector: str | None = None, *,
                 page_size: int = 500, min_watch_timeout: int = 300,
                 backoff_max: float = 30.0):
        self.client = client
        self.resource = _resource(resource)
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.page_size = page_size
        self._min_watch_timeout = min_watch_timeout
        self._backoff_max = backoff_max
        self._cache: dict[str, dict] = {}
        self._handlers: list[tuple[Handler | None, Handler | None, Handler | None]] = []
        self._synced = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.resource_version: str = ""
        # Counters that tests and metrics read; never used for control flow.
        self.lists = 0
        self.watches = 0

    # handlers and cache -----------------------------------------------------------

    def add_handler(self, on_add: Handler | None = None, on_update: Handler | None = None,
                    on_delete: Handler | None = None) -> None:
        """on_add(obj), on_update(old, new), on_delete(obj); plain or async callables.
        Add handlers before ``start()``: the initial list is delivered as on_add."""
        self._handlers.append((on_add, on_update, on_delete))

    def on_add(self, fn: Handler) -> Handler:
        self.add_handler(on_add=fn)
        return fn

    def on_update(self, fn: Handler) -> Handler:
        self.add_handler(on_update=fn)
        return fn

    def on_delete(self, fn: Handler) -> Handler:
        self.add_handler(on_delete=fn)
        return fn

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._synced.wait(), timeout)

    def get(self, name: str, namespace: str | None = None) -> dict | None:
        key = f"{namespace}/{name}" if namespace and self.resource.namespaced else name
        return self._cache.get(key)

    def list(self, namespace: str | None = None) -> list[dict]:
        if namespace is None:
            return list(self._cache.values())
        return [o for o in self._cache.values()
                if (o.get("metadata") or {}).get("namespace") == namespace]

    def keys(self) -> list[str]:
        return list(self._cache)

    async def _call(self, index: int, *args) -> None:
        for handlers in list(self._handlers):
            fn = handlers[index]
            if fn is None:
                continue
            try:
                result = fn(*args)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # a handler bug must not stop the informer
                log.exception("informer %s: handler failed", self.resource.plural)

    # lifecycle --------------------------------------------------------------------

    def start(self) -> asyncio.Task:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"informer-{self.resource.plural}")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

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
                if exc.code == 410:
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
        await self._replace(items, meta.get("resourceVersion", ""))

    async def _replace(self, items: list[dict], resource_version: str) -> None:
        fresh = {object_key(o): o for o in items}
        old = self._cache
        self._cache = fresh
        self.resource_version = resource_version
        for key, obj in old.items():
            if key not in fresh:
                await self._call(2, obj)
        for key, obj in fresh.items():
            if key not in old:
                await self._call(0, obj)
            elif _rv(old[key]) != _rv(obj):
                await self._call(1, old[key], obj)
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
            await self._apply(event)
        return count

    async def _apply(self, event: dict) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        rv = _rv(obj)
        if kind == "BOOKMARK":
            if rv:
                self.resource_version = rv
            return
        key = object_key(obj)
        if kind in ("ADDED", "MODIFIED"):
            old = self._cache.get(key)
            self._cache[key] = obj
            if old is None:
                await self._call(0, obj)
            else:
                await self._call(1, old, obj)
        elif kind == "DELETED":
            old = self._cache.pop(key, None)
            await self._call(2, obj)
        if rv:
            self.resource_version = rv


def _rv(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("resourceVersion", "")
