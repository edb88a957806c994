"""A small synchronous face of ``bootstrap.api.client.Client`` for the init/join/token flows.

Flows are synchronous (click commands, engine plays); each call runs the async
client in its own event loop. ``apply`` is server-side apply under kubeadm's
field manager and says whether the object changed (its resourceVersion moved),
which is what makes a re-run of ``init`` report 0 changed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from bootstrap.api.client import Client, KubeconfigError
from bootstrap.api.errors import APIError
from bootstrap.api.resources import by_gvk
from bootstrap.errors import UserError

FIELD_MANAGER = "kubeadm"


def resource_of(obj: dict):
    api_version = obj["apiVersion"]
    group, _, version = api_version.rpartition("/")
    res = by_gvk(group, version, obj["kind"])
    if res is None:
        raise UserError(f"unknown kind {api_version}/{obj['kind']}")
    return res


def describe(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj['kind']} {ns}{meta.get('name')}"


def contains(live, want) -> bool:
    """``live`` holds everything ``want`` says: maps by key, lists item by item, scalars equal."""
    if isinstance(want, dict):
        return isinstance(live, dict) and all(k in live and contains(live[k], v)
                                              for k, v in want.items())
    if isinstance(want, list):
        return isinstance(live, list) and len(live) == len(want) and all(
            contains(a, b) for a, b in zip(live, want, strict=True))
    return live == want


class KubeAPI:
    def __init__(self, make_client: Callable[[], Client], where: str):
        self._make = make_client
        self.where = where

    @classmethod
    def from_kubeconfig(cls, path: str, **kwargs) -> KubeAPI:
        def make() -> Client:
            try:
                return Client.from_kubeconfig(path, **kwargs)
            except KubeconfigError as exc:
                raise UserError(str(exc), hint="run the kubeconfig phase first") from None
        return cls(make, str(path))

    def _run(self, fn: Callable[[Client], Any]) -> Any:
        async def go():
            client = self._make()
            try:
                return await fn(client)
            finally:
                await client.close()
        return asyncio.run(go())

    def get(self, resource, name: str, namespace: str | None = None) -> dict | None:
        async def fn(c: Client):
            try:
                return await c.get(resource, name, namespace)
            except APIError as exc:
                if exc.code == 404:
                    return None
                raise
        return self._call(fn)

    def list(self, resource, namespace: str | None = None, **selectors) -> list[dict]:
        return self._call(lambda c: c.list(resource, namespace, **selectors)).get("items") or []

    def delete(self, resource, name: str, namespace: str | None = None) -> bool:
        async def fn(c: Client):
            try:
                await c.delete(resource, name, namespace)
                return True
            except APIError as exc:
                if exc.code == 404:
                    return False
                raise
        return self._call(fn)

    def create(self, obj: dict) -> dict:
        return self._call(lambda c: c.create(resource_of(obj), obj))

    def patch(self, resource, name: str, patch: Any, namespace: str | None = None,
              patch_type: str = "strategic") -> dict:
        return self._call(lambda c: c.patch(resource, name, patch, namespace,
                                            patch_type=patch_type))

    def apply(self, obj: dict, *, dry_run: bool = False) -> str:
        """Server-side apply; "created", "configured", "unchanged" (or "would apply")."""
        res = resource_of(obj)
        meta = obj["metadata"]
        ns = meta.get("namespace")
        before = self.get(res, meta["name"], ns)
        if before is not None and contains(before, obj):
            # Read, compare, write only on a difference (as the engine's operations):
            # a no-op apply would still be a write on the server.
            return "unchanged"
        if dry_run:
            return "would create" if before is None else "would apply"
        after = self._call(lambda c: c.patch(res, meta["name"], obj, ns, patch_type="apply",
                                             field_manager=FIELD_MANAGER, force=True))
        if before is None:
            return "created"
        rv = (before.get("metadata") or {}).get("resourceVersion")
        return "unchanged" if (after.get("metadata") or {}).get("resourceVersion") == rv \
            else "configured"

    def _call(self, fn: Callable[[Client], Any]) -> Any:
        try:
            return self._run(fn)
        except APIError as exc:
            raise UserError(f"API request failed: {exc.code} {exc.reason}: {exc}",
                            where=self.where) from None
        except OSError as exc:
            raise UserError(f"cannot reach the API server: {exc}", where=self.where,
                            hint="is kube-apiserver running? `journalctl -u kube-apiserver`") \
                from None

    def wait(self, probe: Callable[[], bool], timeout: float, interval: float = 1.0,
             clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> bool:
        """Poll ``probe`` (errors count as "not yet") until it holds or ``timeout`` passes."""
        deadline = clock() + timeout
        while True:
            try:
                if probe():
                    return True
            except (UserError, OSError):
                pass
            if clock() >= deadline:
                return False
            sleep(interval)


class OfflineAPI:
    """What a dry run sees when there is no cluster yet: nothing exists, nothing is written."""

    where = "dry run"

    def get(self, resource, name, namespace=None):
        return None

    def list(self, resource, namespace=None, **selectors):
        return []

    def apply(self, obj, *, dry_run=False):
        return "would create"
