"""pods/exec, pods/attach, pods/portforward and nodes/proxy: relayed to the node's kubelet.

As upstream's ExecREST/AttachREST/PortForwardREST and the node proxy: find the
pod's node, its kubelet at the node's InternalIP and daemonEndpoints port, and
relay the client's upgraded connection there with the API server's kubelet
client certificate (``--kubelet-client-certificate/key``), checking the
kubelet's serving certificate against ``--kubelet-certificate-authority`` when
given. The client's own credentials never reach the kubelet.

Authorization: the front already checked the request's verb (``create`` for
SPDY's POST, ``get`` for a WebSocket's GET). A WebSocket upgrade is also
checked for ``create``, as upstream does since AuthorizePodWebsocketUpgradeCreatePermission,
so reading a pod is never enough to run commands in it.

kubectl's WebSocket port-forward ("SPDY/3.1+portforward.k8s.io") is a SPDY
connection carried in WebSocket binary messages; the API server unwraps it and
speaks SPDY to the kubelet, as upstream's tunneling handler does, without
reading the SPDY frames.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web

from bootstrap.api import errors, upgrade
from bootstrap.api.resources import by_gvr

from ..auth.authz import Attributes

KUBELET_PORT = 10250
# Subresource -> the kubelet's path segment.
POD_STREAMS = {"exec": "exec", "attach": "attach", "portforward": "portForward"}
PORTFORWARD_TUNNEL = "SPDY/3.1+portforward.k8s.io"
_TRUE = ("1", "true", "t", "yes", "y")


async def kubelet_base(server, node_name: str) -> str:
    """https://<InternalIP>:<kubelet port> of a node (upstream's NodeConnectionInfo)."""
    node = await server.registry.get(by_gvr("", "v1", "nodes"), None, node_name)
    status = node.get("status") or {}
    addrs = status.get("addresses") or []
    host = next((a["address"] for a in addrs if a.get("type") == "InternalIP"), None) or \
        next((a["address"] for a in addrs), node_name)
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get(
        "Port") or KUBELET_PORT
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{port}"


def validate_container(pod: dict, container: str | None) -> str:
    """upstream's validateContainer: the named container, or the only one."""
    spec = pod.get("spec") or {}
    name = pod["metadata"]["name"]
    every = [c["name"] for key in ("initContainers", "containers", "ephemeralContainers")
             for c in spec.get(key) or []]
    if container:
        if container not in every:
            raise errors.bad_request(f"container {container} is not valid for pod {name}")
        return container
    regular = spec.get("containers") or []
    if len(regular) == 1:
        return regular[0]["name"]
    if not regular:
        raise errors.bad_request(f"a container name must be specified for pod {name}")
    raise errors.bad_request(f"a container name must be specified for pod {name}, "
                             f"choose one of: [{' '.join(every)}]")


def _flag(query, name: str, default: bool) -> bool:
    if name not in query:
        return default
    return query.get(name, "").lower() in _TRUE


def stream_params(sub: str, query) -> list[tuple[str, str]]:
    """The kubelet's query for PodExecOptions / PodAttachOptions / PodPortForwardOptions."""
    if sub == "portforward":
        ports = query.getall("ports", [])
        for p in ports:
            if not p.isdigit() or not 0 < int(p) < 65536:
                raise errors.bad_request(f"invalid port {p!r}: must be between 1 and 65535")
        return [("port", ",".join(ports))] if ports else []
    # Stdout and stderr default to true (SetDefaults_PodExecOptions/PodAttachOptions).
    out = [(name, "1") for name, default in (("stdin", False), ("stdout", True),
                                             ("stderr", True), ("tty", False))
           if _flag(query, name, default)]
    if sub == "exec":
        out += [("command", c) for c in query.getall("command", [])]
    return out


async def _authorize_create(server, request: web.Request, info, user) -> None:
    attrs = Attributes(user=user, verb="create", api_group=info.group,
                       api_version=info.version, resource=info.plural,
                       subresource=info.subresource, namespace=info.namespace,
                       name=info.name, path=request.path, resource_request=True)
    decision = await server.authorizer.authorize(attrs)
    if not decision.allowed:
        raise errors.forbidden(user.name, "create", info.plural, info.group, info.namespace,
                               info.name, decision.reason, info.subresource, request.path)


MAX_ERROR_BODY = 50000  # upstream's maxReadLength
# Status code -> (reason, message) of upstream's NewGenericServerResponse; None keeps
# the kubelet's text.
_GENERIC = {
    404: ("NotFound", "the server could not find the requested resource"),
    401: ("Unauthorized", "the server has asked for the client to provide credentials"),
    403: ("Forbidden", None),
    405: ("MethodNotAllowed", "the server does not allow this method on the requested resource"),
    409: ("Conflict", "the server reported a conflict"),
    422: ("Invalid", "the server rejected our request due to an error in our request"),
    429: ("TooManyRequests",
          "the server has received too many requests and has asked us to try again later"),
    504: ("Timeout", "the server was unable to return a response in the time allotted, "
                     "but may still be processing the request"),
}


