"""Forwarding names outside the cluster to the host's resolvers (CoreDNS's
``forward . /etc/resolv.conf``): the query bytes go out unchanged, over the
transport the client used; each server is tried in turn with a timeout, and
when none answers the client gets SERVFAIL."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import struct
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
DNS_PORT = 53


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int = DNS_PORT


def read_resolv_conf(path: str | Path, exclude: set[str] = frozenset()) -> list[Upstream]:
    """``nameserver`` lines of a resolv.conf, minus our own listen addresses
    (a node whose resolv.conf names the cluster DNS must not loop to itself).
    ``nameserver IP#port`` is accepted for tests and odd setups."""
    out = []
    try:
        text = Path(path).read_text()
    except OSError as exc:
        log.warning("cannot read %s: %s; names outside the cluster will fail", path, exc)
        return []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2 or parts[0] != "nameserver":
            continue
        host, _, port = parts[1].partition("#")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            continue
        up = Upstream(host, int(port) if port.isdigit() else DNS_PORT)
        if f"{up.host}:{up.port}" in exclude or up.host in exclude:
            continue
        out.append(up)
    return out


class _Once(asyncio.DatagramProtocol):
    def __init__(self, query_id: bytes):
        self.query_id = query_id
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr) -> None:
        if data[:2] == self.query_id and not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


async def _udp(up: Upstream, packet: bytes, timeout: float) -> bytes:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        lambda: _Once(packet[:2]), remote_addr=(up.host, up.port))
    try:
        transport.sendto(packet)
        return await asyncio.wait_for(proto.reply, timeout)
    finally:
        transport.close()


async def _tcp(up: Upstream, packet: bytes, timeout: float) -> bytes:
    async def exchange() -> bytes:
        reader, writer = await asyncio.open_connection(up.host, up.port)
        try:
            writer.write(struct.pack("!H", len(packet)) + packet)
            await writer.drain()
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            return await reader.readexactly(length)
        finally:
            writer.close()
    return await asyncio.wait_for(exchange(), timeout)


class Forwarder:
    def __init__(self, upstreams: list[Upstream], timeout: float = 2.0):
        self.upstreams = upstreams
        self.timeout = timeout

    async def forward(self, packet: bytes, tcp: bool = False) -> bytes | None:
        """The upstream's reply, or None when no upstream answered."""
        for up in self.upstreams:
            try:
                return await (_tcp if tcp else _udp)(up, packet, self.timeout)
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                log.debug("forward to %s:%d failed: %r", up.host, up.port, exc)
        return None
