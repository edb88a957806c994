"""etcd v3 access over gRPC (aetcd's generated stubs on a TLS channel).

aetcd's high-level client only opens insecure channels and cannot read at a
revision, so we drive its stubs directly: ranges at a revision with limits,
compare-and-swap transactions on mod_revision, and one bidirectional watch
stream per watch. Values are raw bytes; (de)serialisation and encryption live
above this layer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from aetcd import rpc

from bootstrap.api.errors import APIError, too_large_resource_version


class FutureRevision(Exception):
    """The revision asked for is newer than etcd's (a client's from before a restore)."""


class Compacted(Exception):
    """The revision asked for is older than etcd's compaction point."""

    def __init__(self, compact_revision: int):
        super().__init__(f"revision compacted below {compact_revision}")
        self.compact_revision = compact_revision


@dataclass(slots=True)
class KV:
    key: str
    value: bytes
    mod_revision: int
    create_revision: int


@dataclass(slots=True)
class WatchEvent:
    type: str  # "PUT" or "DELETE"
    key: str
    value: bytes  # new value for PUT, previous value for DELETE (may be b"")
    mod_revision: int
    create_revision: int


# etcd answers a progress request once the stream has sent everything up to
# the revision in the answer's header (etcd >= 3.4).
PROGRESS = rpc.WatchRequest(progress_request=rpc.WatchProgressRequest())


def prefix_end(prefix: bytes) -> bytes:
    b = bytearray(prefix)
    for i in range(len(b) - 1, -1, -1):
        if b[i] < 0xFF:
            b[i] += 1
            return bytes(b[: i + 1])
    return b"\0"


def _kv(kv) -> KV:
    return KV(kv.key.decode(), kv.value, kv.mod_revision, kv.create_revision)


