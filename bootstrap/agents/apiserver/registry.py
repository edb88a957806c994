"""Object-level REST operations: create, update, delete with upstream metadata rules.

HTTP-free: handlers parse requests into these calls. Every write runs
defaulting, validation and admission, and is skipped at the last step for
dryRun=All.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bootstrap.api import errors, meta, patch
from bootstrap.api.resources import Resource, by_gvr

from .storage import alloc
from .storage.cache import Watcher
from .storage.store import Store
from .strategies import DEFAULT, RetryAllocation, Strategy, Table

Admit = Callable[[str, Resource, dict, dict | None, object], Awaitable[dict]]


@dataclass
class Ctx:
    """Per-request options every write honours."""

    user: object = None
    dry_run: bool = False
    field_manager: str = ""
    field_validation: str = "Strict"
    warnings: list[str] = field(default_factory=list)
    subresource: str = ""
    # Server-side apply: managedFields were already computed by the apply itself.
    apply: bool = False
    # Admission's audit annotations (webhooks'), logged with the request's audit event.
    audit_annotations: dict = field(default_factory=dict)


def _track(old: dict | None, new: dict, res: Resource, ctx: Ctx) -> None:
    """Record the write in managedFields as an Update by the request's field manager."""
    if ctx.apply:
        return
    patch.track_update(old, new, res.gvk, ctx.field_manager or "unknown",
                       subresource=ctx.subresource if ctx.subresource == "status" else "")


