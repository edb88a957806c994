"""API aggregation (upstream's kube-aggregator inside kube-apiserver).

An apiregistration.k8s.io/v1 APIService with ``spec.service`` hands its
group-version to an extension API server:

* routing: every request under ``/apis/<group>/<version>`` (the discovery
  document included) is proxied to a ready endpoint of the Service (endpoint
  routing: the ClusterIP is not dialled, see ``services``), over TLS verified with
  ``spec.caBundle`` for ``<service>.<namespace>.svc`` (or not verified with
  ``insecureSkipTLSVerify``), presenting ``--proxy-client-cert-file``; the caller,
  authenticated and authorized here first as upstream, is named by X-Remote-User,
  X-Remote-Group and X-Remote-Extra-* headers. Whatever X-Remote-*, Authorization
  or Impersonate-* headers the client sent never go on. Responses stream (watch),
  upgrades (exec-style subresources) are spliced as for the kubelet.
* availability (``Available`` condition, written by the primary process): Local
  for APIServices without a service; otherwise ServiceNotFound, ServicePortError,
  EndpointsNotFound, MissingEndpoints, FailedDiscoveryCheck or Passed, checked when
  an APIService, its Service or the Service's EndpointSlices change and every
  RESYNC seconds. A request to an unavailable one is 503 ``service unavailable``.
* discovery: the extension's APIResourceList, fetched over the verified
  connection, joins /apis, /apis/<group> and aggregated discovery, so kubectl
  finds the extension's resources. Every process fetches for itself.
* OpenAPI v3: with its discovery document, the extension's
  ``/openapi/v3/apis/<group>/<version>`` is fetched over the verified connection
  and served as ours (listed in ``/openapi/v3``), so ``kubectl explain`` knows its
  kinds. It is fetched again when the discovery document changes.
* registration (primary process, upstream's autoregister and crdregistration
  controllers): every group-version served here gets a local APIService
  (``v1.``, ``v1.apps``, ..., label ``kube-aggregator.kubernetes.io/automanaged``
  ``onstart``), and each served CRD group-version one labelled ``true`` that goes
  when the CRD stops serving it. A user's own APIService of that name is left alone.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import ssl
from urllib.parse import quote

import aiohttp
import orjson
from aiohttp import web
from multidict import CIMultiDict

from bootstrap.api import errors, meta, resources, upgrade

from . import services

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "apiregistration.k8s.io", "v1", "apiservices"
AVAILABLE = "Available"
RESYNC = 10.0
DISCOVERY_TIMEOUT = 5.0
MAX_DISCOVERY_BYTES = 4 * 1024 * 1024
# The identity of the availability check (upstream's, with system:masters so the
# extension's own authorization never hides a live server).
CHECK_USER, CHECK_GROUPS = "system:kube-aggregator", ("system:masters",)

AUTOMANAGED = "kube-aggregator.kubernetes.io/automanaged"
# Upstream's apiVersionPriorities for the group-versions served here
# (pkg/controlplane/apiserver/aggregator.go and kube-apiserver's additions).
LOCAL_PRIORITIES: dict[tuple[str, str], tuple[int, int]] = {
    ("", "v1"): (18000, 1), ("apps", "v1"): (17800, 15),
    ("events.k8s.io", "v1"): (17750, 15), ("authentication.k8s.io", "v1"): (17700, 15),
    ("authorization.k8s.io", "v1"): (17600, 15), ("autoscaling", "v1"): (17500, 15),
    ("autoscaling", "v2"): (17500, 30), ("batch", "v1"): (17400, 15),
    ("certificates.k8s.io", "v1"): (17300, 15), ("networking.k8s.io", "v1"): (17200, 15),
    ("policy", "v1"): (17100, 15), ("rbac.authorization.k8s.io", "v1"): (17000, 15),
    ("storage.k8s.io", "v1"): (16800, 15), ("apiextensions.k8s.io", "v1"): (16700, 15),
    ("admissionregistration.k8s.io", "v1"): (16700, 15),
    ("scheduling.k8s.io", "v1"): (16600, 15), ("coordination.k8s.io", "v1"): (16500, 15),
    ("node.k8s.io", "v1"): (16300, 15), ("discovery.k8s.io", "v1"): (16200, 15),
    ("flowcontrol.apiserver.k8s.io", "v1"): (16100, 21),
    ("apiregistration.k8s.io", "v1"): (18000, 15),  # the aggregator's own group
}
# crdregistration: CRDs rank below built-ins; versions sort kube-like at equal priority.
CRD_PRIORITY = (1000, 100)

# Headers of one hop (RFC 9110 section 7.6.1), never forwarded either way.
_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
        "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "host",
        "content-length"}
# The client's credentials stay here; identity headers are ours alone to set.
_CREDENTIAL_PREFIXES = ("x-remote-", "impersonate-")
_CREDENTIALS = {"authorization", "cookie"}


def remote_spec(obj: dict | None) -> dict | None:
    """``spec.service`` of an APIService that is proxied, else None."""
    if obj is None or obj["metadata"].get("deletionTimestamp"):
        return None
    return (obj.get("spec") or {}).get("service") or None


def available(obj: dict) -> bool:
    return any(c.get("type") == AVAILABLE and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def identity_headers(name: str, groups, extra: dict) -> list[tuple[str, str]]:
    """upstream's SetAuthProxyHeaders: user, one header per group, extra keys escaped."""
    out = [("X-Remote-User", name)]
    out += [("X-Remote-Group", g) for g in groups]
    for key, values in (extra or {}).items():
        escaped = quote(key, safe="-!#$&'*+.^_`|~")  # a token's legal characters stay
        out += [(f"X-Remote-Extra-{escaped}", v) for v in values]
    return out


