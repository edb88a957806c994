"""A small in-process fake of the API server's REST surface for the client tests.

It is a fake at our own boundary (the HTTP contract the real server implements):
objects per resource, one global revision as resourceVersion, list pagination,
optimistic concurrency on update, and watches that replay the event log from a
resourceVersion, answer 410 below the compacted revision, and can be ended or
cut on demand to exercise resume logic. No tests live here.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import orjson
from aiohttp import web


def status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}
    return web.Response(status=code, body=orjson.dumps(body), content_type="application/json")


def _json(obj, code=200) -> web.Response:
    return web.Response(status=code, body=orjson.dumps(obj), content_type="application/json")


class FakeAPI:
    def __init__(self, *, token: str | None = None):
        self.token = token
        self.objects: dict[str, dict[tuple, dict]] = {}
        self.log: list[tuple[int, str, str, dict]] = []  # (rev, type, plural, obj)
        self.rev = 100
        self.compacted = 0
        self.changed = asyncio.Condition()
        self.requests: list[tuple[str, str, dict]] = []
        self.watch_rvs: list[str] = []
        self.fail_next: list[int] = []  # status codes to answer the next requests with
        self.drop_next = 0  # close the connection of the next N requests unanswered
        self.refuse_watches = False  # answer watches 503 (the informer must retry, not relist)
        self.refuse_all = False  # answer everything 500 (a leader cannot renew)
        self._end_watches = 0
        self._watch_transports: set = set()
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, ssl_context=None, port: int = 0) -> str:
        self.runner = web.AppRunner(self.app, handle_signals=False, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port or self.port, ssl_context=ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return f"{'https' if ssl_context else 'http'}://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        self.cut_watches()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    # test controls ----------------------------------------------------------------

    async def end_watches(self) -> None:
        """Finish every open watch response cleanly (the server's timeout)."""
        async with self.changed:
            self._end_watches += 1
            self.changed.notify_all()

    def cut_watches(self) -> None:
        """Drop the TCP connections of open watches (a network failure)."""
        for transport in list(self._watch_transports):
            transport.close()
        self._watch_transports.clear()

    async def compact(self) -> None:
        self.compacted = self.rev
        await self.end_watches()

    async def put(self, plural: str, obj: dict, kind: str = "ADDED") -> dict:
        async with self.changed:
            self.rev += 1
            meta = obj.setdefault("metadata", {})
            meta["resourceVersion"] = str(self.rev)
            meta.setdefault("uid", str(uuid.uuid4()))
            self.objects.setdefault(plural, {})[(meta.get("namespace"), meta["name"])] = obj
            self.log.append((self.rev, kind, plural, obj))
            self.changed.notify_all()
        return obj

    async def remove(self, plural: str, namespace, name) -> dict | None:
        async with self.changed:
            obj = self.objects.get(plural, {}).pop((namespace, name), None)
            if obj is None:
                return None
            self.rev += 1
            obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.rev)}}
            self.log.append((self.rev, "DELETED", plural, obj))
            self.changed.notify_all()
        return obj

    # HTTP ------------------------------------------------------------------------

    @staticmethod
    def _parse(path: str):
        parts = [p for p in path.split("/") if p]
        parts = parts[2:] if parts[0] == "api" else parts[3:]
        ns = None
        if len(parts) >= 3 and parts[0] == "namespaces":
            ns, parts = parts[1], parts[2:]
        plural = parts[0]
        name = parts[1] if len(parts) > 1 else None
        sub = parts[2] if len(parts) > 2 else None
        return ns, plural, name, sub

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path, dict(request.query)))
        if self.drop_next:
            self.drop_next -= 1
            request.transport.close()
            return web.Response()
        if self.fail_next:
            code = self.fail_next.pop(0)
            return status(code, "InternalError", "injected failure")
        if self.refuse_all:
            return status(500, "InternalError", "refused")
        if self.refuse_watches and request.query.get("watch") == "true":
            return status(503, "ServiceUnavailable", "watches refused")
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return status(401, "Unauthorized", "Unauthorized")
        ns, plural, name, _sub = self._parse(request.path)
        store = self.objects.setdefault(plural, {})
        q = request.query
        if request.method == "GET" and q.get("watch") == "true":
            return await self._watch(request, plural, ns)
        if request.method == "GET" and name is None:
            items = sorted((o for (ons, _), o in store.items() if ns is None or ons == ns),
                           key=lambda o: (o["metadata"].get("namespace") or "",
                                          o["metadata"]["name"]))
            if q.get("labelSelector"):
                k, _, v = q["labelSelector"].partition("=")
                items = [o for o in items if (o["metadata"].get("labels") or {}).get(k) == v]
            start = int(q["continue"]) if q.get("continue") else 0
            limit = int(q.get("limit", 0)) or len(items) or 1
            page = items[start:start + limit]
            meta = {"resourceVersion": str(self.rev)}
            if start + limit < len(items):
                meta["continue"] = str(start + limit)
            return _json({"kind": "List", "apiVersion": "v1", "metadata": meta, "items": page})
        if request.method == "GET":
            obj = store.get((ns, name))
            if obj is None:
                return status(404, "NotFound", f'{plural} "{name}" not found')
            return _json(obj)
        if request.method == "POST":
            obj = orjson.loads(await request.read())
            if ns:
                obj["metadata"].setdefault("namespace", ns)
            key = (ns, obj["metadata"]["name"])
            if key in store:
                return status(409, "AlreadyExists",
                              f'{plural} "{obj["metadata"]["name"]}" already exists')
            return _json(await self.put(plural, obj), 201)
        if request.method == "PUT":
            obj = orjson.loads(await request.read())
            cur = store.get((ns, name))
            if cur is None:
                return status(404, "NotFound", f'{plural} "{name}" not found')
            want = obj["metadata"].get("resourceVersion")
            if want and want != cur["metadata"]["resourceVersion"]:
                return status(409, "Conflict",
                              f'Operation cannot be fulfilled on {plural} "{name}": the object '
                              f'has been modified; please apply your changes to the latest '
                              f'version and try again')
            obj["metadata"]["uid"] = cur["metadata"]["uid"]
            return _json(await self.put(plural, obj, "MODIFIED"))
        if request.method == "PATCH":
            cur = store.get((ns, name))
            if cur is None:
                return status(404, "NotFound", f'{plural} "{name}" not found')
            if request.content_type != "application/merge-patch+json":
                return status(415, "UnsupportedMediaType", "unsupported")
            patch = orjson.loads(await request.read())
            merged = orjson.loads(orjson.dumps(cur))
            for k, v in patch.items():
                if isinstance(v, dict):
                    merged.setdefault(k, {}).update(v)
                else:
                    merged[k] = v
            return _json(await self.put(plural, merged, "MODIFIED"))
        if request.method == "DELETE":
            obj = await self.remove(plural, ns, name)
            if obj is None:
                return status(404, "NotFound", f'{plural} "{name}" not found')
            return _json(obj)
        return status(405, "MethodNotAllowed", "no")

    async def _watch(self, request: web.Request, plural: str, ns) -> web.StreamResponse:
        rv = int(request.query.get("resourceVersion") or self.rev)
        self.watch_rvs.append(request.query.get("resourceVersion", ""))
        resp = web.StreamResponse()
        resp.content_type = "application/json"
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        if rv < self.compacted:
            err = {"type": "ERROR", "object": {
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": f"too old resource version: {rv} ({self.compacted})",
                "reason": "Expired", "code": 410}}
            await resp.write(orjson.dumps(err) + b"\n")
            return resp
        self._watch_transports.add(request.transport)
        ended_at = self._end_watches
        sent = rv
        try:
            while True:
                async with self.changed:
                    events = [e for e in self.log if e[0] > sent and e[2] == plural]
                    if not events and self._end_watches == ended_at:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self.changed.wait(), 5)
                        continue
                for rev, kind, _p, obj in events:
                    if ns is None or obj["metadata"].get("namespace") == ns:
                        await resp.write(orjson.dumps({"type": kind, "object": obj}) + b"\n")
                    sent = rev
                if self._end_watches != ended_at:
                    if request.query.get("allowWatchBookmarks") == "true":
                        mark = {"type": "BOOKMARK", "object": {
                            "kind": "Object", "metadata": {"resourceVersion": str(self.rev)}}}
                        await resp.write(orjson.dumps(mark) + b"\n")
                    return resp
        except (ConnectionResetError, RuntimeError):
            return resp
        finally:
            self._watch_transports.discard(request.transport)
