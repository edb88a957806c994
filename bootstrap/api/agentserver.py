"""The agent's HTTPS endpoint: /healthz /livez /readyz and Prometheus /metrics.

Health paths are always allowed (upstream's --authorization-always-allow-paths
default). Every other path is authenticated and authorized by this rule:

1. a client certificate verified against --client-ca-file authenticates its CN as
   the user and its O entries as groups;
2. otherwise, with --authentication-kubeconfig, a bearer token is checked with a
   TokenReview (delegated authentication, as upstream);
3. nobody else is authenticated: 401.
Authorization: with --authorization-kubeconfig (or, when only
--authentication-kubeconfig is given, that one) a SubjectAccessReview for
``get`` on the non-resource URL decides (403 when denied); with neither, any
certificate user from step 1 is allowed, since the CA is then the only authority.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import ssl
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta
from ipaddress import ip_address
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bootstrap.api import errors
from bootstrap.api.client import Client
from bootstrap.api.metrics import REGISTRY
from bootstrap.api.resources import by_gvr

log = logging.getLogger(__name__)

TOKEN_REVIEWS = by_gvr("authentication.k8s.io", "v1", "tokenreviews")
ACCESS_REVIEWS = by_gvr("authorization.k8s.io", "v1", "subjectaccessreviews")
REVIEW_CACHE_SECONDS = 10.0  # upstream's delegating authn/authz cache TTLs (10 s)
REVIEW_CACHE_SIZE = 1024

Check = Callable[[], bool]


class _TTLCache:
    """A small bounded cache of review answers (upstream caches them 10 s): forged
    tokens cannot grow it without limit, and raw tokens are never kept."""

    def __init__(self, ttl: float = REVIEW_CACHE_SECONDS, size: int = REVIEW_CACHE_SIZE):
        self.ttl, self.size = ttl, size
        self._items: OrderedDict[object, tuple[float, object]] = OrderedDict()

    def get(self, key: object) -> tuple[bool, object]:
        hit = self._items.get(key)
        if hit is None or time.monotonic() - hit[0] > self.ttl:
            return False, None
        return True, hit[1]

    def put(self, key: object, value: object) -> None:
        self._items[key] = (time.monotonic(), value)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


class DelegatedAuth:
    def __init__(self, authn: Client | None, authz: Client | None, cert_users: bool):
        self.authn = authn
        self.authz = authz
        self.cert_users = cert_users
        self._tokens = _TTLCache()
        self._decisions = _TTLCache()

    async def user(self, request: web.Request) -> dict | None:
        cert = _peer_cert(request)
        if cert is not None:
            return cert
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if self.authn is None or scheme.lower() != "bearer" or not token:
            return None
        digest = hashlib.sha256(token.encode()).digest()
        found, user = self._tokens.get(digest)
        if found:
            return user  # type: ignore[return-value]
        review = await self.authn.create(TOKEN_REVIEWS, {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": token}})
        status = review.get("status") or {}
        user = dict(status["user"], via="token") \
            if status.get("authenticated") and status.get("user") else None
        self._tokens.put(digest, user)
        return user

    async def allowed(self, user: dict, verb: str, path: str) -> bool:
        if self.authz is None:
            return self.cert_users and user.get("via") == "x509"
        key = (user.get("username"), tuple(user.get("groups") or ()), verb, path)
        found, decision = self._decisions.get(key)
        if found:
            return bool(decision)
        spec = {"user": user.get("username"), "groups": user.get("groups") or [],
                "nonResourceAttributes": {"path": path, "verb": verb}}
        for field in ("uid", "extra"):
            if user.get(field):
                spec[field] = user[field]
        review = await self.authz.create(ACCESS_REVIEWS, {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": spec})
        allowed = bool((review.get("status") or {}).get("allowed"))
        self._decisions.put(key, allowed)
        return allowed


def _peer_cert(request: web.Request) -> dict | None:
    """The user of a verified client certificate (the TLS layer only hands over
    certificates that chain to --client-ca-file)."""
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
    return {"username": cn, "groups": orgs, "via": "x509"}


def _status(err: errors.APIError) -> web.Response:
    return web.json_response(err.status(), status=err.code)


def health_app(name: str, checks: dict[str, dict[str, Check]], auth: DelegatedAuth,
               always_allow: set[str]) -> web.Application:
    prefixes = tuple(p[:-1] for p in always_allow if p.endswith("*"))

    @web.middleware
    async def authorize(request: web.Request, handler):
        # Exact paths, or prefixes written "/path/*", as --authorization-always-allow-paths.
        if request.path in always_allow or (prefixes and request.path.startswith(prefixes)):
            return await handler(request)
        verb = request.method.lower()
        try:
            user = await auth.user(request)
            if user is None:
                return _status(errors.unauthorized())
            if not await auth.allowed(user, verb, request.path):
                return _status(errors.forbidden(user.get("username", ""), verb, "",
                                                path=request.path, resource_request=False))
        except Exception as exc:  # the delegate is unreachable or refuses us
            log.warning("%s: delegated auth failed: %s", name, exc)
            return _status(errors.service_unavailable(
                "authentication or authorization is unavailable"))
        return await handler(request)

    app = web.Application(middlewares=[authorize])
    for path, table in checks.items():
        app.router.add_get(path, _health_handler(path.strip("/"), table))
        app.router.add_get(path + "/{check}", _health_handler(path.strip("/"), table))

    async def metrics(_request: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest(REGISTRY))
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp
    app.router.add_get("/metrics", metrics)
    return app


def _health_handler(what: str, table: dict[str, Check]):
    """Upstream's healthz format: "ok", or one [+]/[-] line per check with ?verbose or
    on failure; /<what>/<check> runs one check."""
    async def handler(request: web.Request) -> web.Response:
        only = request.match_info.get("check")
        if only is not None and only not in table:
            raise web.HTTPNotFound()
        results = []
        for check_name, check in table.items():
            if only is not None and check_name != only:
                continue
            try:
                ok = bool(check())
            except Exception:
                ok = False
            results.append((check_name, ok))
        healthy = all(ok for _, ok in results)
        if "verbose" in request.query or not healthy:
            lines = [f"[+]{n} ok" if ok else f"[-]{n} failed: reason withheld"
                     for n, ok in results]
            lines.append(f"{what} check passed" if healthy else f"{what} check failed")
            return web.Response(status=200 if healthy else 500, text="\n".join(lines) + "\n")
        return web.Response(text="ok")
    return handler


def serving_context(name: str, bind_address: str, cert_file: str | None,
                    key_file: str | None, cert_dir: str | None,
                    client_ca_file: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file and key_file:
        ctx.load_cert_chain(cert_file, key_file)
    else:
        _self_signed(ctx, name, bind_address, cert_dir)
    if client_ca_file:
        ctx.load_verify_locations(cafile=client_ca_file)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _self_signed(ctx: ssl.SSLContext, name: str, bind_address: str,
                 cert_dir: str | None) -> None:
    """As upstream's MaybeDefaultWithSelfSignedCerts: <name>.crt/.key under --cert-dir,
    reused when present; in memory (a private temp dir removed at once) without one."""
    from bootstrap.pki import certs, keys  # the agents' only PKI need

    if cert_dir:
        crt, key = Path(cert_dir, f"{name}.crt"), Path(cert_dir, f"{name}.key")
        if crt.exists() and key.exists():
            ctx.load_cert_chain(str(crt), str(key))
            return
    host = socket.gethostname()
    ips = [ip_address("127.0.0.1")]
    if bind_address not in ("0.0.0.0", "::", ""):
        ips.append(ip_address(bind_address))
    ca_key, leaf_key = keys.generate_key("ECDSA-P256"), keys.generate_key("ECDSA-P256")
    stamp = int(time.time())
    ca = certs.create_ca(certs.CertSpec(f"{host}-ca@{stamp}", is_ca=True), ca_key,
                         timedelta(days=365))
    leaf = certs.sign_leaf(certs.CertSpec(f"{host}@{stamp}", usages=(certs.SERVER_AUTH,),
                                          dns_names=(host, "localhost"), ips=tuple(ips)),
                           leaf_key.public_key(), ca, ca_key, timedelta(days=365))
    chain = certs.cert_to_pem(leaf) + certs.cert_to_pem(ca)
    key_pem = keys.key_to_pem(leaf_key)
    if cert_dir:
        Path(cert_dir).mkdir(parents=True, exist_ok=True)
        crt_path, key_path = Path(cert_dir, f"{name}.crt"), Path(cert_dir, f"{name}.key")
        _write(crt_path, chain, 0o644)
        _write(key_path, key_pem, 0o600)
        ctx.load_cert_chain(str(crt_path), str(key_path))
        return
    with tempfile.TemporaryDirectory(prefix=f"{name}-serving-") as tmp:
        crt_path, key_path = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
        _write(crt_path, chain, 0o644)
        _write(key_path, key_pem, 0o600)
        ctx.load_cert_chain(str(crt_path), str(key_path))


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


async def serve(app: web.Application, host: str, port: int,
                ctx: ssl.SSLContext) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner and the bound port (port 0 picks one)."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host or None, port, ssl_context=ctx, reuse_address=True)
    await site.start()
    server = site._server  # aiohttp exposes the bound sockets only here
    bound = server.sockets[0].getsockname()[1] if server and server.sockets else port
    return runner, bound
