"""Non-resource endpoints: health checks, /version, /metrics, /openapi."""

from __future__ import annotations

import asyncio

from aiohttp import web

from bootstrap import KUBE_API_VERSION, component_version
from bootstrap.api import errors

from . import common, openapi

# gitVersion names the bootstrap install this API server runs from (upgrades read it).
VERSION = {
    "major": KUBE_API_VERSION.split(".")[0], "minor": KUBE_API_VERSION.split(".")[1],
    "gitVersion": component_version(),
    "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23.0", "compiler": "gc",
    "platform": "linux/amd64",
}

_CHECKS = ("ping", "log", "etcd", "informer-sync", "poststarthook/bootstrap-controller",
           "poststarthook/rbac/bootstrap-roles")


async def _etcd_ok(server) -> str | None:
    try:
        await asyncio.wait_for(server.etcd.status(), 2)
        return None
    except (TimeoutError, errors.APIError, Exception) as exc:
        return str(exc) or "etcd unreachable"


async def _check(server, request: web.Request, endpoint: str, only: str | None):
    failures: dict[str, str] = {}
    checks = _CHECKS if endpoint != "livez" else ("ping", "log", "etcd")
    if endpoint == "readyz":
        checks = (*checks, "shutdown")  # upstream: only readiness turns on SIGTERM
    if only is not None and only not in checks:
        raise errors.APIError(404, "NotFound", "the server could not find the requested "
                                               "resource")
    excluded = set(request.query.getall("exclude", []))
    for name in checks:
        if only is not None and name != only or name in excluded:
            continue
        if name == "etcd":
            err = await _etcd_ok(server)
            if err:
                failures[name] = err
        elif name == "shutdown":
            if server.shutting_down:
                failures[name] = "process is shutting down"
        elif name == "informer-sync":
            if not server.registry.caches_ready():
                failures[name] = "watch caches not synced"
    if only is not None:
        body = "ok" if not failures else f"internal server error: {failures[only]}"
        return web.Response(text=body, status=200 if not failures else 500)
    verbose = "verbose" in request.query
    if verbose or failures:
        lines = []
        for name in checks:
            if name in excluded:
                lines.append(f"[+]{name} excluded: ok")
            elif name in failures:
                lines.append(f"[-]{name} failed: reason withheld")
            else:
                lines.append(f"[+]{name} ok")
        lines.append(f"{endpoint} check failed" if failures else f"{endpoint} check passed")
        return web.Response(text="\n".join(lines) + "\n", status=500 if failures else 200)
    return web.Response(text="ok")


async def handle(server, request: web.Request, parts: list[str]) -> web.StreamResponse:
    if request.method not in ("GET", "HEAD"):
        raise errors.method_not_supported(request.path, request.method)
    head = parts[0] if parts else ""
    if head in ("healthz", "livez", "readyz") and len(parts) <= 3:
        return await _check(server, request, head, "/".join(parts[1:]) or None)
    if parts == ["version"]:
        return common.json_response(VERSION)
    if parts == ["metrics"]:
        sizes = server.registry.cache_sizes()
        return web.Response(text=server.metrics.render(sizes),
                            content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})
    if head == "openapi":
        return openapi.handle(request, parts, server.aggregator)
    if not parts:
        paths = sorted({"/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/metrics",
                        "/version", "/openapi/v2", "/openapi/v3"})
        return common.json_response({"paths": paths})
    raise errors.APIError(404, "NotFound", "the server could not find the requested resource")
