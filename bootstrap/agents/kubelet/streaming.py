"""The kubelet's exec, attach and portForward endpoints, served by the runtime's streaming server.

For each request the kubelet asks the CRI for a streaming URL (Exec, Attach,
PortForward: containerd keeps the options under a one-time token) and relays
the client's upgrade to it unchanged (``bootstrap.api.upgrade``): SPDY/3.1 and
WebSocket (``v4.channel.k8s.io`` and older for exec/attach) are spoken end to
end by the client and containerd; a protocol containerd refuses is refused to
the client the same way, so kubectl falls back to SPDY (docs/adr/0004).

``setup_streaming(app, runtime_channel, resolve_container, resolve_sandbox)``
adds the upstream kubelet paths to ``app`` (the kubelet server authenticates and
authorizes before these handlers run):

    /exec/{namespace}/{pod}/{container}?command=..&stdin=1&stdout=1&stderr=1&tty=1
    /attach/{namespace}/{pod}/{container}?stdin=1&stdout=1&stderr=1&tty=1
    /portForward/{namespace}/{pod}[?port=80,8080]

(the paths the API server's streamLocation builds). ``resolve_container(namespace,
pod, container)`` and ``resolve_sandbox(namespace, pod)`` are async and return
the CRI id of the running container / ready pod sandbox, or None (then 404).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import grpc
from aiohttp import web
from cri_api.v1 import api_pb2 as cri
from cri_api.v1 import api_pb2_grpc as cri_grpc

from bootstrap.api import upgrade

log = logging.getLogger(__name__)

ResolveContainer = Callable[[str, str, str], Awaitable[str | None]]
ResolveSandbox = Callable[[str, str], Awaitable[str | None]]
CRI_TIMEOUT = 30.0
STREAMS = ("stdin", "stdout", "stderr")
# gRPC codes of a CRI streaming call -> the HTTP status the kubelet answers with.
_GRPC_HTTP = {grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.INVALID_ARGUMENT: 400,
              grpc.StatusCode.FAILED_PRECONDITION: 400, grpc.StatusCode.UNIMPLEMENTED: 501,
              grpc.StatusCode.DEADLINE_EXCEEDED: 504, grpc.StatusCode.UNAVAILABLE: 503}


def _flag(query, name: str) -> bool:
    return query.get(name, "").lower() in ("1", "true")


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n")


class StreamOptions:
    """Parsed exec/attach query: streams, tty and (exec) the command."""

    def __init__(self, query, *, exec_: bool):
        self.stdin, self.stdout, self.stderr = (_flag(query, s) for s in STREAMS)
        self.tty = _flag(query, "tty")
        # A TTY merges stderr into stdout, as upstream's kubelet does.
        if self.tty:
            self.stderr = False
        self.command = query.getall("command", []) if exec_ else []

    def problem(self) -> str | None:
        # Upstream's remotecommand.NewOptions; an empty command is the runtime's to refuse.
        if not (self.stdin or self.stdout or self.stderr):
            return "you must specify at least 1 of stdin, stdout, stderr"
        return None


def parse_ports(value: str) -> list[int] | None:
    """``80,8080`` -> [80, 8080]; None if any part is not a port."""
    ports = []
    for part in filter(None, (p.strip() for p in value.split(","))):
        if not part.isdigit() or not 0 < int(part) < 65536:
            return None
        ports.append(int(part))
    return ports


def setup_streaming(app: web.Application, runtime_channel: grpc.aio.Channel,
                    resolve_container: ResolveContainer,
                    resolve_sandbox: ResolveSandbox) -> None:
    runtime = cri_grpc.RuntimeServiceStub(runtime_channel)

    async def _relay(request: web.Request, call) -> web.StreamResponse:
        if not upgrade.is_upgrade(request):
            return _error(400, "Upgrade request required")
        try:
            resp = await call
        except grpc.aio.AioRpcError as exc:
            return _error(_GRPC_HTTP.get(exc.code(), 500), exc.details() or str(exc.code()))
        try:
            return await upgrade.relay(request, resp.url)
        except upgrade.UpstreamError as exc:
            log.warning("runtime streaming server: %s", exc)
            return _error(502, f"error dialing the container runtime: {exc}")

    async def _container(request: web.Request) -> str | web.Response:
        m = request.match_info
        cid = await resolve_container(m["namespace"], m["pod"], m["container"])
        # Upstream's kubelet text (GetExec/GetAttach when the container is not running).
        return cid or _error(404, f'container not found ("{m["container"]}")')

    async def exec_(request: web.Request) -> web.StreamResponse:
        opts = StreamOptions(request.query, exec_=True)
        if problem := opts.problem():
            return _error(400, problem)
        cid = await _container(request)
        if isinstance(cid, web.Response):
            return cid
        return await _relay(request, runtime.Exec(cri.ExecRequest(
            container_id=cid, cmd=opts.command, tty=opts.tty, stdin=opts.stdin,
            stdout=opts.stdout, stderr=opts.stderr), timeout=CRI_TIMEOUT))

    async def attach(request: web.Request) -> web.StreamResponse:
        opts = StreamOptions(request.query, exec_=False)
        if problem := opts.problem():
            return _error(400, problem)
        cid = await _container(request)
        if isinstance(cid, web.Response):
            return cid
        return await _relay(request, runtime.Attach(cri.AttachRequest(
            container_id=cid, tty=opts.tty, stdin=opts.stdin, stdout=opts.stdout,
            stderr=opts.stderr), timeout=CRI_TIMEOUT))

    async def port_forward(request: web.Request) -> web.StreamResponse:
        ports = parse_ports(request.query.get("port", ""))
        if ports is None:
            return _error(400, f"invalid port list {request.query.get('port')!r}")
        m = request.match_info
        sandbox = await resolve_sandbox(m["namespace"], m["pod"])
        if not sandbox:
            return _error(404, "pod does not exist")
        return await _relay(request, runtime.PortForward(cri.PortForwardRequest(
            pod_sandbox_id=sandbox, port=ports), timeout=CRI_TIMEOUT))

    for verb in ("GET", "POST"):
        for path, handler in (
                ("/exec/{namespace}/{pod}/{container}", exec_),
                ("/attach/{namespace}/{pod}/{container}", attach),
                ("/portForward/{namespace}/{pod}", port_forward)):
            app.router.add_route(verb, path, handler)
