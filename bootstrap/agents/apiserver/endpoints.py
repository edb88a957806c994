"""The ``default/kubernetes`` Endpoints and EndpointSlice: every live API server.

As upstream's lease endpoint reconciler: each server keeps
``/registry/masterleases/<ip>`` alive on an etcd lease (TTL 15 s, refreshed every
5 s) and every server periodically writes the set of live keys into the
Endpoints and EndpointSlice. A server that crashes drops out when its lease
expires; one that stops cleanly revokes its lease at once. All writes are
conditional updates of the same derived content, so servers never fight.
"""

from __future__ import annotations

import asyncio
import copy
import logging

import orjson

from bootstrap.api import errors
from bootstrap.api.resources import by_gvr

log = logging.getLogger(__name__)

PREFIX = "/registry/masterleases/"
TTL = 15
REFRESH = 5.0


class EndpointReconciler:
    def __init__(self, server):
        self.server = server
        self.lease_id: int | None = None

    @property
    def key(self) -> str:
        return PREFIX + self.server.advertise_ip

    async def _hold(self) -> None:
        etcd = self.server.etcd
        if self.lease_id is None or not await etcd.keep_alive(self.lease_id):
            body = orjson.dumps({"ip": self.server.advertise_ip, "port": self.server.cfg.secure_port})
            self.lease_id = await etcd.put_with_lease(self.key, body, TTL)

    async def start(self) -> None:
        await self._hold()
        await self.reconcile()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(REFRESH)
            try:
                await self._hold()
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # etcd hiccup: the next round repairs it
                log.warning("apiserver endpoint reconcile: %s", exc)

    async def stop(self) -> None:
        if self.lease_id is not None:
            await self.server.etcd.revoke(self.lease_id)
            self.lease_id = None
        await self.reconcile()

    async def live(self) -> list[tuple[str, int]]:
        kvs, _, _ = await self.server.etcd.range(PREFIX)
        out = []
        for kv in kvs:
            try:
                d = orjson.loads(kv.value)
                out.append((d["ip"], int(d["port"])))
            except (orjson.JSONDecodeError, KeyError, ValueError):
                continue
        return sorted(out)

    async def reconcile(self) -> None:
        live = await self.live()
        ips = sorted({ip for ip, _ in live})
        # Upstream exposes one port; servers of one cluster share --secure-port.
        port = live[0][1] if live else self.server.cfg.secure_port
        ports = [{"name": "https", "port": port, "protocol": "TCP"}]
        ctx = self.server.system_ctx()
        registry, store = self.server.registry, self.server.store

        async def eps(current: dict) -> dict:
            addrs = [{"ip": ip} for ip in ips]
            current["subsets"] = [{"addresses": addrs, "ports": ports}] if addrs else []
            return current

        async def slice_(current: dict) -> dict:
            current["endpoints"] = [{"addresses": [ip], "conditions": {"ready": True}}
                                    for ip in ips]
            current["ports"] = copy.deepcopy(ports)
            return current

        endpoints = by_gvr("", "v1", "endpoints")
        slices = by_gvr("discovery.k8s.io", "v1", "endpointslices")
        for res, fn, base in (
                (endpoints, eps, {"metadata": {"name": "kubernetes", "namespace": "default"}}),
                (slices, slice_, {
                    "metadata": {"name": "kubernetes", "namespace": "default",
                                 "labels": {"kubernetes.io/service-name": "kubernetes"}},
                    "addressType": "IPv4", "endpoints": [], "ports": []})):
            if await store.get_or_none(res, "default", "kubernetes") is None:
                try:
                    await registry.create(res, "default", await fn(copy.deepcopy(base)), ctx)
                    continue
                except errors.APIError as exc:
                    if exc.code != 409:
                        raise
            await registry.update(res, "default", "kubernetes", fn, ctx)
