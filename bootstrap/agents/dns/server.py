"""The DNS wire side: UDP and TCP listeners, dnslib for parsing and packing,
the Resolver for cluster names and the Forwarder for everything else."""

from __future__ import annotations

import asyncio
import logging
import struct
import time

from dnslib import OPCODE, QTYPE, RCODE, DNSError, DNSRecord
from prometheus_client import CollectorRegistry, Counter, Histogram

from bootstrap.agents.dns.forward import Forwarder
from bootstrap.agents.dns.resolve import Resolver

log = logging.getLogger(__name__)
UDP_MAX = 512
EDNS_MAX = 1232          # the DNS flag day 2020 default


class Metrics:
    """CoreDNS's metric names, so existing dashboards read ours."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("coredns_dns_requests_total", "Counter of DNS requests made",
                                ["proto", "type"], registry=self.registry)
        self.responses = Counter("coredns_dns_responses_total", "Counter of response status codes",
                                 ["rcode"], registry=self.registry)
        self.duration = Histogram("coredns_dns_request_duration_seconds",
                                  "Histogram of the time (in seconds) each request took",
                                  ["type"], registry=self.registry,
                                  buckets=(0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016,
                                           0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048,
                                           4.096, 8.192))
        self.forwards = Counter("coredns_forward_requests_total",
                                "Counter of requests made per upstream", registry=self.registry)
        self.forward_failures = Counter("coredns_forward_healthcheck_broken_total",
                                        "Counter of times no upstream answered",
                                        registry=self.registry)


def _type_name(qtype: int) -> str:
    name = QTYPE.get(qtype)
    return name if isinstance(name, str) else "other"


class DNSHandler:
    def __init__(self, resolver: Resolver, forwarder: Forwarder, metrics: Metrics | None = None):
        self.resolver = resolver
        self.forwarder = forwarder
        self.metrics = metrics or Metrics()

    async def handle(self, data: bytes, tcp: bool = False) -> bytes | None:
        start = time.perf_counter()
        try:
            query = DNSRecord.parse(data)
        except (DNSError, Exception):   # dnslib raises assorted errors on junk
            return _formerr(data)
        header = query.header
        if header.qr:
            return None                  # a response sent to us: never answer it
        qtype = query.q.qtype if query.questions else 0
        self.metrics.requests.labels("tcp" if tcp else "udp", _type_name(qtype)).inc()
        reply = query.reply()
        reply.header.ra = 1
        if header.opcode != OPCODE.QUERY or len(query.questions) != 1:
            reply.header.rcode = RCODE.NOTIMP if header.opcode != OPCODE.QUERY else RCODE.FORMERR
            return self._done(reply, start, qtype, tcp, query)
        answer = self.resolver.resolve(str(query.q.qname), qtype)
        if answer is None:
            self.metrics.forwards.inc()
            raw = await self.forwarder.forward(data, tcp)
            if raw is not None:
                self.metrics.duration.labels(_type_name(qtype)).observe(
                    time.perf_counter() - start)
                self.metrics.responses.labels(_rcode_of(raw)).inc()
                return raw
            self.metrics.forward_failures.inc()
            reply.header.rcode = RCODE.SERVFAIL
            return self._done(reply, start, qtype, tcp, query)
        reply.header.aa = 1
        reply.header.rcode = answer.rcode
        for rr in answer.answer:
            reply.add_answer(rr)
        for rr in answer.authority:
            reply.add_auth(rr)
        for rr in answer.additional:
            reply.add_ar(rr)
        return self._done(reply, start, qtype, tcp, query)

    def _done(self, reply: DNSRecord, start: float, qtype: int, tcp: bool,
              query: DNSRecord) -> bytes:
        packed = reply.pack()
        if not tcp:
            limit = UDP_MAX
            for ar in query.ar:
                if ar.rtype == QTYPE.OPT:
                    limit = max(UDP_MAX, min(ar.rclass, EDNS_MAX))
            if len(packed) > limit:
                # Too big for this datagram: say so, the client retries over TCP.
                short = query.reply()
                short.header.tc, short.header.aa, short.header.ra = 1, reply.header.aa, 1
                short.header.rcode = reply.header.rcode
                packed = short.pack()
        self.metrics.duration.labels(_type_name(qtype)).observe(time.perf_counter() - start)
        self.metrics.responses.labels(RCODE.get(reply.header.rcode)).inc()
        return packed


def _rcode_of(raw: bytes) -> str:
    return RCODE.get(raw[3] & 0x0F) if len(raw) >= 4 else "FORMERR"


def _formerr(data: bytes) -> bytes | None:
    if len(data) < 12:
        return None
    # Echo the id, set QR and FORMERR; no question section (we could not read it).
    flags = 0x8000 | (data[2] & 0x79) << 8 | RCODE.FORMERR
    return data[:2] + struct.pack("!HHHHH", flags, 0, 0, 0, 0)


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, handler: DNSHandler):
        self.handler = handler
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task] = set()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        task = asyncio.create_task(self._answer(data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, data: bytes, addr) -> None:
        try:
            out = await self.handler.handle(data, tcp=False)
        except Exception:
            log.exception("dns: handling a query from %s failed", addr)
            return
        if out is not None and self.transport is not None:
            self.transport.sendto(out, addr)


class DNSServer:
    def __init__(self, handler: DNSHandler):
        self.handler = handler
        self._udp: list[asyncio.DatagramTransport] = []
        self._tcp: list[asyncio.AbstractServer] = []

    async def start(self, addresses: list[tuple[str, int]]) -> None:
        loop = asyncio.get_running_loop()
        for host, port in addresses:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UDP(self.handler), local_addr=(host, port))
            self._udp.append(transport)
            self._tcp.append(await asyncio.start_server(self._tcp_client, host, port))

    async def _tcp_client(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    (length,) = struct.unpack("!H", await asyncio.wait_for(
                        reader.readexactly(2), 30))
                    data = await reader.readexactly(length)
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                out = await self.handler.handle(data, tcp=True)
                if out is None:
                    return
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        finally:
            writer.close()

    async def stop(self) -> None:
        for t in self._udp:
            t.close()
        for s in self._tcp:
            s.close()
            await s.wait_closed()
        self._udp.clear()
        self._tcp.clear()
