"""A small extension API server for aggregation tests (what a metrics add-on is).

Serves ``wardle.example.com/v1alpha1`` (namespaced ``flunders``, short name ``fl``;
list, get, create, delete, watch, Table output) from memory over TLS, as an
aggregated server does: only callers presenting a client certificate of the
front-proxy CA with an allowed CN get in, and the user is whoever the
X-Remote-User / X-Remote-Group / X-Remote-Extra-* headers name (upstream's
requestheader authenticator; authorization is left to the API server in front).
Every request is recorded for the tests to inspect. Runs on its own event loop
in a thread: ``with ExtensionServer(...) as ext: ...``.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import unquote

import orjson
from aiohttp import web

from bootstrap.pki import CLIENT_AUTH, SERVER_AUTH, CertSpec, load_ca
from bootstrap.pki.certs import cert_to_pem, sign_leaf
from bootstrap.pki.keys import generate_key, key_to_pem

GROUP, VERSION = "wardle.example.com", "v1alpha1"
GV = f"{GROUP}/{VERSION}"
PREFIX = f"/apis/{GROUP}/{VERSION}"
RESOURCES = {
    "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GV,
    "resources": [{"name": "flunders", "singularName": "flunder", "namespaced": True,
                   "kind": "Flunder", "shortNames": ["fl"], "categories": ["wardle"],
                   "verbs": ["create", "delete", "get", "list", "watch"]}],
}


def openapi_v3(group: str) -> dict:
    """The group-version's OpenAPI v3 document (only the schema kubectl explain reads)."""
    gvk = {"group": group, "version": VERSION, "kind": "Flunder"}
    ref = {"$ref": f"#/components/schemas/com.example.wardle.{VERSION}.Flunder"}
    ok = {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}
    base = f"/apis/{group}/{VERSION}/namespaces/{{namespace}}/flunders"
    paths = {base: {"post": {"x-kubernetes-action": "post",
                             "x-kubernetes-group-version-kind": gvk, "responses": ok}},
             f"{base}/{{name}}": {"get": {"x-kubernetes-action": "get",
                                          "x-kubernetes-group-version-kind": gvk,
                                          "responses": ok}}}
    return {"openapi": "3.0.0", "info": {"title": "wardle", "version": VERSION}, "paths": paths,
            "components": {"schemas": {f"com.example.wardle.{VERSION}.Flunder": {
                "type": "object", "description": "A Flunder is a test object.",
                "properties": {
                    "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                    "metadata": {"type": "object"},
                    "spec": {"type": "object", "description": "What the flunder refers to.",
                             "properties": {"reference": {
                                 "type": "string",
                                 "description": "The name of another flunder."}}}},
                "x-kubernetes-group-version-kind": [
                    {"group": group, "version": VERSION, "kind": "Flunder"}]}}}}


def serving_pair(pki_dir: Path, out: Path, service: str, namespace: str) -> tuple[Path, Path]:
    """A serving certificate for ``<service>.<namespace>.svc`` signed by the cluster CA."""
    ca = load_ca(pki_dir, "ca")
    key = generate_key("ECDSA-P256")
    name = f"{service}.{namespace}.svc"
    cert = sign_leaf(CertSpec(name, (), (SERVER_AUTH,), dns_names=(name,),
                              ips=(ip_address("127.0.0.1"),)),
                     key.public_key(), ca.cert, ca.key, timedelta(hours=2))
    crt, keyp = out / f"{service}.crt", out / f"{service}.key"
    crt.write_bytes(cert_to_pem(cert))
    keyp.write_bytes(key_to_pem(key))
    return crt, keyp


def client_pair(pki_dir: Path, out: Path, ca_name: str, cn: str) -> tuple[Path, Path]:
    ca = load_ca(pki_dir, ca_name)
    key = generate_key("ECDSA-P256")
    cert = sign_leaf(CertSpec(cn, (), (CLIENT_AUTH,)), key.public_key(), ca.cert, ca.key,
                     timedelta(hours=2))
    crt, keyp = out / f"client-{cn}.crt", out / f"client-{cn}.key"
    crt.write_bytes(cert_to_pem(cert))
    keyp.write_bytes(key_to_pem(key))
    return crt, keyp


@dataclass
class Seen:
    method: str
    path: str
    headers: list[tuple[str, str]]
    user: str
    groups: list[str]
    extra: dict[str, list[str]]