def forwarded_request_headers(headers) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers.items()
            if k.lower() not in _HOP and k.lower() not in _CREDENTIALS
            and not k.lower().startswith(_CREDENTIAL_PREFIXES)]


def set_condition(conditions: list[dict], status: str, reason: str, message: str
                  ) -> list[dict]:
    """upstream's SetAPIServiceCondition: the transition time moves with the status."""
    out = [dict(c) for c in conditions]
    cur = next((c for c in out if c.get("type") == AVAILABLE), None)
    if cur is None:
        out.append({"type": AVAILABLE, "status": status, "lastTransitionTime":
                    meta.now_rfc3339(), "reason": reason, "message": message})
        return out
    if cur.get("status") != status:
        cur["status"], cur["lastTransitionTime"] = status, meta.now_rfc3339()
    cur["reason"], cur["message"] = reason, message
    return out


def aggregated_resources(doc: dict) -> list[dict]:
    """An extension's APIResourceList as aggregated (v2) discovery resources."""
    group, _, version = (doc.get("groupVersion") or "").rpartition("/")
    top: dict[str, dict] = {}
    subs: list[dict] = []
    for r in doc.get("resources") or []:
        name = r.get("name") or ""
        if "/" in name:
            subs.append(r)
            continue
        d = {"resource": name, "responseKind": {"group": r.get("group", group),
                                                "version": r.get("version", version),
                                                "kind": r.get("kind", "")},
             "scope": "Namespaced" if r.get("namespaced") else "Cluster",
             "singularResource": r.get("singularName") or "", "verbs": r.get("verbs") or []}
        for src, dst in (("shortNames", "shortNames"), ("categories", "categories")):
            if r.get(src):
                d[dst] = list(r[src])
        top[name] = d
    for r in subs:
        parent, _, sub = r["name"].partition("/")
        if parent in top:
            top[parent].setdefault("subresources", []).append({
                "subresource": sub,
                "responseKind": {"group": r.get("group", group),
                                 "version": r.get("version", version),
                                 "kind": r.get("kind", "")},
                "verbs": r.get("verbs") or []})
    return list(top.values())


