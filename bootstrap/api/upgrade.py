"""Relay an HTTP/1.1 connection upgrade (SPDY/3.1 or WebSocket) to another server, bytes as they are.

The API server relays ``kubectl exec/attach/port-forward`` to the node's kubelet,
and the kubelet relays them to the runtime's streaming server (containerd's),
as upstream's UpgradeAwareHandler does: the upgrade request goes on with only
the headers the protocols need (never the client's credentials), the upstream's
answer comes back, and after a ``101 Switching Protocols`` both connections are
spliced. Nothing here reads SPDY or WebSocket frames, so whichever protocol the
client and the runtime agree on passes through (see docs/adr/0004). A refusal
(any other status) is returned to the client with its status and body, which is
how kubectl learns to fall back from WebSocket to SPDY.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from aiohttp import web
from multidict import CIMultiDict

# Request headers the upgrade protocols read; everything else (Authorization,
# Impersonate-*, cookies) stays with the hop that authenticated the client.
FORWARD_REQUEST_HEADERS = (
    "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions", "X-Stream-Protocol-Version",
    "User-Agent",
)
# Response headers of a 101 that belong to the protocol handshake.
FORWARD_RESPONSE_HEADERS = (
    "Upgrade", "Connection", "Sec-WebSocket-Accept", "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions", "X-Stream-Protocol-Version",
)
MAX_HEAD = 64 * 1024
MAX_ERROR_BODY = 1024 * 1024
CHUNK = 64 * 1024
HIGH_WATER = 8  # queued client chunks before the client is paused


class UpstreamError(Exception):
    """The upstream could not be reached or did not answer with HTTP."""


def is_upgrade(request: web.Request) -> bool:
    conn = request.headers.get("Connection", "")
    return bool(request.headers.get("Upgrade")) and "upgrade" in conn.lower()


def forwarded_headers(headers: Mapping[str, str], names: Iterable[str]) -> list[tuple[str, str]]:
    """(name, value) for each wanted header; repeated headers stay repeated."""
    out = []
    getall = getattr(headers, "getall", None)
    for name in names:
        values = getall(name, []) if getall else ([headers[name]] if name in headers else [])
        out += [(name, v) for v in values]
    return out


def _head(method: str, target: str, host: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers:
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name} holds a line break")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _parse_head(raw: bytes) -> tuple[int, str, CIMultiDict]:
    text = raw.decode("latin-1").rstrip("\r\n")
    status_line, *header_lines = text.split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise UpstreamError(f"not an HTTP response: {status_line[:80]!r}")
    headers: CIMultiDict = CIMultiDict()
    for line in header_lines:
        name, _, value = line.partition(":")
        headers.add(name.strip(), value.strip())
    return int(parts[1]), parts[2] if len(parts) > 2 else "", headers


async def _read_body(reader: asyncio.StreamReader, headers: CIMultiDict) -> bytes:
    length = headers.get("Content-Length")
    if length is not None and length.isdigit():
        return await reader.readexactly(min(int(length), MAX_ERROR_BODY))
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        body = b""
        while len(body) < MAX_ERROR_BODY:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                break
            body += await reader.readexactly(size)
            await reader.readline()
        return body
    return await reader.read(MAX_ERROR_BODY)


class _ClientSink:
    """What aiohttp feeds the upgraded client connection's bytes to (its payload parser)."""

    def __init__(self, transport: asyncio.Transport | None):
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.transport = transport
        self.paused = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.queue.put_nowait(bytes(data))
        if self.queue.qsize() >= HIGH_WATER and self.transport is not None and not self.paused:
            self.transport.pause_reading()
            self.paused = True
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(None)

    def got(self) -> None:
        if self.paused and self.queue.qsize() < HIGH_WATER // 2 and self.transport is not None:
            self.transport.resume_reading()
            self.paused = False


async def open_upgrade(url: str, method: str, headers: list[tuple[str, str]],
                       ssl_context: ssl.SSLContext | None, *, timeout: float = 10.0,
                       server_hostname: str | None = None
                       ) -> tuple[int, str, CIMultiDict, asyncio.StreamReader,
                                  asyncio.StreamWriter]:
    """Send the upgrade request to ``url``; (status, reason, headers, reader, writer).
    ``server_hostname``: the TLS name to verify when it is not the URL's host (a
    Service's DNS name while dialling one of its endpoint addresses)."""
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host, port = parts.hostname or "", parts.port or (443 if secure else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            host, port, ssl=ssl_context if secure else None,
            server_hostname=(server_hostname or host) if secure else None,
            limit=MAX_HEAD), timeout)
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        raise UpstreamError(f"dial tcp {host}:{port}: {exc or type(exc).__name__}") from None
    try:
        writer.write(_head(method, target, parts.netloc, headers))
        raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status, reason, resp_headers = _parse_head(raw)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
            ssl.SSLError) as exc:
        writer.close()
        raise UpstreamError(f"{method} {url}: {exc or type(exc).__name__}") from None
    except UpstreamError:
        writer.close()
        raise
    return status, reason, resp_headers, reader, writer


async def relay(request: web.Request, url: str, ssl_context: ssl.SSLContext | None = None,
                *, extra_headers: Iterable[tuple[str, str]] = (), timeout: float = 10.0,
                server_hostname: str | None = None) -> web.StreamResponse:
    """Forward ``request`` (an upgrade) to ``url`` and splice the connections after a 101.

    Raises UpstreamError when the upstream cannot be reached; a refusal is returned
    as a plain response with the upstream's status, content type and body.
    """
    headers = forwarded_headers(request.headers, FORWARD_REQUEST_HEADERS) + list(extra_headers)
    status, reason, up_headers, reader, writer = await open_upgrade(
        url, request.method, headers, ssl_context, timeout=timeout,
        server_hostname=server_hostname)
    if status != 101:
        try:
            body = await asyncio.wait_for(_read_body(reader, up_headers), timeout)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            body = reason.encode()
        finally:
            writer.close()
        return web.Response(status=status, body=body, headers={
            "Content-Type": up_headers.get("Content-Type", "text/plain; charset=utf-8")})
    resp = web.StreamResponse(status=101, reason=reason or "Switching Protocols",
                              headers=forwarded_headers(up_headers, FORWARD_RESPONSE_HEADERS))
    resp.force_close()
    await resp.prepare(request)
    await splice(request, resp, reader, writer)
    return resp


async def splice(request: web.Request, resp: web.StreamResponse,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes both ways until either side closes; then close both."""
    sink = _ClientSink(request.transport)
    request.protocol.set_parser(sink)  # bytes after the request head now come to us

    async def client_to_upstream() -> None:
        while True:
            data = await sink.queue.get()
            sink.got()
            if data is None:
                return
            writer.write(data)
            await writer.drain()

    async def upstream_to_client() -> None:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                return
            await resp.write(data)

    tasks = [asyncio.ensure_future(client_to_upstream()),
             asyncio.ensure_future(upstream_to_client())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
        if request.transport is not None:
            request.transport.close()