class Etcd:
    """A connection to an etcd cluster: one channel per endpoint, failing over in order.

    One channel per member (rather than one balanced channel) keeps TLS server-name
    checks per member certificate, whose SANs name only that member.
    """

    def __init__(self, endpoints: list[str], ca: bytes | None = None,
                 cert: bytes | None = None, key: bytes | None = None,
                 timeout: float = 10.0, metrics=None):
        self.endpoints = endpoints
        self._ca, self._cert, self._key = ca, cert, key
        self.timeout = timeout
        self.metrics = metrics
        self._channels: list[grpc.aio.Channel] = []
        self._current = 0

    async def connect(self) -> None:
        options = [("grpc.max_receive_message_length", 256 * 1024 * 1024),
                   ("grpc.keepalive_time_ms", 30000)]
        for endpoint in self.endpoints:
            target = endpoint.split("://", 1)[-1].rstrip("/")
            if endpoint.startswith("https://") or self._ca:
                creds = grpc.ssl_channel_credentials(self._ca, self._key, self._cert)
                self._channels.append(grpc.aio.secure_channel(target, creds, options=options))
            else:
                self._channels.append(grpc.aio.insecure_channel(target, options=options))
        self._use(0)

    def _use(self, index: int) -> None:
        self._current = index % len(self._channels)
        channel = self._channels[self._current]
        self.kv = rpc.KVStub(channel)
        self.lease_stub = rpc.LeaseStub(channel)
        self.watch_stub = rpc.WatchStub(channel)
        self.maintenance = rpc.MaintenanceStub(channel)

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()
        self._channels = []

    async def _call(self, op: str, stub: str, method: str, request):
        start = time.perf_counter()
        try:
            for attempt in range(len(self._channels)):
                try:
                    return await getattr(getattr(self, stub), method)(request,
                                                                      timeout=self.timeout)
                except grpc.aio.AioRpcError as exc:
                    if exc.code() != grpc.StatusCode.UNAVAILABLE or \
                            attempt == len(self._channels) - 1:
                        raise
                    self._use(self._current + 1)  # that member is down: try the next
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.OUT_OF_RANGE:
                if "future" in (exc.details() or ""):
                    raise FutureRevision() from exc
                raise Compacted(0) from exc
            raise APIError(500, "InternalError",
                           f"etcd {op} failed: {exc.details() or exc.code().name}") from exc
        finally:
            if self.metrics is not None:
                self.metrics.etcd_observe(op, time.perf_counter() - start)

    async def get(self, key: str) -> KV | None:
        resp = await self._call("get", "kv", "Range", rpc.RangeRequest(key=key.encode()))
        return _kv(resp.kvs[0]) if resp.kvs else None

    async def range(self, prefix: str, *, start: str | None = None, revision: int = 0,
                    limit: int = 0) -> tuple[list[KV], int, bool]:
        """Keys under ``prefix`` from ``start`` (inclusive) at ``revision`` (0: latest).

        Returns (kvs, revision of the read, more).
        """
        p = prefix.encode()
        req = rpc.RangeRequest(key=(start or prefix).encode(), range_end=prefix_end(p),
                               revision=revision, limit=limit)
        try:
            resp = await self._call("list", "kv", "Range", req)
        except FutureRevision:
            # As upstream's etcd3 store: at once, no retry period (etcd knows its revision).
            raise too_large_resource_version(revision, await self.current_revision()) from None
        return [_kv(kv) for kv in resp.kvs], resp.header.revision, resp.more

    async def count(self, prefix: str) -> int:
        p = prefix.encode()
        resp = await self._call("count", "kv", "Range",
                                rpc.RangeRequest(key=p, range_end=prefix_end(p), count_only=True))
        return resp.count

    async def txn(self, compare: list, success: list, failure: list | None = None):
        resp = await self._call("txn", "kv", "Txn",
                                rpc.TxnRequest(compare=compare, success=success,
                                               failure=failure or []))
        return resp

    # Building blocks for transactions.
    @staticmethod
    def cmp_mod(key: str, rev: int):
        return rpc.Compare(key=key.encode(), target=rpc.Compare.MOD, result=rpc.Compare.EQUAL,
                           mod_revision=rev)

    @staticmethod
    def cmp_absent(key: str):
        return rpc.Compare(key=key.encode(), target=rpc.Compare.CREATE,
                           result=rpc.Compare.EQUAL, create_revision=0)

    @staticmethod
    def op_put(key: str, value: bytes):
        return rpc.RequestOp(request_put=rpc.PutRequest(key=key.encode(), value=value))

    @staticmethod
    def op_delete(key: str):
        return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key.encode()))

    @staticmethod
    def op_get(key: str):
        return rpc.RequestOp(request_range=rpc.RangeRequest(key=key.encode()))

    async def create(self, key: str, value: bytes, extra_ops=(), extra_cmp=()) -> int | None:
        """Put ``key`` only if absent; returns the new revision or None if it exists."""
        resp = await self.txn([self.cmp_absent(key), *extra_cmp],
                              [self.op_put(key, value), *extra_ops])
        return resp.header.revision if resp.succeeded else None

    async def update(self, key: str, value: bytes, expected: int, extra_ops=()) -> int | None:
        """Put ``key`` if its mod_revision is ``expected``; None on mismatch."""
        resp = await self.txn([self.cmp_mod(key, expected)], [self.op_put(key, value),
                                                               *extra_ops])
        return resp.header.revision if resp.succeeded else None

    async def delete(self, key: str, expected: int, extra_ops=()) -> int | None:
        resp = await self.txn([self.cmp_mod(key, expected)], [self.op_delete(key), *extra_ops])
        return resp.header.revision if resp.succeeded else None

    async def current_revision(self) -> int:
        resp = await self._call("get", "kv", "Range", rpc.RangeRequest(key=b"\0", limit=1,
                                                                       count_only=True))
        return resp.header.revision

    async def compact(self, revision: int) -> None:
        try:
            await self._call("compact", "kv", "Compact",
                             rpc.CompactionRequest(revision=revision))
        except (Compacted, FutureRevision, APIError):
            # Another API server compacted first (the same outcome), or the revision is
            # from before an etcd restore: nothing to compact yet.
            pass

    async def put_with_lease(self, key: str, value: bytes, ttl: int) -> int:
        """Put ``key`` attached to a fresh lease of ``ttl`` seconds; returns the lease id."""
        grant = await self._call("lease", "lease_stub", "LeaseGrant",
                                 rpc.LeaseGrantRequest(TTL=ttl))
        await self._call("put", "kv", "Put", rpc.PutRequest(key=key.encode(), value=value,
                                                            lease=grant.ID))
        return grant.ID

    async def keep_alive(self, lease_id: int) -> bool:
        """Refresh a lease once; False when it has already expired."""
        async def one():
            yield rpc.LeaseKeepAliveRequest(ID=lease_id)

        start = time.perf_counter()
        call = self.lease_stub.LeaseKeepAlive(one(), timeout=self.timeout)
        try:
            async for resp in call:
                return resp.TTL > 0
            return False
        except grpc.aio.AioRpcError as exc:
            raise APIError(500, "InternalError", f"etcd lease keepalive failed: "
                                                 f"{exc.details() or exc.code().name}") from exc
        finally:
            call.cancel()
            if self.metrics is not None:
                self.metrics.etcd_observe("lease", time.perf_counter() - start)

    async def revoke(self, lease_id: int) -> None:
        await self._call("lease", "lease_stub", "LeaseRevoke",
                         rpc.LeaseRevokeRequest(ID=lease_id))

    async def status(self) -> None:
        await self._call("status", "maintenance", "Status", rpc.StatusRequest())

    async def watch(self, prefix: str, start_revision: int,
                    requests: asyncio.Queue | None = None,
                    ) -> AsyncIterator[list[WatchEvent] | int]:
        """Events under ``prefix`` from ``start_revision``, one list per etcd response.

        Yields an int (the header revision) for progress notifications; callers
        ask for one by putting ``PROGRESS`` on ``requests``. Raises Compacted if
        the start revision is compacted.
        """
        p = prefix.encode()
        create = rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
            key=p, range_end=prefix_end(p), start_revision=start_revision, prev_kv=True,
            progress_notify=True))
        requests = requests if requests is not None else asyncio.Queue()
        while not requests.empty():
            requests.get_nowait()
        await requests.put(create)

        async def gen():
            while True:
                item = await requests.get()
                if item is None:
                    return
                yield item

        call = self.watch_stub.Watch(gen())
        try:
            async for resp in call:
                if resp.compact_revision:
                    raise Compacted(resp.compact_revision)
                if resp.canceled:
                    raise APIError(500, "InternalError",
                                   f"etcd watch canceled: {resp.cancel_reason}")
                if not resp.events:
                    if not resp.created:
                        yield resp.header.revision
                    continue
                out = []
                for ev in resp.events:
                    if ev.type == rpc.Event.PUT:
                        out.append(WatchEvent("PUT", ev.kv.key.decode(), ev.kv.value,
                                              ev.kv.mod_revision, ev.kv.create_revision))
                    else:
                        out.append(WatchEvent("DELETE", ev.kv.key.decode(),
                                              ev.prev_kv.value, ev.kv.mod_revision,
                                              ev.prev_kv.create_revision))
                yield out
        finally:
            await requests.put(None)
            call.cancel()
