"""serviceaccount: every active namespace has the "default" ServiceAccount (upstream's
ServiceAccountsController). A deleted one is created again."""

from __future__ import annotations

from bootstrap.api.controller import Controller
from bootstrap.api.errors import APIError
from bootstrap.api.resources import by_gvr

NAMESPACES = by_gvr("", "v1", "namespaces")
SERVICE_ACCOUNTS = by_gvr("", "v1", "serviceaccounts")
ACCOUNTS = ("default",)


def active(ns: dict | None) -> bool:
    return ns is not None and not ns["metadata"].get("deletionTimestamp") and \
        (ns.get("status") or {}).get("phase", "Active") == "Active"


class ServiceAccountsController(Controller):
    name = "serviceaccount"

    def __init__(self, client, factory, recorder=None):
        super().__init__(client, factory, recorder)
        self.namespaces = factory.informer(NAMESPACES)
        self.accounts = factory.informer(SERVICE_ACCOUNTS)
        self.namespaces.add_handler(on_add=self.enqueue,
                                    on_update=lambda o, n: self.enqueue(n))
        self.accounts.add_handler(
            on_delete=lambda sa: self.enqueue(sa["metadata"]["namespace"]))

    @classmethod
    def from_options(cls, client, factory, recorder, options):
        ctrl = cls(client, factory, recorder)
        ctrl.workers = options.concurrent_serviceaccount_syncs
        return ctrl

    async def reconcile(self, key: str) -> float | None:
        if not active(self.namespaces.get(key)):
            return None
        for name in ACCOUNTS:
            if self.accounts.get(name, key) is not None:
                continue
            try:
                await self.client.create(SERVICE_ACCOUNTS, {
                    "apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": name, "namespace": key}}, key)
            except APIError as exc:
                # 409: it exists (our cache is behind); 403 NamespaceTerminating: too late.
                if exc.code not in (409, 403):
                    raise
        return None