@dataclass
class ExtensionServer:
    cert: Path
    key: Path
    client_ca: Path                       # the front-proxy CA
    allowed_names: tuple[str, ...] = ("front-proxy-client",)
    # Groups served at VERSION (one APIService each); the first is the real one,
    # more let tests point other APIServices (forged caBundle, insecure) here.
    groups: tuple[str, ...] = (GROUP,)
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    objects: dict[tuple[str, str], dict] = field(default_factory=dict)
    rv: int = 1

    def __post_init__(self):
        self._loop = asyncio.new_event_loop()
        self._watchers: set[asyncio.Queue] = set()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    # -- lifecycle --------------------------------------------------------------------
    def __enter__(self) -> ExtensionServer:
        self._thread.start()
        if not self._started.wait(20) or not self.port:
            raise RuntimeError("extension server did not start")
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.client_ca))
        ctx.load_cert_chain(str(self.cert), str(self.key))
        ctx.verify_mode = ssl.CERT_REQUIRED   # only the front proxy may call
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._entry)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, ssl_context=ctx)
        await site.start()
        self.port = runner.addresses[0][1]
        self._started.set()
        await self._stop.wait()
        for q in list(self._watchers):
            q.put_nowait(None)
        await runner.cleanup()

    # -- requests ----------------------------------------------------------------------
    async def _entry(self, request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peercert") or {}
        cn = next((v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"),
                  "")
        user = request.headers.get("X-Remote-User", "")
        if cn not in self.allowed_names or not user:
            return _status(401, "Unauthorized", "Unauthorized")
        extra: dict[str, list[str]] = {}
        for k, v in request.headers.items():
            if k.lower().startswith("x-remote-extra-"):
                extra.setdefault(unquote(k[len("x-remote-extra-"):].lower()), []).append(v)
        self.seen.append(Seen(request.method, request.path_qs, list(request.headers.items()),
                              user, request.headers.getall("X-Remote-Group", []), extra))
        path = request.path
        if path.startswith("/openapi/v3/apis/"):
            g = path[len("/openapi/v3/apis/"):].split("/")[0]
            if path == f"/openapi/v3/apis/{g}/{VERSION}" and g in self.groups:
                return _json(openapi_v3(g))
        group = next((g for g in self.groups if path == f"/apis/{g}/{VERSION}"
                      or path.startswith(f"/apis/{g}/{VERSION}/")), None)
        if group is None:
            return _status(404, "NotFound", "the server could not find the requested resource")
        prefix = f"/apis/{group}/{VERSION}"
        if path == prefix:
            return _json({**RESOURCES, "groupVersion": f"{group}/{VERSION}"})
        if path == f"{prefix}/whoami":
            return _json({"user": user, "groups": request.headers.getall("X-Remote-Group", []),
                          "extra": extra,
                          "headers": sorted({k.lower() for k in request.headers})})
        parts = path[len(prefix):].strip("/").split("/")
        ns = ""
        if parts[:1] == ["namespaces"] and len(parts) >= 3:
            ns, parts = parts[1], parts[2:]
        if not parts or parts[0] != "flunders":
            return _status(404, "NotFound", "the server could not find the requested resource")
        name = parts[1] if len(parts) > 1 else ""
        if parts[2:] == ["attach"] and request.method == "GET":
            return await self._attach(request, user)
        watch = request.query.get("watch", "").lower() in ("1", "true")
        only = request.query.get("fieldSelector", "")
        only = only[len("metadata.name="):] if only.startswith("metadata.name=") else ""
        if request.method == "GET" and watch:
            return await self._watch(request, ns, only)
        if request.method == "GET" and name:
            obj = self.objects.get((ns, name))
            return _json(self._view(request, [obj])) if obj else _not_found(name)
        if request.method == "GET":
            items = [o for (n, m), o in sorted(self.objects.items())
                     if (not ns or n == ns) and (not only or m == only)]
            return _json(self._view(request, items, listed=True))
        if request.method == "POST" and not name and ns:
            obj = orjson.loads(await request.read())
            md = obj.setdefault("metadata", {})
            if (ns, md.get("name")) in self.objects:
                return _status(409, "AlreadyExists",
                               f'flunders.{GROUP} "{md.get("name")}" already exists')
            md.update(namespace=ns, uid=str(uuid.uuid4()),
                      creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
            self._bump(obj)
            self.objects[(ns, md["name"])] = obj
            self._notify("ADDED", obj)
            return _json(obj, 201)
        if request.method == "DELETE" and name:
            obj = self.objects.pop((ns, name), None)
            if obj is None:
                return _not_found(name)
            self._bump(obj)
            self._notify("DELETED", obj)
            return _json(obj)
        return _status(405, "MethodNotAllowed", "the server does not allow this method")

    def _bump(self, obj: dict) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)

    def _notify(self, kind: str, obj: dict) -> None:
        for q in self._watchers:
            q.put_nowait({"type": kind, "object": obj})

    def _view(self, request: web.Request, items: list[dict], listed: bool = False) -> dict:
        if "as=Table" in request.headers.get("Accept", ""):
            return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                    "metadata": {"resourceVersion": str(self.rv)},
                    "columnDefinitions": [
                        {"name": "Name", "type": "string", "format": "name"},
                        {"name": "Reference", "type": "string", "format": ""}],
                    "rows": [{"cells": [o["metadata"]["name"],
                                        (o.get("spec") or {}).get("reference", "")],
                              "object": {"kind": "PartialObjectMetadata",
                                         "apiVersion": "meta.k8s.io/v1",
                                         "metadata": o["metadata"]}} for o in items]}
        if not listed:
            return items[0]
        return {"kind": "FlunderList", "apiVersion": GV,
                "metadata": {"resourceVersion": str(self.rv)}, "items": items}

    async def _attach(self, request: web.Request, user: str) -> web.StreamResponse:
        """A WebSocket subresource: greets the caller by name, then echoes."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(f"hello {user}")
        async for msg in ws:
            if msg.type == web.WSMsgType.TEXT:
                await ws.send_str(f"echo {msg.data}")
        return ws

    async def _watch(self, request: web.Request, ns: str, only: str) -> web.StreamResponse:
        q: asyncio.Queue = asyncio.Queue()
        self._watchers.add(q)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        try:
            if not request.query.get("resourceVersion"):
                for (n, m), obj in sorted(self.objects.items()):
                    if (not ns or n == ns) and (not only or m == only):
                        await resp.write(orjson.dumps({"type": "ADDED", "object": obj}) + b"\n")
            while (ev := await q.get()) is not None:
                md = ev["object"]["metadata"]
                if (not ns or md["namespace"] == ns) and (not only or md["name"] == only):
                    await resp.write(orjson.dumps(ev) + b"\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._watchers.discard(q)
        return resp


def _json(body: dict, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _status(code: int, reason: str, message: str) -> web.Response:
    return _json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                  "message": message, "reason": reason, "code": code}, code)


def _not_found(name: str) -> web.Response:
    return _status(404, "NotFound", f'flunders.{GROUP} "{name}" not found')