class Aggregator:
    def __init__(self, server):
        self.server = server
        self.res = resources.by_gvr(GROUP, VERSION, PLURAL)
        self._docs: dict[tuple[str, str], dict] = {}  # (group, version) -> APIResourceList
        # (group, version) -> (OpenAPI v3 document bytes, its hash)
        self._openapi: dict[tuple[str, str], tuple[bytes, str]] = {}
        self._ssl: dict[tuple[str, bool, bool], ssl.SSLContext] = {}
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self._tasks: list[asyncio.Task] = []
        self._wake = asyncio.Event()
        self._onstart_done: set[str] = set()  # created (or found) once: left alone after

    # -- the routing table, read live from the watch cache -------------------------
    def _all(self) -> list[dict]:
        return self.server.store.cache(self.res).list()[0]

    def target(self, group: str, version: str) -> dict | None:
        """The proxied APIService serving ``group/version``, if any."""
        if not group:
            return None  # the legacy core group is always served here
        obj = self.server.store.cache(self.res).get(self.res.key(None, f"{version}.{group}"))
        return obj if remote_spec(obj) is not None else None

    def groups(self) -> dict[str, list[str]]:
        """Proxied group -> versions, highest versionPriority first, groups by
        groupPriorityMinimum (upstream's ordering)."""
        remote = [o for o in self._all() if remote_spec(o) is not None and o["spec"].get("group")]
        remote.sort(key=lambda o: (-(o["spec"].get("groupPriorityMinimum") or 0),
                                   o["spec"]["group"], -(o["spec"].get("versionPriority") or 0),
                                   o["spec"].get("version", "")))
        out: dict[str, list[str]] = {}
        for o in remote:
            out.setdefault(o["spec"]["group"], []).append(o["spec"]["version"])
        return out

    aggregated_resources = staticmethod(aggregated_resources)

    def resource_list(self, group: str, version: str) -> dict | None:
        """The extension's discovery document, when fetched and still served."""
        return self._docs.get((group, version)) if self.target(group, version) else None

    def openapi_v3(self) -> dict[str, tuple[bytes, str]]:
        """``apis/<group>/<version>`` -> (document, hash) of the served extensions."""
        return {f"apis/{g}/{v}": doc for (g, v), doc in self._openapi.items()
                if self.target(g, v) is not None}

    # -- connections ---------------------------------------------------------------
    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        s = self._sessions.get(loop)
        if s is None or s.closed:
            # No pool limit: every proxied watch holds a connection for its lifetime.
            s = self._sessions[loop] = aiohttp.ClientSession(
                auto_decompress=False, connector=aiohttp.TCPConnector(limit=0))
        return s

    def ssl_context(self, obj: dict, *, verify: bool = True) -> ssl.SSLContext:
        """TLS to the extension: caBundle roots (the host's without one), or none with
        insecureSkipTLSVerify; our front-proxy client certificate either way."""
        spec = obj.get("spec") or {}
        insecure = bool(spec.get("insecureSkipTLSVerify")) or not verify
        key = (spec.get("caBundle") or "", insecure, verify)
        ctx = self._ssl.get(key)
        if ctx is None:
            if insecure:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            elif spec.get("caBundle"):
                ctx = ssl.create_default_context(
                    cadata=base64.b64decode(spec["caBundle"]).decode("ascii", "replace"))
            else:
                ctx = ssl.create_default_context()
            cfg = self.server.cfg
            if cfg.proxy_client_cert_file:
                ctx.load_cert_chain(cfg.proxy_client_cert_file, cfg.proxy_client_key_file)
            if len(self._ssl) > 64:
                self._ssl.clear()
            self._ssl[key] = ctx
        return ctx

    async def _endpoint(self, obj: dict) -> services.Endpoint:
        svc = obj["spec"]["service"]
        return await services.resolve(self.server.auth_store, svc.get("namespace", ""),
                                      svc.get("name", ""), svc.get("port") or 443)

    # -- the proxy -----------------------------------------------------------------
    async def proxy(self, request: web.Request, obj: dict, user) -> web.StreamResponse:
        if not available(obj):
            return _unavailable("service unavailable")
        try:
            ep = await self._endpoint(obj)
            sslctx = self.ssl_context(obj)
        except (services.ResolveError, ssl.SSLError, ValueError, OSError) as exc:
            log.warning("proxying to %s: %s", obj["metadata"]["name"], exc)
            return _unavailable("service unavailable")
        url = ep.url(request.rel_url.raw_path)
        if request.rel_url.raw_query_string:
            url += "?" + request.rel_url.raw_query_string
        ident = identity_headers(user.name, user.groups, user.extra)
        server_name = None if obj["spec"].get("insecureSkipTLSVerify") else ep.server_name
        try:
            if upgrade.is_upgrade(request):
                return await upgrade.relay(request, url, sslctx, extra_headers=ident,
                                           server_hostname=server_name)
            return await self._forward(request, url, sslctx, server_name, ident)
        except (upgrade.UpstreamError, aiohttp.ClientError, ssl.SSLError, OSError) as exc:
            # Fails closed: a server that cannot prove itself gets nothing.
            return _unavailable(str(exc) or type(exc).__name__)

    async def _forward(self, request: web.Request, url: str, sslctx, server_name,
                       ident: list[tuple[str, str]]) -> web.StreamResponse:
        headers = CIMultiDict(forwarded_request_headers(request.headers))
        for k, v in ident:
            headers.add(k, v)
        body = await request.read() if request.can_read_body else None
        async with self._session().request(
                request.method, url, headers=headers, data=body, ssl=sslctx,
                server_hostname=server_name, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)) as upstream:
            resp = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for k, v in upstream.headers.items():
                if k.lower() not in _HOP:
                    resp.headers.add(k, v)
            await resp.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
            except (aiohttp.ClientError, ssl.SSLError, TimeoutError) as exc:
                # The status is sent already: end the stream where the extension did.
                log.info("proxied response from %s ended early: %s", url, exc)
                if request.transport is not None:
                    request.transport.close()
                return resp
            await resp.write_eof()
            return resp

    # -- availability and discovery ------------------------------------------------
    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._run(), name="apiservice-availability"))
        for plural in (PLURAL, "services", "endpointslices", "customresourcedefinitions"):
            self._tasks.append(asyncio.create_task(self._watch(plural)))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        s = self._sessions.pop(asyncio.get_running_loop(), None)
        if s is not None:
            await s.close()

    def _references(self, obj: dict, plural: str) -> bool:
        if plural in (PLURAL, "customresourcedefinitions"):
            return True
        md = obj.get("metadata") or {}
        name = md.get("name") if plural == "services" else \
            (md.get("labels") or {}).get(services.SERVICE_NAME_LABEL)
        return any((s := remote_spec(o)) is not None and s.get("namespace") ==
                   md.get("namespace") and s.get("name") == name for o in self._all())

    async def _watch(self, plural: str) -> None:
        """Wake the availability loop when an APIService, or a Service or
        EndpointSlice one of them names, changes."""
        res = next(r for r in resources.CATALOGUE if r.plural == plural and r.stored)
        while True:
            watcher = await self.server.registry.watch(res, None, lambda o: True)
            try:
                while (ev := await watcher.get()) is not None:
                    if self._references(ev.obj, plural):
                        self._wake.set()
            finally:
                watcher.close()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.sync_all()
            except Exception as exc:  # level-triggered: the next pass retries
                log.warning("checking APIService availability: %s", exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RESYNC):
                    await self._wake.wait()
                    # A burst (a CRD and its serving, a Service and its slices) is
                    # one pass, after the other controllers have seen it too.
                    await asyncio.sleep(0.5)

    def wanted_local(self) -> dict[str, tuple[str, str, str, tuple[int, int]]]:
        """name -> (group, version, automanaged label, priorities) of the local
        APIServices: the static group-versions, then the CRDs' served ones."""
        out: dict[str, tuple[str, str, str, tuple[int, int]]] = {}
        for r in resources.CATALOGUE:
            if r.custom is None and (r.group, r.version) in LOCAL_PRIORITIES:
                out.setdefault(f"{r.version}.{r.group}", (r.group, r.version, "onstart",
                                                          LOCAL_PRIORITIES[(r.group, r.version)]))
        for r in resources.custom_resources():
            out.setdefault(f"{r.version}.{r.group}", (r.group, r.version, "true",
                                                      CRD_PRIORITY))
        return out

    async def register_local(self) -> None:
        """Create the local APIServices that are missing; remove CRD ones no longer
        served. Only objects we manage are touched."""
        ctx = self.server.system_ctx()
        wanted = self.wanted_local()
        have = {o["metadata"]["name"]: o for o in self._all()}
        for name, (group, version, managed, (gpm, vp)) in wanted.items():
            if managed == "onstart" and name in self._onstart_done:
                continue  # upstream syncs these at start only: a deletion sticks
            if name in have:
                self._onstart_done.add(name)
                continue
            obj = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "APIService",
                   "metadata": {"name": name, "labels": {AUTOMANAGED: managed}},
                   "spec": {"group": group, "version": version,
                            "groupPriorityMinimum": gpm, "versionPriority": vp}}
            try:
                await self.server.registry.create(self.res, None, obj, ctx)
            except errors.APIError as exc:
                if exc.code != 409:
                    raise
            if managed == "onstart":
                self._onstart_done.add(name)
        for name, obj in have.items():
            if name not in wanted and ((obj["metadata"].get("labels") or {}).get(
                    AUTOMANAGED) == "true") and remote_spec(obj) is None:
                try:
                    await self.server.registry.delete(self.res, None, name, ctx)
                except errors.APIError as exc:
                    if exc.code != 404:
                        raise

    async def sync_all(self) -> None:
        if self.server.primary:
            await self.register_local()
        items = self._all()
        await asyncio.gather(*(self._sync(o) for o in items))
        live = {(o["spec"].get("group", ""), o["spec"].get("version", "")) for o in items
                if remote_spec(o) is not None}
        for gv in set(self._docs) - live:
            del self._docs[gv]
        for gv in set(self._openapi) - live:
            del self._openapi[gv]

    async def _sync(self, obj: dict) -> None:
        spec = obj.get("spec") or {}
        gv = (spec.get("group", ""), spec.get("version", ""))
        if remote_spec(obj) is None:
            status, reason, message = "True", "Local", "Local APIServices are always available"
        else:
            status, reason, message = await self._check(obj, gv)
        if self.server.primary:
            await self._write(obj, status, reason, message)

    async def _check(self, obj: dict, gv: tuple[str, str]) -> tuple[str, str, str]:
        try:
            ep = await self._endpoint(obj)
        except services.ResolveError as exc:
            self._docs.pop(gv, None)
            self._openapi.pop(gv, None)
            return "False", exc.reason, exc.message
        url = ep.url(f"/apis/{gv[0]}/{gv[1]}")
        ident = identity_headers(CHECK_USER, CHECK_GROUPS, {})
        # The discovery document comes over the verified connection only; when that
        # fails the availability check, as upstream's, does not verify the server
        # (the proxy then still refuses to talk to it).
        try:
            status, body = await self._get(url, self.ssl_context(obj), ep.server_name, ident)
            if 200 <= status < 300:
                if self._store_doc(gv, body) or gv not in self._openapi:
                    await self._fetch_openapi(obj, ep, gv, ident)
                return "True", "Passed", "all checks passed"
        except (aiohttp.ClientError, ssl.SSLError, OSError, TimeoutError, ValueError):
            pass
        self._docs.pop(gv, None)  # only a verified answer is merged into discovery
        self._openapi.pop(gv, None)
        try:
            status, _ = await self._get(url, self.ssl_context(obj, verify=False), None, ident)
        except TimeoutError:
            return "False", "FailedDiscoveryCheck", f"timed out waiting for {url}"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return "False", "FailedDiscoveryCheck", (
                f'failing or missing response from {url}: Get "{url}": {exc}')
        if not 200 <= status < 300:
            self._docs.pop(gv, None)
            return "False", "FailedDiscoveryCheck", (
                f"failing or missing response from {url}: bad status from {url}: {status}")
        return "True", "Passed", "all checks passed"

    async def _get(self, url: str, sslctx, server_name, headers) -> tuple[int, bytes]:
        async with self._session().get(
                url, ssl=sslctx, server_hostname=server_name, allow_redirects=False,
                headers=[("Accept", "application/json"), *headers],
                timeout=aiohttp.ClientTimeout(total=DISCOVERY_TIMEOUT)) as resp:
            return resp.status, await resp.content.read(MAX_DISCOVERY_BYTES)

    def _store_doc(self, gv: tuple[str, str], body: bytes) -> bool:
        """Keep the extension's discovery document; True when it changed."""
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict) and doc.get("kind") == "APIResourceList" and \
                isinstance(doc.get("resources"), list):
            doc["groupVersion"] = f"{gv[0]}/{gv[1]}"  # the extension speaks for its own only
            changed = self._docs.get(gv) != doc
            self._docs[gv] = doc
            return changed
        self._docs.pop(gv, None)
        return True

    async def _fetch_openapi(self, obj: dict, ep: services.Endpoint, gv: tuple[str, str],
                             ident) -> None:
        """The extension's OpenAPI v3 document of its group-version, if it has one."""
        url = ep.url(f"/openapi/v3/apis/{gv[0]}/{gv[1]}")
        try:
            status, body = await self._get(url, self.ssl_context(obj), ep.server_name, ident)
            doc = orjson.loads(body) if 200 <= status < 300 else None
        except (aiohttp.ClientError, ssl.SSLError, OSError, TimeoutError, ValueError):
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("components"), dict):
            raw = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
            self._openapi[gv] = (raw, hashlib.sha512(raw).hexdigest().upper())
        else:
            self._openapi.pop(gv, None)

    async def _write(self, obj: dict, status: str, reason: str, message: str) -> None:
        old = (obj.get("status") or {}).get("conditions") or []
        conditions = set_condition(old, status, reason, message)
        if conditions == old:
            return
        if any(c.get("type") == AVAILABLE and c.get("status") != status for c in old):
            log.info("APIService %s is now Available=%s: %s", obj["metadata"]["name"],
                     status, message)

        async def compute(current: dict) -> dict:
            cur = (current.get("status") or {}).get("conditions") or []
            current.setdefault("status", {})["conditions"] = set_condition(
                cur, status, reason, message)
            return current

        ctx = self.server.system_ctx()
        ctx.subresource = "status"
        try:
            await self.server.registry.update(self.res, None, obj["metadata"]["name"],
                                              compute, ctx)
        except errors.APIError as exc:
            if exc.code != 404:
                raise


def _unavailable(message: str) -> web.Response:
    # upstream's proxyError: http.Error's plain text, not a Status.
    return web.Response(status=503, text=message + "\n",
                        headers={"X-Content-Type-Options": "nosniff"},
                        content_type="text/plain", charset="utf-8")
