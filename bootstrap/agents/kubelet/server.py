"""The kubelet's HTTPS API on :10250 (pkg/kubelet/server).

Authentication as upstream: a client certificate verified against
authentication.x509.clientCAFile (CN = user, O = groups); else a bearer token
through a TokenReview when authentication.webhook.enabled; else
system:anonymous when anonymous auth is on; else 401. Authorization in Webhook
mode is a SubjectAccessReview for the ``nodes`` resource named after this node,
verb from the HTTP method and subresource from the path (stats, metrics, log,
spec, checkpoint; everything else ``proxy``), as upstream's auth.go maps it.
Routes: /healthz, /pods, /containerLogs/{ns}/{pod}/{container}, and the
exec/attach/portForward streaming routes when streaming.py provides them.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from aiohttp import web
from cri_api.v1 import api_pb2 as cri

from bootstrap.agents.kubelet import logs as L
from bootstrap.agents.kubelet.runtime_state import read_pod
from bootstrap.errors import UserError

log = logging.getLogger(__name__)

TOKEN_REVIEWS = ("authentication.k8s.io", "v1", "tokenreviews")
ACCESS_REVIEWS = ("authorization.k8s.io", "v1", "subjectaccessreviews")
CACHE_TTL = 10.0   # upstream's webhook authn/authz cache TTLs are minutes; shorter is safer
FOLLOW_POLL = 0.25

# Path prefix -> nodes subresource (auth.go GetRequestAttributes).
SUBRESOURCES = (("/stats", "stats"), ("/metrics", "metrics"), ("/logs", "log"),
                ("/spec", "spec"), ("/checkpoint", "checkpoint"))
VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
         "DELETE": "delete"}
ANONYMOUS = {"username": "system:anonymous", "groups": ["system:unauthenticated"]}


def subresource(path: str) -> str:
    for prefix, sub in SUBRESOURCES:
        if path == prefix or path.startswith(prefix + "/"):
            return sub
    return "proxy"


def peer_user(request: web.Request) -> dict | None:
    transport = request.transport
    sslobj = transport.get_extra_info("ssl_object") if transport else None
    cert = sslobj.getpeercert() if sslobj is not None else None
    if not cert:
        return None
    cn, orgs = "", []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                cn = value
            elif key == "organizationName":
                orgs.append(value)
    return {"username": cn, "groups": orgs}


@dataclass
class Auth:
    client: object                      # the kubelet's API client (reviews)
    node_name: str
    webhook_authn: bool = True
    anonymous: bool = False
    mode: str = "Webhook"
    clock: Callable[[], float] = time.monotonic
    _tokens: dict = field(default_factory=dict)
    _decisions: dict = field(default_factory=dict)

    async def authenticate(self, request: web.Request) -> dict | None:
        user = peer_user(request)
        if user is not None:
            return user
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and self.webhook_authn:
            token = header[len("Bearer "):].strip()
            hit = self._tokens.get(token)
            if hit and self.clock() - hit[0] < CACHE_TTL:
                return hit[1]
            review = await self.client.create(TOKEN_REVIEWS, {
                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "spec": {"token": token}})
            st = review.get("status") or {}
            user = st.get("user") if st.get("authenticated") else None
            self._tokens[token] = (self.clock(), user)
            return user
        if header:
            return None  # a credential we cannot check is not anonymous
        return dict(ANONYMOUS) if self.anonymous else None

    def attributes(self, request: web.Request) -> dict:
        return {"verb": VERBS.get(request.method, "get"), "resource": "nodes", "group": "",
                "version": "v1", "subresource": subresource(request.path),
                "name": self.node_name}

    async def authorize(self, user: dict, attrs: dict) -> bool:
        if self.mode == "AlwaysAllow":
            return True
        key = (user.get("username"), tuple(user.get("groups") or ()), attrs["verb"],
               attrs["subresource"])
        hit = self._decisions.get(key)
        if hit and self.clock() - hit[0] < CACHE_TTL:
            return hit[1]
        spec = {"user": user.get("username", ""), "groups": user.get("groups") or [],
                "resourceAttributes": attrs}
        if user.get("uid"):
            spec["uid"] = user["uid"]
        if user.get("extra"):
            spec["extra"] = user["extra"]
        review = await self.client.create(ACCESS_REVIEWS, {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": spec})
        allowed = bool((review.get("status") or {}).get("allowed"))
        self._decisions[key] = (self.clock(), allowed)
        return allowed


def forbidden_text(user: dict, attrs: dict) -> str:
    return (f"Forbidden (user={user.get('username')}, verb={attrs['verb']}, "
            f"resource={attrs['resource']}, subresource(s)=[{attrs['subresource']}])\n")


class PodSource:
    """What the server reads from the kubelet: its pods and its runtime."""

    def __init__(self, pods: Callable[[], list[dict]], runtime):
        self.pods = pods
        self.runtime = runtime

    def find(self, namespace: str, name: str) -> dict | None:
        for pod in self.pods():
            meta = pod["metadata"]
            if meta.get("namespace") == namespace and meta.get("name") == name:
                return pod
        return None

    async def container(self, namespace: str, name: str, container: str,
                        previous: bool = False):
        pod = self.find(namespace, name)
        if pod is None:
            return None, None
        rt = await read_pod(self.runtime, pod["metadata"]["uid"])
        rec = rt.previous(container) if previous else rt.current(container)
        return pod, rec

    async def resolve_container(self, namespace: str, name: str, container: str) -> str | None:
        _, rec = await self.container(namespace, name, container)
        return rec.id if rec is not None and rec.running else None

    async def resolve_sandbox(self, namespace: str, name: str) -> str | None:
        pod = self.find(namespace, name)
        if pod is None:
            return None
        rt = await read_pod(self.runtime, pod["metadata"]["uid"])
        sb = rt.sandbox
        return sb.id if sb is not None and sb.ready else None


def build_app(auth: Auth, source: PodSource, *, runtime_channel=None) -> web.Application:
    @web.middleware
    async def authn_authz(request: web.Request, handler):
        try:
            user = await auth.authenticate(request)
        except Exception as exc:
            log.warning("authentication failed: %s", exc)
            return web.Response(status=500, text="Internal Server Error: authentication\n")
        if user is None:
            return web.Response(status=401, text="Unauthorized\n")
        attrs = auth.attributes(request)
        try:
            ok = await auth.authorize(user, attrs)
        except Exception as exc:
            log.warning("authorization failed: %s", exc)
            return web.Response(status=500, text="Internal Server Error: authorization\n")
        if not ok:
            return web.Response(status=403, text=forbidden_text(user, attrs))
        return await handler(request)

    app = web.Application(middlewares=[authn_authz])

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def pods(_request: web.Request) -> web.Response:
        body = {"kind": "PodList", "apiVersion": "v1", "metadata": {},
                "items": source.pods()}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def container_logs(request: web.Request) -> web.StreamResponse:
        ns, name, cname = (request.match_info[k] for k in ("namespace", "pod", "container"))
        try:
            opts = L.options_from_query(request.query)
        except UserError as exc:
            return web.Response(status=400, text=f"{exc.message}\n")
        pod, rec = await source.container(ns, name, cname, opts.previous)
        if pod is None:
            return web.Response(status=404, text=f'pod "{ns}/{name}" does not exist\n')
        names = {c["name"] for c in (pod.get("spec") or {}).get("containers") or []} | \
            {c["name"] for c in (pod.get("spec") or {}).get("initContainers") or []}
        if cname not in names:
            return web.Response(status=404,
                                text=f'container "{cname}" not found in pod "{ns}/{name}"\n')
        if rec is None:
            what = "previous terminated container" if opts.previous else "container"
            return web.Response(status=400, text=f'{what} "{cname}" in pod "{name}" not found\n')
        return await _serve_log(request, source, rec, opts)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/pods", pods)
    app.router.add_get("/pods/", pods)
    app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", container_logs)
    if runtime_channel is not None:
        # exec / attach / portForward: relayed to the runtime's streaming server.
        from bootstrap.agents.kubelet import streaming
        streaming.setup_streaming(app, runtime_channel, source.resolve_container,
                                  source.resolve_sandbox)
    return app


async def _serve_log(request: web.Request, source: PodSource, rec, opts: L.LogOptions
                     ) -> web.StreamResponse:
    path = rec.log_path
    try:
        data = await asyncio.to_thread(_read, path)
    except OSError:
        data = b""
    if not opts.follow:
        return web.Response(body=L.render(data, opts), content_type="text/plain")
    resp = web.StreamResponse(headers={"Content-Type": "text/plain",
                                       "Transfer-Encoding": "chunked"})
    await resp.prepare(request)
    entries, rest = L.parse(data)
    sent = 0
    budget = opts.limit_bytes

    async def send(chunk: bytes) -> bool:
        nonlocal sent
        if budget is not None:
            chunk = chunk[:max(0, budget - sent)]
        if chunk:
            await resp.write(chunk)
            sent += len(chunk)
        return budget is None or sent < budget

    going = await send(L.format_entries(L.select(entries, opts), opts))
    offset = len(data) - len(rest)
    tail_opts = L.LogOptions(timestamps=opts.timestamps)
    while going:
        await asyncio.sleep(FOLLOW_POLL)
        try:
            more = await asyncio.to_thread(_read, path, offset)
        except OSError:
            more = b""
        if more:
            entries, rest = L.parse(more)
            offset += len(more) - len(rest)
            going = await send(L.format_entries(entries, tail_opts))
            continue
        # Follow ends when the container has stopped and its log is drained.
        try:
            live = await source.runtime.container_status(rec.id)
        except Exception:
            break
        if live.state != cri.CONTAINER_RUNNING:
            break
    await resp.write_eof()
    return resp


def _read(path: str, offset: int = 0) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read()


def server_context(cert_file: str | None, key_file: str | None,
                   client_ca_file: str) -> ssl.SSLContext:
    """Without a certificate (a serving CSR not yet signed) every handshake fails
    until one is loaded into this same context."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    if cert_file:
        ctx.load_cert_chain(cert_file, key_file)
    if client_ca_file:
        ctx.load_verify_locations(cafile=client_ca_file)
        # Optional: bearer-token and anonymous clients present no certificate.
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


async def serve(app: web.Application, host: str, port: int, ctx: ssl.SSLContext | None
                ) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=ctx).start()
    return runner

