"""The upgrade relay (bootstrap.api.upgrade) and the pure parts of both streaming ends."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from multidict import CIMultiDict, MultiDict

from bootstrap.agents.apiserver.handlers.streaming import stream_params, validate_container
from bootstrap.agents.kubelet.streaming import StreamOptions, parse_ports
from bootstrap.api import errors, upgrade

UPGRADE_REQUEST = (
    b"POST /exec/ns/p/c?command=true HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
    b"Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
    b"X-Stream-Protocol-Version: v3.channel.k8s.io\r\n"
    b"Authorization: Bearer secret-token\r\nImpersonate-User: admin\r\n\r\n")


class Upstream:
    """A raw TCP server that records the request head and answers as told."""

    def __init__(self, answer: bytes, echo: bool = False):
        self.answer, self.echo, self.head = answer, echo, b""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.head = await reader.readuntil(b"\r\n\r\n")
        writer.write(self.answer)
        await writer.drain()
        if self.echo:
            while data := await reader.read(1024):
                writer.write(data.upper())
                await writer.drain()
        writer.close()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/up/path?x=1"
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()


async def _front(url: str):
    async def handler(request: web.Request):
        return await upgrade.relay(request, url)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


async def _request(port: int, raw: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    return reader, writer, head


async def test_101_splices_bytes_both_ways_and_drops_credentials():
    answer = (b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
              b"X-Stream-Protocol-Version: v4.channel.k8s.io\r\nX-Internal: no\r\n\r\n")
    async with Upstream(answer, echo=True) as up:
        runner, port = await _front(up.url)
        try:
            reader, writer, head = await _request(port, UPGRADE_REQUEST)
            try:
                assert head.startswith(b"HTTP/1.1 101")
                assert b"X-Stream-Protocol-Version: v4.channel.k8s.io" in head
                assert b"X-Internal" not in head
                writer.write(b"abc")
                assert await asyncio.wait_for(reader.readexactly(3), 10) == b"ABC"
                writer.write(b"xyz" * 100000)
                assert await asyncio.wait_for(reader.readexactly(300000), 10) == b"XYZ" * 100000
            finally:
                writer.close()
        finally:
            await runner.cleanup()
    sent = up.head.decode()
    assert sent.startswith("POST /up/path?x=1 HTTP/1.1\r\n")
    assert "Authorization" not in sent and "Impersonate" not in sent and "secret" not in sent
    assert sent.count("X-Stream-Protocol-Version") == 2  # repeated headers stay repeated


async def test_refusal_comes_back_with_status_and_body():
    answer = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\nContent-Type: text/plain\r\n\r\nnope!\n"
    async with Upstream(answer) as up:
        runner, port = await _front(up.url)
        try:
            reader, writer, head = await _request(port, UPGRADE_REQUEST)
            try:
                assert head.startswith(b"HTTP/1.1 403")
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                assert await reader.readexactly(length) == b"nope!\n"
            finally:
                writer.close()
        finally:
            await runner.cleanup()


async def test_unreachable_or_garbage_upstream_is_an_upstream_error():
    async with Upstream(b"") as up:
        dead = up.url
    with pytest.raises(upgrade.UpstreamError, match="dial tcp"):
        await upgrade.open_upgrade(dead, "GET", [], None, timeout=5)
    async with Upstream(b"SSH-2.0-OpenSSH\r\n\r\n") as up:
        with pytest.raises(upgrade.UpstreamError, match="not an HTTP response"):
            await upgrade.open_upgrade(up.url, "GET", [], None, timeout=5)


def test_header_injection_is_refused():
    with pytest.raises(ValueError):
        upgrade._head("GET", "/", "h", [("User-Agent", "x\r\nAuthorization: forged")])


def test_is_upgrade():
    class R:
        def __init__(self, h):
            self.headers = CIMultiDict(h)
    assert upgrade.is_upgrade(R({"Connection": "keep-alive, Upgrade", "Upgrade": "websocket"}))
    assert not upgrade.is_upgrade(R({"Connection": "keep-alive"}))


# -- kubelet side ------------------------------------------------------------------
def test_stream_options_tty_drops_stderr_and_needs_a_stream():
    opts = StreamOptions(MultiDict([("command", "sh"), ("command", "-c"), ("stdin", "1"),
                                    ("stderr", "true"), ("tty", "1")]), exec_=True)
    assert opts.command == ["sh", "-c"] and opts.stdin and opts.tty and not opts.stderr
    assert StreamOptions(MultiDict(), exec_=True).problem() == (
        "you must specify at least 1 of stdin, stdout, stderr")


@pytest.mark.parametrize("value,want", [("", []), ("80", [80]), ("80,8080", [80, 8080]),
                                        ("0", None), ("70000", None), ("http", None)])
def test_parse_ports(value, want):
    assert parse_ports(value) == want


# -- API server side ---------------------------------------------------------------
POD = {"metadata": {"name": "web"}, "spec": {
    "initContainers": [{"name": "init"}], "containers": [{"name": "a"}, {"name": "b"}]}}


def test_validate_container_as_upstream():
    assert validate_container(POD, "b") == "b"
    assert validate_container(POD, "init") == "init"
    assert validate_container({"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "only"}]}}, None) == "only"
    with pytest.raises(errors.APIError) as exc:
        validate_container(POD, None)
    assert exc.value.code == 400
    assert exc.value.message == ("a container name must be specified for pod web, "
                                 "choose one of: [init a b]")
    with pytest.raises(errors.APIError, match="container zz is not valid for pod web"):
        validate_container(POD, "zz")


def test_stream_params_defaults_and_ports():
    # stdout and stderr default to true, as SetDefaults_PodExecOptions.
    assert stream_params("exec", MultiDict([("command", "ls"), ("command", "/")])) == [
        ("stdout", "1"), ("stderr", "1"), ("command", "ls"), ("command", "/")]
    assert stream_params("attach", MultiDict([("stdin", "true"), ("stderr", "false"),
                                              ("tty", "1")])) == [
        ("stdin", "1"), ("stdout", "1"), ("tty", "1")]
    assert stream_params("portforward", MultiDict([("ports", "80"), ("ports", "8080")])) == [
        ("port", "80,8080")]
    with pytest.raises(errors.APIError, match="invalid port"):
        stream_params("portforward", MultiDict([("ports", "99999")]))


def test_kubelet_errors_become_upstream_statuses():
    from bootstrap.agents.apiserver.handlers.streaming import kubelet_error
    bad = kubelet_error(400, b'previous terminated container "c" in pod "p" not found\n',
                        "pods/log", "p")
    assert (bad.code, bad.reason) == (400, "BadRequest")
    assert bad.message.startswith('previous terminated container "c"')
    assert kubelet_error(500, b"boom", "pods/log", "p").reason == "InternalError"
    nf = kubelet_error(404, b"pod does not exist", "pods/log", "p")
    assert (nf.code, nf.reason) == (404, "NotFound")
    assert nf.message == "the server could not find the requested resource ( pods/log p)"
    assert nf.details == {"name": "p", "kind": "pods/log"}
    forbidden = kubelet_error(403, b"Forbidden (user=x, verb=get)", "pods/log", "p")
    assert forbidden.message == "Forbidden (user=x, verb=get) ( pods/log p)"
    unavailable = kubelet_error(503, b"down", "pods/log", "p")
    assert (unavailable.reason, unavailable.message) == (
        "InternalError", 'an error on the server ("down") has prevented the request from '
                         "succeeding ( pods/log p)")
