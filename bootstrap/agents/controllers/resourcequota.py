"""resourcequota: every ResourceQuota's ``status.hard`` mirrors ``spec.hard`` and
``status.used`` is recounted from the objects in its namespace (upstream's
pkg/controller/resourcequota), with the same evaluators the API server's quota
admission charges with (bootstrap.api.quota).

A quota is recounted when it is created or its spec changes, when an object it
counts is deleted or changes what it uses (a pod finishing gives its cpu back),
and every --resource-quota-sync-period (5m) in any case, which also gives back
charges admission made for writes that then failed. Creates need no event: the
admission plugin charged them already. Resources named only by ``count/<r>.<g>``
get an informer the first time a quota names them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from bootstrap.api import quantity, quota
from bootstrap.api.controller import Controller
from bootstrap.api.resources import CATALOGUE, Resource, by_gvr

RESOURCE_QUOTAS = by_gvr("", "v1", "resourcequotas")
# Watched from the start: what the default evaluators and legacy names count.
_WATCHED = (("", "pods"), ("", "services"), ("", "persistentvolumeclaims"),
            ("", "configmaps"), ("", "secrets"), ("", "replicationcontrollers"),
            ("", "resourcequotas"))
SYNC_PERIOD = 300.0


def _stored(group: str, plural: str) -> Resource | None:
    return next((r for r in CATALOGUE if r.group == group and r.plural == plural and
                 r.stored and "list" in r.verbs and "watch" in r.verbs), None)


def _canonical(raw: dict | None) -> dict[str, str]:
    out = {}
    for k, v in (raw or {}).items():
        try:
            out[k] = quantity.canonical(v)
        except quantity.QuantityError:
            out[k] = str(v)
    return out


class ResourceQuotaController(Controller):
    name = "resourcequota"
    workers = 5

    def __init__(self, client, factory, recorder=None, *, clock=None,
                 sync_period: float = SYNC_PERIOD):
        super().__init__(client, factory, recorder)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.sync_period = sync_period
        self.quotas = factory.informer(RESOURCE_QUOTAS)
        self.quotas.add_handler(on_add=self.enqueue, on_update=self._quota_changed)
        self.informers: dict[tuple[str, str], object] = {}
        for group, plural in _WATCHED:
            self._watch(group, plural)

    @classmethod
    def from_options(cls, client, factory, recorder, options):
        ctrl = cls(client, factory, recorder, sync_period=options.resource_quota_sync_period)
        ctrl.workers = options.concurrent_resource_quota_syncs
        return ctrl

    # -- events ------------------------------------------------------------------

    def _watch(self, group: str, plural: str):
        informer = self.informers.get((group, plural))
        if informer is not None:
            return informer
        res = _stored(group, plural)
        if res is None:
            return None
        informer = self.factory.informer(res)
        ev = quota.evaluator(group, plural)

        def updated(old: dict, new: dict) -> None:
            if not quota.equals(ev.usage(old, self.clock()), ev.usage(new, self.clock())):
                self._replenish(new)
        informer.add_handler(on_update=updated, on_delete=self._replenish)
        self.informers[(group, plural)] = informer
        return informer

    def _replenish(self, obj: dict) -> None:
        ns = (obj.get("metadata") or {}).get("namespace")
        if ns:
            for rq in self.quotas.list(ns):
                self.enqueue(rq)

    def _quota_changed(self, old: dict, new: dict) -> None:
        status = new.get("status") or {}
        if (old.get("spec") or {}) != (new.get("spec") or {}) or \
                _canonical(status.get("hard")) != _canonical((new.get("spec") or {}).get(
                    "hard")) or set(status.get("hard") or {}) - set(status.get("used") or {}):
            self.enqueue(new)

    # -- reconcile ---------------------------------------------------------------

    async def _objects(self, group: str, plural: str, namespace: str) -> list[dict] | None:
        informer = self._watch(group, plural)
        if informer is None:
            return None
        if not informer.has_synced:
            self.factory.start()
            await informer.wait_synced()
        return informer.list(namespace)

    async def reconcile(self, key: str) -> float | None:
        namespace, _, name = key.partition("/")
        rq = self.quotas.get(name, namespace)
        if rq is None:
            return None
        hard = _canonical((rq.get("spec") or {}).get("hard"))
        names = sorted(hard)
        status = rq.get("status") or {}
        # Past observations stay for names no evaluator counts (upstream keeps them).
        used = quota.mask(quota.parse_list(status.get("used")), names)
        by_resource: dict[tuple[str, str], list[str]] = {}
        for n in names:
            target = quota.resource_of(n)
            if target is not None:
                by_resource.setdefault(target, []).append(n)
        now = self.clock()
        for (group, plural), wanted in by_resource.items():
            objects = await self._objects(group, plural, namespace)
            if objects is None:
                continue
            ev = quota.evaluator(group, plural)
            used.update(quota.calculate_usage(ev, rq, wanted, objects, now))
        want = {"hard": hard, "used": quota.to_json(used)}
        if status.get("hard") != want["hard"] or \
                not quota.equals(quota.parse_list(status.get("used")), used) or \
                set(status.get("used") or {}) != set(want["used"]):
            body = dict(rq, status=want)
            await self.client.update(RESOURCE_QUOTAS, body, namespace, subresource="status")
        return self.sync_period