def kubelet_error(status: int, body: bytes, resource: str, name: str) -> errors.APIError:
    """A non-2xx kubelet answer as upstream's GenericHttpResponseChecker reports it."""
    text = body.decode(errors="replace")
    if status == 400:
        return errors.bad_request(text)
    if status == 500:
        return errors.internal_error(text)
    if status in _GENERIC:
        reason, message = _GENERIC[status]
        message = text if message is None else message
    elif status > 500:
        reason = "InternalError"
        message = (f"an error on the server ({_go_quote(text)}) has prevented the request "
                   "from succeeding")
    else:
        reason = "Unknown"
        message = f"the server responded with the status code {status} but did not return " \
                  "more information"
    return errors.APIError(status, reason, f"{message} ( {resource} {name})",
                           {"name": name, "kind": resource})


def _go_quote(text: str) -> str:
    return json.dumps(text)  # Go's %q for the texts a kubelet writes


def _dial_error(exc: Exception) -> errors.APIError:
    return errors.APIError(500, "InternalError", f"error dialing backend: {exc}")


async def pod_stream(server, request: web.Request, info, user) -> web.StreamResponse:
    sub = info.subresource
    if request.method not in ("GET", "POST"):
        raise errors.method_not_supported(f"pods/{sub}", info.verb, "")
    if request.method == "GET":
        await _authorize_create(server, request, info, user)
    pod = await server.registry.get(info.resource, info.namespace, info.name)
    path = f"/{POD_STREAMS[sub]}/{quote(info.namespace)}/{quote(info.name)}"
    if sub != "portforward":
        path += "/" + quote(validate_container(pod, request.query.get("container")))
    node = (pod.get("spec") or {}).get("nodeName")
    if not node:
        raise errors.bad_request(f"pod {info.name} does not have a host assigned")
    params = stream_params(sub, request.query)
    if not upgrade.is_upgrade(request):
        raise errors.bad_request("Upgrade request required")
    url = await kubelet_base(server, node) + path + (f"?{urlencode(params)}" if params else "")
    sslctx = server.kubelet_ssl_context()
    try:
        if sub == "portforward" and _wants_tunnel(request):
            return await _tunnel(request, url, sslctx)
        return await upgrade.relay(request, url, sslctx)
    except upgrade.UpstreamError as exc:
        raise _dial_error(exc) from None


def _wants_tunnel(request: web.Request) -> bool:
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return False
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    return PORTFORWARD_TUNNEL in offered


async def _tunnel(request: web.Request, url: str, sslctx) -> web.StreamResponse:
    """WebSocket from the client, SPDY to the kubelet; message payloads are the SPDY bytes."""
    status, _, headers, reader, writer = await upgrade.open_upgrade(url, "POST", [
        ("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"),
        ("X-Stream-Protocol-Version", "portforward.k8s.io"),
        *upgrade.forwarded_headers(request.headers, ("User-Agent",))], sslctx)
    if status != 101:
        writer.close()
        raise errors.APIError(status, "BadRequest" if status == 400 else "InternalError",
                              f"unable to upgrade connection: kubelet answered {status}")
    ws = web.WebSocketResponse(protocols=(PORTFORWARD_TUNNEL,), autoping=True)
    await ws.prepare(request)

    async def client_to_kubelet() -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                writer.write(msg.data)
                await writer.drain()
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                return

    async def kubelet_to_client() -> None:
        while data := await reader.read(upgrade.CHUNK):
            await ws.send_bytes(data)

    tasks = [asyncio.ensure_future(client_to_kubelet()),
             asyncio.ensure_future(kubelet_to_client())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
        await ws.close()
    return ws


# Request headers a proxied (non-upgrade) request keeps; the rest are the client's.
_PROXY_REQUEST_HEADERS = ("Accept", "Accept-Encoding", "Content-Type", "User-Agent")
_PROXY_RESPONSE_HEADERS = ("Content-Type", "Content-Encoding", "Cache-Control")


async def node_proxy(server, request: web.Request, info, user) -> web.StreamResponse:
    """nodes/<name>/proxy/<path>: any method to the kubelet's <path>."""
    # /api/v1/nodes/<name>/proxy/<rest...>: nodes live only in the core group.
    rest = "/".join(quote(p) for p in info.parts[5:])
    await server.registry.get(info.resource, None, info.name)  # 404 for an unknown node
    url = await kubelet_base(server, info.name) + "/" + rest
    if request.query_string:
        url += "?" + request.query_string
    sslctx = server.kubelet_ssl_context()
    try:
        if upgrade.is_upgrade(request):
            return await upgrade.relay(request, url, sslctx)
        return await _proxy_plain(request, url, sslctx)
    except (upgrade.UpstreamError, aiohttp.ClientError, OSError) as exc:
        raise _dial_error(exc) from None


async def _proxy_plain(request: web.Request, url: str, sslctx) -> web.StreamResponse:
    headers = dict(upgrade.forwarded_headers(request.headers, _PROXY_REQUEST_HEADERS))
    body = await request.read() if request.can_read_body else None
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
                                     auto_decompress=False) as session:
        async with session.request(request.method, url, headers=headers, data=body,
                                   ssl=sslctx if sslctx is not None else False,
                                   allow_redirects=False) as upstream:
            resp = web.StreamResponse(status=upstream.status, headers=dict(
                upgrade.forwarded_headers(upstream.headers, _PROXY_RESPONSE_HEADERS)))
            await resp.prepare(request)
            async for chunk in upstream.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp
