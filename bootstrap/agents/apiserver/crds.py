"""The apiextensions controllers that upstream runs inside kube-apiserver.

Level-triggered on the CustomResourceDefinition watch cache:

* naming (primary process only): NamesAccepted when no other CRD of the group has
  accepted one of its names, then Established; acceptedNames mirror spec.names;
* serving (every process): an Established CRD's served versions are registered in
  the catalogue (routing, discovery, OpenAPI, storage read it live) with a watch
  cache, and unregistered when the CRD goes or stops serving a version;
* finalizer (primary only): a CRD being deleted is Terminating; its objects are
  deleted and then the ``customresourcecleanup.apiextensions.k8s.io`` finalizer is
  removed, so the CRD goes away last.
"""

from __future__ import annotations

import asyncio
import logging

from bootstrap.api import crd, errors, meta, resources, schema
from bootstrap.api.resources import Resource

from .strategies.custom import CLEANUP_FINALIZER as FINALIZER

log = logging.getLogger(__name__)

RETRY = 1.0
_NAME_KEYS = (("plural", "PluralConflict"), ("singular", "SingularConflict"),
              ("kind", "KindConflict"), ("listKind", "ListKindConflict"))


def _condition(ctype: str, status: str, reason: str, message: str) -> dict:
    return {"type": ctype, "status": status, "lastTransitionTime": meta.now_rfc3339(),
            "reason": reason, "message": message}


def _set_condition(conditions: list[dict], new: dict) -> list[dict]:
    out = [c for c in conditions if c.get("type") != new["type"]]
    old = next((c for c in conditions if c.get("type") == new["type"]), None)
    if old is not None and (old.get("status"), old.get("reason"), old.get("message")) == (
            new["status"], new["reason"], new["message"]):
        new = old  # unchanged: keep its lastTransitionTime
    out.append(new)
    order = {"NamesAccepted": 0, "Established": 1, "Terminating": 2}
    return sorted(out, key=lambda c: order.get(c.get("type", ""), 9))


def _names(c: dict) -> dict:
    n = dict((c.get("spec") or {}).get("names") or {})
    n.setdefault("singular", n.get("kind", "").lower())
    n.setdefault("listKind", n.get("kind", "") + "List")
    return n


def naming_problem(obj: dict, others: list[dict]) -> tuple[str, str] | None:
    """(reason, message) when a name is already accepted by another CRD of the group."""
    group = obj["spec"]["group"]
    mine = _names(obj)
    for other in others:
        if other["metadata"]["name"] == obj["metadata"]["name"] or \
                other["spec"].get("group") != group:
            continue
        accepted = (other.get("status") or {}).get("acceptedNames") or {}
        if not accepted.get("plural"):
            continue
        taken = {accepted.get(k) for k, _ in _NAME_KEYS} | set(accepted.get("shortNames") or [])
        for key, reason in _NAME_KEYS:
            if mine.get(key) and mine[key] in taken:
                return reason, f'"{mine[key]}" is already in use'
        for s in mine.get("shortNames") or []:
            if s in taken:
                return "ShortNamesConflict", f'"{s}" is already in use'
    return None


