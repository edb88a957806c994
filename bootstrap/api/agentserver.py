"""The agent's HTTPS endpoint: /healthz /livez /readyz and Prometheus /metrics.

The --authorization-always-allow-paths (health, by default) are served to anyone;
every other path needs a user that ``bootstrap.api.agentauth`` authenticates and
authorizes: 401 without one, 403 when not allowed, 503 when the delegate API
server cannot be asked.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from ipaddress import ip_address
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bootstrap.api import errors
from bootstrap.api.agentauth import DelegatedAuth
from bootstrap.api.metrics import REGISTRY

log = logging.getLogger(__name__)

Check = Callable[[], bool]


def _peer_der(request: web.Request) -> bytes | None:
    """The client certificate (DER) the TLS layer verified, if one was presented."""
    transport = request.transport
    sslobj = transport.get_extra_info("ssl_object") if transport else None
    return sslobj.getpeercert(binary_form=True) if sslobj is not None else None


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
            user = await auth.user(request.headers, _peer_der(request))
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
                    *client_ca_files: str | None) -> ssl.SSLContext:
    """TLS for the secure port; client certificates are asked for (not required)
    when a client CA (--client-ca-file, --requestheader-client-ca-file) is given."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file and key_file:
        ctx.load_cert_chain(cert_file, key_file)
    else:
        _self_signed(ctx, name, bind_address, cert_dir)
    ctx.verify_mode = ssl.CERT_NONE
    for path in client_ca_files:
        if path:
            ctx.load_verify_locations(cafile=path)
            ctx.verify_mode = ssl.CERT_OPTIONAL
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
