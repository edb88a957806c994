"""Streamed watches served from the watch cache.

resourceVersion unset: consistent snapshot (cache synced to etcd's current
revision) sent as ADDED, then live events. "0": the cache's state as ADDED,
then live. N: events after N, or one ERROR event with a 410 Expired Status when
N has left the cache's window. Selector transitions turn MODIFIED into ADDED or
DELETED for the watcher, as upstream's cacher does.
"""

from __future__ import annotations

import asyncio
import random

import orjson
from aiohttp import web

from bootstrap.api import errors

from ..requestinfo import RequestInfo
from . import common, output
from .crud import matcher

BOOKMARK_INTERVAL = 5.0
MIN_REQUEST_TIMEOUT = 1800


async def watch(server, request: web.Request, info: RequestInfo, user) -> web.StreamResponse:
    res = info.resource
    registry = server.registry
    match = matcher(request, res)
    ns = info.namespace if res.namespaced else ""
    name = info.name

    def visible(obj: dict) -> bool:
        md = obj["metadata"]
        if ns and md.get("namespace") != ns:
            return False
        if name and md.get("name") != name:
            return False
        return match is None or match(obj)

    rv, _, _ = common.list_options(request, watch=True)
    timeout = common.query_int(request, "timeoutSeconds")
    if timeout is None:
        timeout = random.randint(MIN_REQUEST_TIMEOUT, 2 * MIN_REQUEST_TIMEOUT)
    if rv not in (None, "0") and not rv.isdigit():
        raise errors.bad_request(f"invalid resource version: {rv}")
    bookmarks = common.query_bool(request, "allowWatchBookmarks")
    initial_events = common.query_bool(request, "sendInitialEvents")

    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                   "Transfer-Encoding": "chunked"})
    await resp.prepare(request)

    async def send(etype: str, obj: dict) -> None:
        if etype not in ("ERROR", "BOOKMARK"):
            obj = output.convert_one(request, res, obj)
        await resp.write(orjson.dumps({"type": etype, "object": obj}) + b"\n")

    try:
        if rv is None or initial_events:
            # sendInitialEvents at N: a snapshot not older than N, which the cache waits
            # for and refuses as too large if etcd never reaches it (a restored etcd).
            watcher = await registry.watch(
                res, None if rv in (None, "0") or initial_events else int(rv), visible,
                consistent=True, min_rv=int(rv) if initial_events and rv else 0)
        elif rv == "0":
            watcher = await registry.watch(res, None, visible)
        else:
            watcher = await registry.watch(res, int(rv), visible)
    except errors.APIError as exc:
        await send("ERROR", exc.status())
        await resp.write_eof()
        return resp

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_rv = 0
    initial_pending = initial_events
    server.metrics.watchers(res, +1)
    try:
        if initial_pending and not watcher.pending():
            await _initial_end(send, res, registry.cache_revision(res))
            initial_pending = False
        while True:
            left = deadline - loop.time()
            if left <= 0:
                break
            wait = min(left, BOOKMARK_INTERVAL) if (bookmarks or initial_pending) else left
            try:
                async with asyncio.timeout(wait):  # not wait_for: see bootstrap.api.leader
                    ev = await watcher.get()
            except TimeoutError:
                if initial_pending:
                    await _initial_end(send, res, registry.cache_revision(res))
                    initial_pending = False
                elif bookmarks and registry.cache_revision(res) > last_rv:
                    last_rv = registry.cache_revision(res)
                    await send("BOOKMARK", _bookmark(res, registry.cache_revision(res)))
                continue
            if ev is None:
                break  # the cache restarted or we fell behind: the client re-watches
            if initial_pending and not watcher.pending():
                await _emit(send, ev, visible)
                await _initial_end(send, res, registry.cache_revision(res))
                initial_pending = False
                last_rv = max(last_rv, ev.rv)
                continue
            await _emit(send, ev, visible)
            last_rv = max(last_rv, ev.rv)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        watcher.close()
        server.metrics.watchers(res, -1)
    try:
        await resp.write_eof()
    except ConnectionResetError:
        pass
    return resp


async def _emit(send, ev, visible) -> None:
    now = visible(ev.obj)
    if ev.type == "ADDED" or ev.prev is None:
        if now:
            await send(ev.type, ev.obj)
        return
    before = visible(ev.prev)
    if ev.type == "DELETED":
        if before:
            await send("DELETED", ev.obj)
        return
    if now and before:
        await send("MODIFIED", ev.obj)
    elif now:
        await send("ADDED", ev.obj)
    elif before:
        await send("DELETED", ev.obj)


def _bookmark(res, rv: int) -> dict:
    return {"kind": res.kind, "apiVersion": res.gv, "metadata": {"resourceVersion": str(rv)}}


async def _initial_end(send, res, rv: int) -> None:
    bm = _bookmark(res, rv)
    bm["metadata"]["annotations"] = {"k8s.io/initial-events-end": "true"}
    await send("BOOKMARK", bm)