class Registry:
    def __init__(self, store: Store, allocator: alloc.Allocator, admit: Admit | None = None):
        self.store = store
        self.alloc = allocator
        self.admit = admit
        self.strategy: Callable[[Resource], Strategy] = Table(allocator)

    # -- reads (handlers reach storage only through here) --------------------------
    async def get(self, res: Resource, ns: str | None, name: str, *,
                  from_cache: bool = False, min_rv: int = 0) -> dict:
        return await self.store.get(res, ns, name, from_cache=from_cache, min_rv=min_rv)

    async def list(self, res: Resource, ns: str | None, **options):
        """(items, resourceVersion, continue token, remainingItemCount)."""
        return await self.store.list(res, ns, **options)

    async def watch(self, res: Resource, since: int | None, visible, *,
                    consistent: bool = False, min_rv: int = 0) -> Watcher:
        """A watcher on the resource's cache. ``since`` None: the current state first;
        ``consistent``: only after the cache caught up with etcd's current revision
        and with ``min_rv``."""
        cache = self.store.cache(res)
        if consistent:
            await cache.sync_to(max(await self.store.etcd.current_revision(), min_rv))
        elif since is not None:
            await cache.sync_to(since)
        return cache.watch(since, visible)

    def cache_revision(self, res: Resource) -> int:
        return self.store.cache(res).rev

    def caches_ready(self) -> bool:
        return all(c.ready.is_set() for c in self.store.caches.values())

    def cache_sizes(self) -> dict[str, int]:
        return {c.resource.qualified: len(c.objects) for c in self.store.caches.values()}

    async def _admit(self, op: str, res: Resource, obj: dict, old: dict | None,
                     ctx: Ctx) -> dict:
        if self.admit is None:
            return obj
        out = await self.admit(op, res, obj, old, ctx)
        if out is None:
            return obj
        if op != "DELETE" and out != obj:
            # Mutating admission (webhooks) changed the object after validation: validate
            # it again, as upstream validates after the mutating chain.
            st = self.strategy(res)
            st.validate(out)
            if old is not None:
                st.validate_update(out, old)
        return out

    # -- create -----------------------------------------------------------------
    async def create(self, res: Resource, ns: str | None, obj: dict, ctx: Ctx) -> dict:
        if not isinstance(obj, dict):
            raise errors.bad_request("the body of the request was not a JSON object")
        md = obj.setdefault("metadata", {})
        if not isinstance(md, dict):
            raise errors.bad_request("metadata must be an object")
        if res.namespaced:
            if md.get("namespace") and ns and md["namespace"] != ns:
                raise errors.bad_request("the namespace of the provided object does not match "
                                         "the namespace sent on the request")
            md["namespace"] = ns or md.get("namespace") or "default"
        else:
            md.pop("namespace", None)
        if md.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be "
                                     "created")
        # TypeMeta first, as upstream serialises it.
        obj = {"apiVersion": res.gv, "kind": res.kind,
               **{k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}}
        if not md.get("name"):
            if md.get("generateName"):
                md["name"] = meta.generate_name(md["generateName"])
            else:
                raise errors.invalid(res.kind, "", [errors.required(
                    "metadata.name", "name or generateName is required")], res.group)
        st = self.strategy(res)
        ctx.warnings += st.decode(obj, ctx.field_validation)
        st.normalize(obj)
        st.apply_defaults(obj)
        # System fields before validation, as upstream's BeforeCreate.
        md.update(uid=meta.new_uid(), creationTimestamp=meta.now_rfc3339())
        st.before_validate(obj, ctx.user)
        st.validate(obj)
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            md.pop(k, None)
        st.prepare_create(obj)
        st.bump_generation(None, obj)
        obj = await self._admit("CREATE", res, obj, None, ctx)
        _track(None, obj, res, ctx)
        extras = await st.create_extras(obj)
        if ctx.dry_run:
            return obj
        for _ in range(8):
            try:
                return await self.store.create(res, obj, extra_cmp=extras.compares,
                                               extra_ops=extras.ops,
                                               on_extra_fail=extras.on_conflict)
            except RetryAllocation:
                extras = await st.create_extras(obj, retry=True)
        raise errors.internal_error("could not allocate service addresses")

    # -- update -----------------------------------------------------------------
    async def update(self, res: Resource, ns: str | None, name: str,
                     compute: Callable[[dict], Awaitable[dict]], ctx: Ctx, *,
                     precondition_rv: str | None = None) -> dict:
        """Update via ``compute(current) -> desired`` with the strategy for ctx.subresource."""
        sub = ctx.subresource
        st = self.strategy(res)
        extra_state: dict = {}

        async def mutate(current: dict) -> dict | None:
            desired = await compute(copy.deepcopy(current))
            if not isinstance(desired, dict):
                raise errors.bad_request("the body of the request was not a JSON object")
            md = desired.setdefault("metadata", {})
            if not isinstance(md, dict):
                raise errors.bad_request("metadata must be an object")
            # A resourceVersion the desired object carries is a precondition, whether a
            # PUT body or a patch (merge, strategic, JSON, apply) put it there: a
            # read-modify-write from a stale read must conflict, never overwrite.
            if md.get("resourceVersion") and str(md["resourceVersion"]) != \
                    current["metadata"].get("resourceVersion"):
                raise errors.conflict(res.plural, name, res.group)
            if md.get("name") and md["name"] != name:
                raise errors.bad_request(
                    f'the name of the object ({md["name"]}) does not match the name on '
                    f'the URL ({name})')
            if res.namespaced and md.get("namespace") and md["namespace"] != ns:
                raise errors.bad_request("the namespace of the provided object does not "
                                         "match the namespace sent on the request")
            desired["apiVersion"], desired["kind"] = res.gv, res.kind
            ctx.warnings += st.decode(desired, ctx.field_validation)
            if st.owns_subresource_update(sub):
                desired = st.prepare_subresource_update(sub, desired, current)
            else:
                st.normalize(desired)
                st.apply_defaults(desired)
            st.validate(desired)
            cm = current["metadata"]
            md = desired["metadata"]
            for k in ("uid", "creationTimestamp", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "name", "namespace"):
                if k in cm:
                    md[k] = cm[k]
                else:
                    md.pop(k, None)
            md.setdefault("generation", cm.get("generation", 1))
            if sub == "":
                st.prepare_update(desired, current)
            st.validate_update(desired, current)
            desired = await self._admit("UPDATE", res, desired, current, ctx)
            _track(current, desired, res, ctx)
            if sub == "":
                extra_state["extras"] = await st.update_extras(desired, current)
            # A graceful pod deletion still running keeps the pod until the kubelet
            # deletes it with grace 0; otherwise the last finalizer removes it.
            md = desired["metadata"]
            if (cm.get("deletionTimestamp") and not md.get("finalizers")
                    and not cm.get("deletionGracePeriodSeconds")
                    and not st.still_finalizing(desired)):
                return None  # the last finalizer is gone: the object goes away now
            return desired

        def extra(current, new):
            extras = st.removal_extras(current) if new is None else extra_state.get("extras")
            return (extras.compares, extras.ops) if extras else ((), ())

        if ctx.dry_run:
            current = await self.store.get(res, ns, name)
            if precondition_rv and precondition_rv != current["metadata"]["resourceVersion"]:
                raise errors.conflict(res.plural, name, res.group)
            out = await mutate(copy.deepcopy(current))
            return out if out is not None else current
        _, new = await self.store.guaranteed_update(res, ns, name, mutate,
                                                    precondition_rv=precondition_rv,
                                                    extra=extra)
        return new

    # -- delete -----------------------------------------------------------------
    async def delete(self, res: Resource, ns: str | None, name: str, ctx: Ctx,
                     options: dict | None = None) -> tuple[dict, bool]:
        """Returns (object, deleted_now). Objects with finalizers get a deletionTimestamp."""
        options = options or {}
        pre = options.get("preconditions") or {}
        policy = options.get("propagationPolicy")
        if options.get("orphanDependents") is True and not policy:
            policy = "Orphan"
        grace = options.get("gracePeriodSeconds")
        st = self.strategy(res)
        state: dict = {}

        async def mutate(current: dict) -> dict | None:
            md = current["metadata"]
            if pre.get("uid") and pre["uid"] != md.get("uid"):
                raise errors.conflict(res.plural, name, res.group,
                                      f"Precondition failed: UID in precondition: {pre['uid']}, "
                                      f"UID in object meta: {md.get('uid')}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != md.get(
                    "resourceVersion"):
                raise errors.conflict(res.plural, name, res.group,
                                      "Precondition failed: ResourceVersion in precondition: "
                                      f"{pre['resourceVersion']}, ResourceVersion in object "
                                      f"meta: {md.get('resourceVersion')}")
            await self._admit("DELETE", res, current, current, ctx)
            finalizers = list(md.get("finalizers") or [])
            if policy == "Orphan" and "orphan" not in finalizers:
                finalizers.append("orphan")
            elif policy == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
            outcome = st.delete(current, grace, finalizers)
            if outcome is not DEFAULT:
                state["pending"] = outcome is not None
                return outcome
            if finalizers:
                if not md.get("deletionTimestamp"):
                    md["deletionTimestamp"] = meta.now_rfc3339()
                    md["deletionGracePeriodSeconds"] = 0
                md["finalizers"] = finalizers
                state["pending"] = True
                return current
            return None

        def extra(current, new):
            if new is None:
                extras = st.removal_extras(current)
                return extras.compares, extras.ops
            return (), ()

        if ctx.dry_run:
            current = await self.store.get(res, ns, name)
            out = await mutate(copy.deepcopy(current))
            return (out or current), out is None
        old, new = await self.store.guaranteed_update(res, ns, name, mutate, extra=extra)
        if state.get("pending"):
            return new, False
        return new, True


def resource_for(group: str, version: str, plural: str) -> Resource:
    res = by_gvr(group, version, plural)
    if res is None:
        raise errors.APIError(404, "NotFound", "the server could not find the requested "
                                               "resource")
    return res
