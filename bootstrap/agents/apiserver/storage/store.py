"""Object storage on etcd: codec, encryption, optimistic concurrency, watch caches.

Objects are stored as JSON without metadata.resourceVersion; the RV is the etcd
mod_revision and is filled in on every read. Every write is a transaction that
compares the key's create or mod revision, so any number of API servers can
share one etcd without coordinating.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import posixpath
from collections.abc import Awaitable, Callable

import orjson

from bootstrap.api import conversion, errors
from bootstrap.api.resources import CATALOGUE, Resource

from . import encryption
from .cache import WatchCache
from .etcd import Compacted, Etcd

log = logging.getLogger(__name__)

COMPACT_INTERVAL = 300.0


def encode_continue(rv: int, key: str, prefix: str) -> str:
    """A continue token whose start key is relative to the list's own key prefix, so a
    client can only ever continue inside the resource and namespace it asked for."""
    if not key.startswith(prefix):
        raise ValueError(f"continue key {key!r} is outside the list prefix {prefix!r}")
    return base64.urlsafe_b64encode(orjson.dumps({"v": "meta.k8s.io/v1", "rv": rv,
                                                  "start": "/" + key[len(prefix):]})).decode()


def decode_continue(token: str, prefix: str) -> tuple[int, str]:
    """(revision, absolute start key) of a token from ``encode_continue`` (upstream's
    storage.DecodeContinue): the relative key must already be clean, so ``..`` or ``//``
    cannot climb out of ``prefix``; the revision must be positive."""
    try:
        d = orjson.loads(base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4)))
        version, rv, start = d["v"], d["rv"], d["start"]
    except Exception:
        raise errors.bad_request("continue key is not valid: incorrect encoded start "
                                 "resourceVersion (version meta.k8s.io/v1)") from None
    if version != "meta.k8s.io/v1":
        raise errors.bad_request(f"continue key is not valid: server does not recognize "
                                 f"this encoded version {version!r}")
    if type(rv) is not int or rv <= 0:
        raise errors.bad_request("continue key is not valid: incorrect encoded start "
                                 "resourceVersion (version meta.k8s.io/v1)")
    if not isinstance(start, str) or not start:
        raise errors.bad_request("continue key is not valid: encoded start key empty "
                                 "(version meta.k8s.io/v1)")
    if not start.startswith("/") or _clean(start) != start:
        raise errors.bad_request(f"continue key is not valid: {start}")
    return rv, prefix + start[1:]


def _clean(path: str) -> str:
    """Go's path.Clean for an absolute path (posixpath keeps a leading '//')."""
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


class Store:
    def __init__(self, etcd: Etcd, encryption_table: dict | None = None):
        self.etcd = etcd
        self.encryption = encryption_table or {}
        self.caches: dict[str, WatchCache] = {}
        self._compactor: asyncio.Task | None = None

    def transformer(self, res: Resource) -> encryption.Transformer:
        return encryption.for_resource(self.encryption, res.plural, res.group)

    # -- codec ------------------------------------------------------------------
    def decoder(self, res: Resource) -> Callable[[str, bytes, int], dict]:
        tr = self.transformer(res)

        converts = res.storage_api_version != res.gv

        def decode(key: str, value: bytes, rev: int) -> dict:
            obj = orjson.loads(tr.decrypt(value, key))
            if converts:
                # Read at another served version than the storage one.
                obj = conversion.convert(obj, res.gv)
            obj.setdefault("metadata", {})["resourceVersion"] = str(rev)
            return obj
        return decode

    def encode(self, res: Resource, key: str, obj: dict) -> bytes:
        meta = obj.get("metadata", {})
        rv = meta.pop("resourceVersion", None)
        stored_as = res.storage_api_version
        if obj.get("apiVersion") != stored_as:
            # Every served version of a kind is stored as its storage version.
            obj = conversion.convert(obj, stored_as)
        try:
            data = orjson.dumps(obj)
        finally:
            if rv is not None:
                meta["resourceVersion"] = rv
        return self.transformer(res).encrypt(data, key)

    # -- lifecycle --------------------------------------------------------------
    async def start(self, *, compact: bool = True) -> None:
        for res in CATALOGUE:
            # One cache per etcd prefix, decoding at the storage version.
            if res.stored and res.storage_api_version == res.gv and \
                    res.etcd_prefix not in self.caches:
                cache = WatchCache(res, self.etcd, self.decoder(res))
                self.caches[res.etcd_prefix] = cache
                cache.start()
        await asyncio.gather(*(c.ready.wait() for c in self.caches.values()))
        if compact:
            self._compactor = asyncio.create_task(self._compact_loop())

    async def stop(self) -> None:
        if self._compactor:
            self._compactor.cancel()
        await asyncio.gather(*(c.stop() for c in self.caches.values()))

    def cache(self, res: Resource) -> WatchCache:
        cache = self.caches.get(res.etcd_prefix)
        if cache is None:
            # A resource that stopped being served (its CRD went away) mid-request.
            raise errors.APIError(404, "NotFound",
                                  "the server could not find the requested resource")
        return cache

    async def add_resource(self, res: Resource) -> None:
        """Start the watch cache of a resource served from now on (a CRD's storage
        version; every served version of one CRD shares it, keyed by plural.group)."""
        key = res.etcd_prefix
        if key in self.caches:
            return
        cache = WatchCache(res, self.etcd, self.decoder(res))
        self.caches[key] = cache
        cache.start()
        await cache.ready.wait()

    async def remove_resource(self, res: Resource) -> None:
        cache = self.caches.pop(res.etcd_prefix, None)
        if cache is not None:
            for watcher in list(cache.watchers):
                watcher.push(None)  # ends the stream; the client's re-watch gets 404
            await cache.stop()

    async def _compact_loop(self) -> None:
        # Compact to the revision seen one interval ago, so watchers always keep
        # at least one interval of history (upstream's compaction policy).
        previous = 0
        while True:
            await asyncio.sleep(COMPACT_INTERVAL)
            try:
                current = await self.etcd.current_revision()
                if previous:
                    await self.etcd.compact(previous)
                previous = current
            except Exception as exc:
                log.warning("compaction failed: %s", exc)

    # -- reads ------------------------------------------------------------------
    async def get(self, res: Resource, ns: str | None, name: str, *,
                  from_cache: bool = False, min_rv: int = 0) -> dict:
        """``min_rv``: the request's resourceVersion (not older than), refused when etcd
        has not reached it, as upstream's validateMinimumResourceVersion."""
        key = res.key(ns, name)
        if min_rv:
            current = await self.etcd.current_revision()
            if min_rv > current:
                raise errors.too_large_resource_version(min_rv, current)
        if from_cache:
            obj = self.cache(res).get(key)
        else:
            kv = await self.etcd.get(key)
            obj = self.decoder(res)(key, kv.value, kv.mod_revision) if kv else None
        if obj is None:
            raise errors.not_found(res.plural, name, res.group)
        return obj

    async def get_or_none(self, res: Resource, ns: str | None, name: str) -> dict | None:
        try:
            return await self.get(res, ns, name)
        except errors.APIError as exc:
            if exc.code == 404:
                return None
            raise

    async def list(self, res: Resource, ns: str | None, *, rv: str | None = None,
                   limit: int = 0, cont: str | None = None,
                   match: Callable[[dict], bool] | None = None, min_rv: int = 0,
                   ) -> tuple[list[dict], int, str | None, int | None]:
        """Returns (items, list resourceVersion, continue token, remainingItemCount).

        ``min_rv``: resourceVersionMatch=NotOlderThan's revision, checked against the
        read's as upstream's validateMinimumResourceVersion."""
        prefix = res.etcd_prefix + "/" + (f"{ns}/" if res.namespaced and ns else "")
        if rv and not rv.isdigit():
            raise errors.bad_request(f"invalid resource version: {rv}")
        if cont:
            crev, start = decode_continue(cont, prefix)
            return await self._list_etcd(res, prefix, crev, start, limit, match, True)
        # Only RV=0 ("any") lists come from the cache. Consistent and NotOlderThan
        # reads go to etcd: etcd before 3.4.25 may send a progress notification ahead
        # of pending events (etcd-io/etcd#15220), so "the cache has caught up" cannot
        # be proven on the etcd Debian ships.
        if rv == "0":
            items, crev = self.cache(res).list()
            items = [o for o in items
                     if (not ns or not res.namespaced or o["metadata"].get("namespace") == ns)
                     and (match is None or match(o))]
            items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
            return items, crev, None, None
        out = await self._list_etcd(res, prefix, int(rv) if rv else 0, None, limit, match,
                                    False)
        if min_rv > out[1]:
            raise errors.too_large_resource_version(min_rv, out[1])
        return out

    async def _list_etcd(self, res, prefix, revision, start, limit, match, continuing):
        decode = self.decoder(res)
        items: list[dict] = []
        read_rev = revision
        key = start
        more = False
        # Keep fetching pages until the filtered result fills the limit, as
        # upstream's storage does for selector-filtered chunked lists.
        while True:
            want = (limit - len(items) + 1) if limit else 0
            try:
                kvs, header_rev, more = await self.etcd.range(prefix, start=key,
                                                              revision=read_rev, limit=want)
            except Compacted:
                if not continuing:
                    raise errors.gone(f"too old resource version: {revision}") from None
                raise errors.gone("The provided continue parameter is too old to display a "
                                  "consistent list result. You can start a new list without "
                                  "the continue parameter.") from None
            if not read_rev:
                read_rev = header_rev
            last_key = None
            for kv in kvs:
                if limit and len(items) >= limit:
                    more = True
                    break
                last_key = kv.key
                obj = decode(kv.key, kv.value, kv.mod_revision)
                if match is None or match(obj):
                    items.append(obj)
            if not limit or len(items) >= limit or not more or last_key is None:
                break
            key = last_key + "\0"
        token = None
        if limit and more and items:
            last = items[-1]["metadata"]
            last_key = res.key(last.get("namespace"), last["name"])
            token = encode_continue(read_rev, last_key + "\0", prefix)
        return items, read_rev, token, None

    # -- writes -----------------------------------------------------------------
    async def create(self, res: Resource, obj: dict, *, extra_cmp=(), extra_ops=(),
                     on_extra_fail: Callable[[], Awaitable[None]] | None = None) -> dict:
        meta = obj["metadata"]
        key = res.key(meta.get("namespace"), meta["name"])
        value = self.encode(res, key, obj)
        resp = await self.etcd.txn([self.etcd.cmp_absent(key), *extra_cmp],
                                   [self.etcd.op_put(key, value), *extra_ops],
                                   [self.etcd.op_get(key)])
        if not resp.succeeded:
            exists = resp.responses and resp.responses[0].response_range.kvs
            if not exists and on_extra_fail is not None:
                await on_extra_fail()
            raise errors.already_exists(res.plural, meta["name"], res.group)
        out = dict(obj)
        out["metadata"] = dict(meta, resourceVersion=str(resp.header.revision))
        return out

    async def compare_and_put(self, res: Resource, obj: dict) -> dict | None:
        """Write ``obj`` in one transaction if its resourceVersion is still the key's
        mod_revision; None when it is not (or the object is gone)."""
        meta = obj["metadata"]
        rv = meta.get("resourceVersion")
        if not rv or not str(rv).isdigit():
            return None
        key = res.key(meta.get("namespace"), meta["name"])
        resp = await self.etcd.txn([self.etcd.cmp_mod(key, int(rv))],
                                   [self.etcd.op_put(key, self.encode(res, key, obj))])
        if not resp.succeeded:
            return None
        return dict(obj, metadata=dict(meta, resourceVersion=str(resp.header.revision)))

    async def guaranteed_update(self, res: Resource, ns: str | None, name: str,
                                mutate: Callable[[dict], Awaitable[dict | None]], *,
                                precondition_rv: str | None = None,
                                extra: Callable[[dict, dict], tuple] | None = None,
                                ) -> tuple[dict, dict]:
        """Read-modify-write with retries on conflict, as upstream's GuaranteedUpdate.

        ``mutate(current)`` returns the new object (None: delete it). A caller-given
        resourceVersion that does not match is a 409 Conflict, never retried.
        Returns (old, new).
        """
        key = res.key(ns, name)
        decode = self.decoder(res)
        for _ in range(100):
            kv = await self.etcd.get(key)
            if kv is None:
                raise errors.not_found(res.plural, name, res.group)
            current = decode(key, kv.value, kv.mod_revision)
            if precondition_rv and precondition_rv != str(kv.mod_revision):
                raise errors.conflict(res.plural, name, res.group)
            new = await mutate(orjson.loads(orjson.dumps(current)))
            cmp_extra, ops_extra = extra(current, new) if extra else ((), ())
            if new is None:
                resp = await self.etcd.txn([self.etcd.cmp_mod(key, kv.mod_revision),
                                            *cmp_extra],
                                           [self.etcd.op_delete(key), *ops_extra])
                if resp.succeeded:
                    gone = dict(current)
                    gone["metadata"] = dict(current["metadata"],
                                            resourceVersion=str(resp.header.revision))
                    return current, gone
            else:
                if new == current:
                    return current, current  # no-op writes do not bump resourceVersion
                value = self.encode(res, key, new)
                resp = await self.etcd.txn([self.etcd.cmp_mod(key, kv.mod_revision),
                                            *cmp_extra],
                                           [self.etcd.op_put(key, value), *ops_extra])
                if resp.succeeded:
                    new["metadata"]["resourceVersion"] = str(resp.header.revision)
                    return current, new
            if precondition_rv:
                raise errors.conflict(res.plural, name, res.group)
        raise errors.conflict(res.plural, name, res.group)