class CRDController:
    def __init__(self, server):
        self.server = server
        self.res: Resource = resources.by_gvr(crd.GROUP, crd.VERSION, crd.PLURAL)
        self._task: asyncio.Task | None = None
        self._serving: dict[str, list[Resource]] = {}  # CRD name -> registered versions
        self._wake = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="crd-controller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    async def sync_all(self) -> None:
        """Reconcile every CRD once (start-up, so a restarted server serves them before
        taking requests)."""
        items, _ = self.server.store.cache(self.res).list()
        for obj in items:
            await self._reconcile(obj, items)
        for name in set(self._serving) - {o["metadata"]["name"] for o in items}:
            await self._unserve(name)

    async def _run(self) -> None:
        while True:
            watcher = await self.server.registry.watch(self.res, None, lambda o: True)
            try:
                retry = False
                while True:
                    try:
                        ev = await asyncio.wait_for(watcher.get(), RETRY if retry else None)
                    except TimeoutError:
                        ev = "resync"
                    if ev is None:
                        break
                    try:
                        if ev == "resync":
                            await self.sync_all()
                        elif ev.type == "DELETED":
                            await self._unserve(ev.obj["metadata"]["name"])
                        else:
                            items, _ = self.server.store.cache(self.res).list()
                            # Names of others may have been freed: reconcile them all.
                            await self.sync_all() if self.server.primary else \
                                await self._reconcile(ev.obj, items)
                        retry = False
                    except Exception as exc:  # level-triggered: retried on the next pass
                        log.warning("reconciling CustomResourceDefinitions: %s", exc)
                        retry = True
            finally:
                watcher.close()

    async def _reconcile(self, obj: dict, items: list[dict]) -> None:
        name = obj["metadata"]["name"]
        if self.server.primary:
            obj = await self._write_status(obj, items) or obj
            if obj["metadata"].get("deletionTimestamp"):
                await self._finalize(obj)
                return
        if crd.established(obj):
            await self._serve(obj)
        else:
            await self._unserve(name)

    async def _write_status(self, obj: dict, items: list[dict]) -> dict | None:
        status = obj.get("status") or {}
        conditions = list(status.get("conditions") or [])
        problem = naming_problem(obj, items)
        if problem is None:
            accepted = _names(obj)
            conditions = _set_condition(conditions, _condition(
                "NamesAccepted", "True", "NoConflicts", "no conflicts found"))
            if not crd.established(obj):
                conditions = _set_condition(conditions, _condition(
                    "Established", "True", "InitialNamesAccepted",
                    "the initial names have been accepted"))
        else:
            accepted = status.get("acceptedNames") or {"plural": "", "kind": ""}
            conditions = _set_condition(conditions, _condition(
                "NamesAccepted", "False", *problem))
            if not crd.established(obj):
                conditions = _set_condition(conditions, _condition(
                    "Established", "False", "NotAccepted", "not all names are accepted"))
        if obj["metadata"].get("deletionTimestamp"):
            conditions = _set_condition(conditions, _condition(
                "Terminating", "True", "InstanceDeletionInProgress",
                "CustomResource deletion is in progress"))
        if conditions == status.get("conditions") and accepted == status.get("acceptedNames"):
            return None

        async def compute(current: dict) -> dict:
            current.setdefault("status", {}).update(conditions=conditions,
                                                    acceptedNames=accepted)
            return current

        ctx = self.server.system_ctx()
        ctx.subresource = "status"
        ctx.field_manager = "kube-apiserver"
        try:
            return await self.server.registry.update(self.res, None, obj["metadata"]["name"],
                                                     compute, ctx)
        except errors.APIError as exc:
            if exc.code == 404:
                return None
            raise

    async def _serve(self, obj: dict) -> None:
        name = obj["metadata"]["name"]
        wanted = crd.resources_for(obj)
        if not wanted:
            await self._unserve(name)
            return
        current = self._serving.get(name, [])
        if [(r.gvr, r.custom) for r in current] == [(r.gvr, r.custom) for r in wanted]:
            return
        storage = next(r for r in wanted if r.custom.storage_api_version == r.gv) \
            if any(r.custom.storage_api_version == r.gv for r in wanted) else wanted[0]
        await self.server.store.add_resource(storage)
        defs: dict[str, dict] = {}
        for r in wanted:
            defs.update(crd.definitions(r))
        schema.register_definitions(defs)
        for r in wanted:
            resources.register(r)
        for r in current:
            if r.gvr not in {w.gvr for w in wanted}:
                resources.unregister(*r.gvr)
                schema.unregister_definitions(list(crd.definitions(r)))
        self._serving[name] = wanted
        log.info("serving %s at %s", name, ", ".join(r.version for r in wanted))

    async def _unserve(self, name: str) -> None:
        current = self._serving.pop(name, [])
        for r in current:
            resources.unregister(*r.gvr)
            schema.unregister_definitions(list(crd.definitions(r)))
        if current:
            await self.server.store.remove_resource(current[0])
            log.info("stopped serving %s", name)

    async def _finalize(self, obj: dict) -> None:
        """Delete every object of the CRD, then drop our finalizer."""
        name = obj["metadata"]["name"]
        if FINALIZER not in (obj["metadata"].get("finalizers") or []):
            return
        if crd.established(obj):
            await self._serve(obj)  # the objects are reachable while they are deleted
        served = self._serving.get(name) or crd.resources_for(obj)
        if served:
            res = served[0]
            registry = self.server.registry
            items, _, _, _ = await registry.list(res, None)
            ctx = self.server.system_ctx()
            for item in items:
                md = item["metadata"]
                try:
                    await registry.delete(res, md.get("namespace"), md["name"], ctx)
                except errors.APIError as exc:
                    if exc.code != 404:
                        raise
            items, _, _, _ = await registry.list(res, None)
            if items:
                raise RuntimeError(f"{len(items)} objects of {name} still have finalizers")

        async def compute(current: dict) -> dict:
            fins = [f for f in current["metadata"].get("finalizers") or [] if f != FINALIZER]
            current["metadata"]["finalizers"] = fins
            return current

        try:
            await self.server.registry.update(self.res, None, name, compute,
                                              self.server.system_ctx())
        except errors.APIError as exc:
            if exc.code != 404:
                raise
