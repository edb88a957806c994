"""garbagecollector: objects whose owners are gone are deleted, and the
``orphan`` / ``foregroundDeletion`` finalizers the API server sets on deletion are
carried out (upstream's GarbageCollector).

The ownership graph is the informer caches themselves: every stored kind is
watched with an owner-UID index (dependents of X) and a UID index (X by uid), so
no second copy of the graph is kept. Items are queued as
``<plural.group>|<namespace/name>`` and each reconcile is one of:

- a dependent: owners are classified solid / dangling / waiting (in foreground
  deletion). With a solid owner left, references to the others are removed;
  without, the dependent is deleted (Foreground when it has dependents of its
  own and an owner waits for it, else its own finalizers' policy, else
  Background). An owner missing from the cache is confirmed with a live GET by
  name and UID before anything is deleted, as upstream.
- an owner with ``orphan``: references to it are removed from every dependent,
  then the finalizer.
- an owner with ``foregroundDeletion``: its dependents are deleted; the finalizer
  goes when no dependent with ``blockOwnerDeletion`` remains.

Every write carries the cached resourceVersion (a stale cache is a 409 and a
retry) or a UID precondition, so reconciles are safe to repeat.

Besides the static catalogue, every deletable resource the server's discovery
lists (custom resources, aggregated APIs) is watched too, re-read every
RESOURCE_RESYNC seconds and soon after a CustomResourceDefinition or APIService
changes (upstream's GarbageCollector.Sync over discovery); a resource no longer
served is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

from bootstrap.api import discovery
from bootstrap.api.cache import OWNER_UID, index_by_owner_uid, meta_key, split_key
from bootstrap.api.controller import Controller
from bootstrap.api.errors import APIError
from bootstrap.api.resources import CATALOGUE, Resource, by_api_version, by_gvr

UID = "uid"
ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
SOLID, DANGLING, WAITING, UNKNOWN = "solid", "dangling", "waiting", "unknown"
RESOURCE_RESYNC = 30.0  # upstream's discovery re-read period
DELETABLE = {"delete", "list", "watch"}
# What makes new resources appear: a change here re-reads discovery soon.
_SERVING_KINDS = (("apiextensions.k8s.io", "v1", "customresourcedefinitions"),
                  ("apiregistration.k8s.io", "v1", "apiservices"))


def index_by_uid(obj: dict) -> list[str]:
    uid = (obj.get("metadata") or {}).get("uid")
    return [uid] if uid else []


def collected_resources() -> list[Resource]:
    """Every stored kind that can be watched and deleted (upstream: every deletable
    resource discovery reports). A version served over another one's storage
    (autoscaling/v1 HPAs, events.k8s.io Events) is the same objects: watched once."""
    return [r for r in CATALOGUE if r.stored and not r.stored_as
            and {"watch", "delete"} <= set(r.verbs)]


def _finalizers(obj: dict) -> list[str]:
    return list((obj.get("metadata") or {}).get("finalizers") or [])


def waiting_for_dependents(obj: dict) -> bool:
    md = obj.get("metadata") or {}
    return bool(md.get("deletionTimestamp")) and FOREGROUND in (md.get("finalizers") or [])


def deletion_policy(obj: dict) -> str:
    """The policy a dependent is deleted with when no owner waits on it."""
    fins = _finalizers(obj)
    if ORPHAN in fins:
        return "Orphan"
    if FOREGROUND in fins:
        return "Foreground"
    return "Background"


class GarbageCollector(Controller):
    name = "garbagecollector"
    workers = 20

    def __init__(self, client, factory, recorder=None):
        super().__init__(client, factory, recorder)
        self.resources: list[Resource] = []
        self._by_name: dict[str, Resource] = {}
        self.informers = {}
        self._discovered: set[str] = set()  # qualified names found through discovery
        self._rediscover = asyncio.Event()
        for res in collected_resources():
            self._monitor(res)
        for gvr in _SERVING_KINDS:
            res = by_gvr(*gvr)
            if res is not None and res.qualified in self.informers:
                self.informers[res.qualified].add_handler(
                    on_add=lambda o: self._rediscover.set(),
                    on_update=lambda old, new: self._rediscover.set(),
                    on_delete=lambda o: self._rediscover.set())

    def _monitor(self, res: Resource) -> None:
        inf = self.factory.informer(res)
        inf.add_indexers({OWNER_UID: index_by_owner_uid, UID: index_by_uid})
        inf.add_handler(on_add=lambda o, r=res: self._changed(r, None, o),
                        on_update=lambda old, new, r=res: self._changed(r, old, new),
                        on_delete=lambda o, r=res: self._deleted(r, o))
        self.resources.append(res)
        self._by_name[res.qualified] = res
        self.informers[res.qualified] = inf

    @classmethod
    def from_options(cls, client, factory, recorder, options):
        ctrl = cls(client, factory, recorder)
        ctrl.workers = options.concurrent_gc_syncs
        return ctrl

    # resources found at run time -----------------------------------------------------

    async def sync_resources(self) -> None:
        """Watch every deletable served resource beyond the catalogue; forget those
        no longer served."""
        try:
            found = {r.qualified: r for r in
                     await discovery.extra_resources(self.client, DELETABLE)}
        except (APIError, aiohttp.ClientError, TimeoutError) as exc:
            self.log.warning("discovery failed, keeping the resources known: %s", exc)
            return
        added = [r for q, r in found.items() if q not in self.informers]
        for res in added:
            self._monitor(res)
            self._discovered.add(res.qualified)
            self.log.info("garbage collecting %s", res.qualified)
        for q in self._discovered - set(found):
            res = self._by_name.pop(q)
            self.resources.remove(res)
            del self.informers[q]
            self._discovered.discard(q)
            await self.factory.remove(res)
            self.log.info("stopped garbage collecting %s", q)
        if added:
            self.factory.start()

    async def _resync_resources(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RESOURCE_RESYNC):
                    await self._rediscover.wait()
            self._rediscover.clear()
            await asyncio.sleep(1.0)  # let the server finish serving what just changed
            await self.sync_resources()

    async def run(self, workers: int | None = None) -> None:
        await self.sync_resources()
        task = asyncio.create_task(self._resync_resources(), name="gc-discovery")
        try:
            await super().run(workers)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # keys and lookups --------------------------------------------------------------

    @staticmethod
    def item_key(res: Resource, obj: dict) -> str:
        return f"{res.qualified}|{meta_key(obj)}"

    def _parse(self, key: str) -> tuple[Resource, str | None, str]:
        qualified, _, rest = key.partition("|")
        ns, name = split_key(rest)
        return self._by_name[qualified], ns, name

    def dependents(self, uid: str) -> list[tuple[Resource, dict]]:
        out = []
        for res in self.resources:
            for obj in self.informers[res.qualified].indexer.by_index(OWNER_UID, uid):
                out.append((res, obj))
        return out

    def _owner_resource(self, ref: dict) -> Resource | None:
        res = by_api_version(ref.get("apiVersion", ""), ref.get("kind", ""))
        if res is None:
            # Another version of a kind we serve (apps/v1beta2 Deployment, ...).
            group = ref.get("apiVersion", "").rpartition("/")[0]
            res = next((r for r in self.resources
                        if r.group == group and r.kind == ref.get("kind")), None)
        return res if res is not None and res.qualified in self.informers else None

    def _cached_owner(self, res: Resource, ref: dict, ns: str | None) -> dict | None:
        for obj in self.informers[res.qualified].indexer.by_index(UID, ref.get("uid", "")):
            if not res.namespaced or obj["metadata"].get("namespace") == ns:
                return obj
        return None

    # handlers: only enqueue ------------------------------------------------------------

    def _enqueue_owners(self, obj: dict, only_deleting: bool = True) -> None:
        ns = obj["metadata"].get("namespace")
        for ref in obj["metadata"].get("ownerReferences") or []:
            res = self._owner_resource(ref)
            if res is None:
                continue
            owner = self._cached_owner(res, ref, ns if res.namespaced else None)
            if owner is not None and (not only_deleting or owner["metadata"].get(
                    "deletionTimestamp")):
                self.enqueue(self.item_key(res, owner))

    def _changed(self, res: Resource, old: dict | None, new: dict) -> None:
        md = new["metadata"]
        if md.get("ownerReferences"):
            self.enqueue(self.item_key(res, new))
            if old is not None and (old["metadata"].get("ownerReferences")
                                    != md["ownerReferences"] or md.get("deletionTimestamp")):
                self._enqueue_owners(new)  # a waiting owner may be unblocked now
        if md.get("deletionTimestamp"):
            fins = md.get("finalizers") or []
            if ORPHAN in fins or FOREGROUND in fins:
                self.enqueue(self.item_key(res, new))
            if FOREGROUND in fins and not (old or {}).get("metadata", {}).get(
                    "deletionTimestamp"):
                for dep_res, dep in self.dependents(md.get("uid", "")):
                    self.enqueue(self.item_key(dep_res, dep))

    def _deleted(self, res: Resource, obj: dict) -> None:
        for dep_res, dep in self.dependents(obj["metadata"].get("uid", "")):
            self.enqueue(self.item_key(dep_res, dep))
        self._enqueue_owners(obj)

    # reconcile ---------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        if key.partition("|")[0] not in self._by_name:
            return None  # a resource no longer served
        res, ns, name = self._parse(key)
        obj = self.informers[res.qualified].get(name, ns)
        if obj is None:
            return None
        md = obj["metadata"]
        if md.get("deletionTimestamp"):
            fins = md.get("finalizers") or []
            if ORPHAN in fins:
                await self._orphan_dependents(obj)
                await self._remove_finalizer(res, obj, ORPHAN)
            elif FOREGROUND in fins:
                await self._process_deleting_dependents(res, obj)
            return None  # otherwise being deleted by someone else: wait for it
        if md.get("ownerReferences"):
            await self._attempt_to_delete(res, obj)
        return None

    async def classify(self, res: Resource, obj: dict) -> dict[str, list[dict]]:
        """Each ownerReference as solid, dangling (owner gone or replaced), waiting
        (owner in foreground deletion) or unknown (a kind we cannot look up)."""
        ns = obj["metadata"].get("namespace")
        out: dict[str, list[dict]] = {SOLID: [], DANGLING: [], WAITING: [], UNKNOWN: []}
        for ref in obj["metadata"].get("ownerReferences") or []:
            owner_res = self._owner_resource(ref)
            if owner_res is None:
                out[UNKNOWN].append(ref)
                continue
            if owner_res.namespaced and not ns:
                # A cluster-scoped object cannot have a namespaced owner: absent, as upstream.
                out[DANGLING].append(ref)
                continue
            owner_ns = ns if owner_res.namespaced else None
            owner = self._cached_owner(owner_res, ref, owner_ns)
            if owner is None:
                owner = await self._live_owner(owner_res, ref, owner_ns)
            if owner is None:
                out[DANGLING].append(ref)
            elif waiting_for_dependents(owner):
                out[WAITING].append(ref)
            else:
                out[SOLID].append(ref)
        return out

    async def _live_owner(self, res: Resource, ref: dict, ns: str | None) -> dict | None:
        """The cache may simply not have seen a new owner yet: ask the API server."""
        try:
            live = await self.client.get(res, ref.get("name", ""), ns)
        except APIError as exc:
            if exc.code == 404:
                return None
            raise
        return live if live["metadata"].get("uid") == ref.get("uid") else None

    async def _attempt_to_delete(self, res: Resource, obj: dict) -> None:
        refs = await self.classify(res, obj)
        if refs[SOLID] or refs[UNKNOWN]:
            drop = {r.get("uid") for r in refs[DANGLING] + refs[WAITING]}
            if drop:
                await self._set_owner_refs(res, obj, drop)
            return
        md = obj["metadata"]
        if refs[WAITING] and self.dependents(md.get("uid", "")):
            policy = "Foreground"  # our owner waits for us: so do we, for ours
        else:
            policy = deletion_policy(obj)
        self.log.info("deleting %s %s (%s), propagation %s", res.qualified, meta_key(obj),
                      "owner deleting in foreground" if refs[WAITING] else "owners gone",
                      policy)
        await self._delete(res, obj, policy)

    async def _process_deleting_dependents(self, res: Resource, owner: dict) -> None:
        uid = owner["metadata"].get("uid", "")
        blocking = []
        for dep_res, dep in self.dependents(uid):
            ref = next((r for r in dep["metadata"].get("ownerReferences") or []
                        if r.get("uid") == uid), {})
            if ref.get("blockOwnerDeletion"):
                blocking.append(dep)
            if not dep["metadata"].get("deletionTimestamp"):
                self.enqueue(self.item_key(dep_res, dep))
        if not blocking:
            await self._remove_finalizer(res, owner, FOREGROUND)

    async def _orphan_dependents(self, owner: dict) -> None:
        uid = owner["metadata"].get("uid", "")
        for dep_res, dep in self.dependents(uid):
            await self._set_owner_refs(dep_res, dep, {uid})

    # writes ----------------------------------------------------------------------------

    async def _set_owner_refs(self, res: Resource, obj: dict, drop: set[str]) -> None:
        md = obj["metadata"]
        keep = [r for r in md.get("ownerReferences") or [] if r.get("uid") not in drop]
        patch = {"metadata": {"resourceVersion": md["resourceVersion"],
                              "ownerReferences": keep or None}}
        try:
            await self.client.patch(res, md["name"], patch, md.get("namespace"),
                                    patch_type="merge")
        except APIError as exc:
            if exc.code != 404:
                raise

    async def _remove_finalizer(self, res: Resource, obj: dict, finalizer: str) -> None:
        md = obj["metadata"]
        keep = [f for f in md.get("finalizers") or [] if f != finalizer]
        patch = {"metadata": {"resourceVersion": md["resourceVersion"],
                              "finalizers": keep or None}}
        try:
            await self.client.patch(res, md["name"], patch, md.get("namespace"),
                                    patch_type="merge")
        except APIError as exc:
            if exc.code != 404:
                raise

    async def _delete(self, res: Resource, obj: dict, policy: str) -> None:
        md = obj["metadata"]
        try:
            await self.client.delete(res, md["name"], md.get("namespace"),
                                     propagation_policy=policy,
                                     preconditions={"uid": md.get("uid")})
        except APIError as exc:
            if exc.code not in (404, 409):  # gone, or a new object under the name
                raise
