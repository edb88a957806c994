"""Namespace finalization: empty a terminating namespace, then release it.

Derived only from etcd state (the namespaces watch cache) and made of
conditional writes, so every API server may run it at once: a delete that
another server already did is a 404 we ignore, a finalize that raced is a
conflict the guaranteed update retries.
"""

from __future__ import annotations

import asyncio
import logging

from bootstrap.api import errors
from bootstrap.api.resources import CATALOGUE, by_gvr

log = logging.getLogger(__name__)

INTERVAL = 1.0
FINALIZER = "kubernetes"


async def run(server) -> None:
    namespaces = by_gvr("", "v1", "namespaces")
    while True:
        await asyncio.sleep(INTERVAL)
        items, _ = server.store.cache(namespaces).list()
        for ns in items:
            md = ns["metadata"]
            if md.get("deletionTimestamp") and FINALIZER in ((ns.get("spec") or {}).get(
                    "finalizers") or []):
                try:
                    await finalize(server, md["name"])
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # retried on the next pass
                    log.warning("finalizing namespace %s: %s", md["name"], exc)


async def finalize(server, name: str) -> None:
    remaining = 0
    ctx = server.system_ctx()
    for res in CATALOGUE:
        if not res.stored or not res.namespaced:
            continue
        for obj in [o for o in server.store.cache(res).list()[0]
                    if o["metadata"].get("namespace") == name]:
            remaining += 1
            if obj["metadata"].get("deletionTimestamp"):
                continue
            try:
                await server.registry.delete(res, name, obj["metadata"]["name"], ctx,
                                             {"propagationPolicy": "Background"})
            except errors.APIError as exc:
                if exc.code not in (404, 409):
                    raise
    if remaining:
        return
    namespaces = by_gvr("", "v1", "namespaces")

    async def drop(current: dict) -> dict:
        fins = (current.get("spec") or {}).get("finalizers") or []
        current.setdefault("spec", {})["finalizers"] = [f for f in fins if f != FINALIZER]
        return current

    ctx.subresource = "finalize"
    try:
        await server.registry.update(namespaces, None, name, drop, ctx)
    except errors.APIError as exc:
        if exc.code != 404:
            raise
