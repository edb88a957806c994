"""The HTTP front: authentication, authorization, audit, metrics, then dispatch."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from aiohttp import web

from bootstrap.api import errors

from . import requestinfo
from .auth import impersonation
from .auth.authz import Attributes
from .handlers import common, crud, debug, discovery, health, subresources, watch

log = logging.getLogger(__name__)

_RESOURCE_HANDLERS = {
    "get": crud.get, "list": crud.list_, "create": crud.create, "update": crud.update,
    "patch": crud.patch, "delete": crud.delete, "deletecollection": crud.delete_collection,
    "watch": watch.watch,
}


def _peer_cert(request: web.Request) -> bytes | None:
    transport = request.transport
    sslobj = transport.get_extra_info("ssl_object") if transport else None
    if sslobj is None:
        return None
    return sslobj.getpeercert(binary_form=True)


def build(server) -> web.Application:
    application = web.Application(client_max_size=3 * 1024 * 1024)

    async def entry(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        received = datetime.now(UTC)
        info = requestinfo.parse(request.method, request.path, request.query)
        user = None
        impersonator = None
        code = 500
        try:
            user = await server.authenticator.authenticate(
                _peer_cert(request), request.headers.get("Authorization"), request.headers)
            asserted = server.authenticator.authentication_headers(request.headers)
            if asserted:
                # Front-proxy headers never reach handlers, proxies or webhooks.
                kept = request.headers.copy()
                for key in asserted:
                    kept.popall(key, None)
                request = request.clone(headers=kept)
            effective = await impersonation.impersonate(user, request.headers,
                                                        server.authorizer)
            if effective is not user:
                # Audit names the authenticated user and the impersonated one apart.
                impersonator, user = user, effective
            await _authorize(server, request, info, user)
            if _long_running(info):
                resp = await dispatch(server, request, info, user)
            else:
                try:
                    async with asyncio.timeout(server.cfg.request_timeout):
                        resp = await dispatch(server, request, info, user)
                except TimeoutError:
                    raise errors.APIError(504, "Timeout", "Timeout: request did not complete "
                                          "within requested timeout - context deadline "
                                          "exceeded") from None
            code = resp.status
            return common.prettify(resp) if common.wants_pretty(request) else resp
        except errors.APIError as exc:
            code = exc.code
            resp = common.error_response(exc)
            return common.prettify(resp) if common.wants_pretty(request) else resp
        except ConnectionResetError:
            code = 499
            raise
        except Exception as exc:  # every failure reaches the client as a Status
            log.exception("%s %s failed", request.method, request.path)
            code = 500
            return common.error_response(errors.internal_error(str(exc)))
        finally:
            elapsed = time.perf_counter() - started
            if info.resource_request:
                scope = ("resource" if info.name else "namespace" if info.namespace
                         else "cluster")
                server.metrics.request(info.verb, info.group, info.version, info.plural,
                                       info.subresource, scope, code, elapsed)
            if server.audit is not None and user is not None:
                _audit(server, request, info, user, code, received, impersonator)
            elif server.audit is not None and code == 401:
                _audit_failed_authentication(server, request, info, received)

    application.router.add_route("*", "/{tail:.*}", entry)
    return application


# Upstream's LongRunningRequestCheck: these stream for as long as the client wants.
_LONG_RUNNING_VERBS = {"watch", "proxy"}
_LONG_RUNNING_SUBRESOURCES = {"attach", "exec", "proxy", "log", "portforward"}


def _long_running(info) -> bool:
    return info.verb in _LONG_RUNNING_VERBS or info.subresource in _LONG_RUNNING_SUBRESOURCES


async def _authorize(server, request: web.Request, info, user) -> None:
    verb = info.verb if info.resource_request else request.method.lower()
    if request.method == "HEAD":
        verb = "get"
    attrs = Attributes(user=user, verb=verb, api_group=info.group,
                       api_version=info.version, resource=info.plural,
                       subresource=info.subresource, namespace=info.namespace,
                       name=info.name, path=request.path,
                       resource_request=info.resource_request,
                       field_selector=request.query.get("fieldSelector"),
                       label_selector=request.query.get("labelSelector"))
    decision = await server.authorizer.authorize(attrs)
    if not decision.allowed:
        raise errors.forbidden(user.name, verb, info.plural, info.group, info.namespace,
                               info.name, decision.reason, info.subresource, request.path,
                               info.resource_request)


async def dispatch(server, request: web.Request, info, user) -> web.StreamResponse:
    parts = list(info.parts)
    if len(parts) >= 3 and parts[0] == "apis":
        # A group-version an APIService hands to an extension server: all of it,
        # its discovery document included, is proxied (authorized above, as upstream).
        target = server.aggregator.target(parts[1], parts[2])
        if target is not None:
            return await server.aggregator.proxy(request, target, user)
    if not info.resource_request:
        if parts[:2] == ["debug", "pprof"]:
            return await debug.handle(server, request, parts)
        resp = discovery.handle(server, request, parts)
        if resp is not None:
            return resp
        return await health.handle(server, request, parts)
    res = info.resource
    if res is None:
        raise errors.APIError(404, "NotFound",
                              "the server could not find the requested resource")
    if not res.stored:
        if info.verb != "create":
            raise errors.method_not_supported(res.plural, info.verb, res.group)
        return await subresources.review(server, request, info, user)
    if res.namespaced and info.name and not info.namespace:
        raise errors.APIError(404, "NotFound",
                              "the server could not find the requested resource")
    if info.subresource:
        return await subresources.dispatch(server, request, info, user)
    if info.verb not in res.verbs:
        raise errors.method_not_supported(res.plural, info.verb, res.group)
    handler = _RESOURCE_HANDLERS.get(info.verb)
    if handler is None:
        raise errors.method_not_supported(res.plural, info.verb, res.group)
    return await handler(server, request, info, user)


def _audit_failed_authentication(server, request: web.Request, info, received) -> None:
    """Upstream's WithFailedAuthenticationAudit: a ResponseStarted event with no user and
    the credential kinds that were tried, so credential stuffing shows in the log."""
    from .audit import build_event
    tried = []
    if (request.headers.get("Authorization") or "").strip().lower().startswith("bearer "):
        tried.append("bearer")
    if _peer_cert(request):
        tried.append("x509")
    message = (f"Authentication failed, attempted: {', '.join(tried)}" if tried
               else "Authentication failed, no credentials provided")
    try:
        server.audit.log(build_event(
            verb=info.verb if info.resource_request else request.method.lower(),
            request_uri=str(request.rel_url), user={}, source_ips=[request.remote or ""],
            user_agent=request.headers.get("User-Agent", ""), code=401, received=received,
            status_message=message, status_reason="Unauthorized", stage="ResponseStarted"))
    except OSError as exc:
        log.warning("audit log write failed: %s", exc)


def _audit(server, request: web.Request, info, user, code: int, received,
           impersonator=None) -> None:
    """``user`` ran the request; ``impersonator``, when set, authenticated and
    impersonated it. Upstream's event then has ``user`` = the impersonator and
    ``impersonatedUser`` = the effective user."""
    from .audit import build_event
    ref = None
    if info.resource_request:
        ref = {k: v for k, v in (("resource", info.plural), ("namespace", info.namespace),
                                 ("name", info.name), ("apiGroup", info.group),
                                 ("apiVersion", info.version),
                                 ("subresource", info.subresource)) if v}
    peer = request.remote or ""
    try:
        server.audit.log(build_event(
            verb=info.verb if info.resource_request else request.method.lower(),
            request_uri=str(request.rel_url),
            user=(impersonator or user).to_dict(),
            impersonated_user=user.to_dict() if impersonator is not None else None,
            source_ips=[peer],
            user_agent=request.headers.get("User-Agent", ""), code=code, received=received,
            object_ref=ref, annotations=request.get("audit_annotations") or None))
    except OSError as exc:
        log.warning("audit log write failed: %s", exc)
