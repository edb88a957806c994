"""namespace: a terminating namespace is emptied, then released by removing the
``kubernetes`` finalizer through namespaces/<name>/finalize (upstream's
NamespaceController and namespacedResourcesDeleter).

Content is deleted per namespaced kind (Background propagation), then counted
with live lists: what remains (graceful pods, objects held by finalizers) is
reported in the NamespaceContentRemaining / NamespaceFinalizersRemaining
conditions and the namespace is looked at again. A kind whose deletion fails
shows in NamespaceDeletionContentFailure. Conditions follow upstream's
status_condition_utils (types, reasons, messages). Besides the static catalogue,
the namespaced resources the server's discovery lists (custom resources,
aggregated APIs) are emptied too; while discovery fails the namespace is kept
(NamespaceDeletionDiscoveryFailure), so no custom object outlives it unseen.
"""

from __future__ import annotations

import copy
import time

import aiohttp

from bootstrap.api import discovery
from bootstrap.api.controller import Controller
from bootstrap.api.errors import APIError
from bootstrap.api.resources import CATALOGUE, Resource, by_gvr

from .util import find_condition, rfc3339, timestamp

NAMESPACES = by_gvr("", "v1", "namespaces")
FINALIZER = "kubernetes"
RECHECK = 5.0  # upstream's estimate when content remains without a better one
MAX_RECHECK = 60.0

CONDITION_TYPES = ("NamespaceDeletionDiscoveryFailure", "NamespaceDeletionGroupVersionParsingFailure",
                   "NamespaceDeletionContentFailure", "NamespaceContentRemaining",
                   "NamespaceFinalizersRemaining")
OK = {
    "NamespaceDeletionDiscoveryFailure": ("ResourcesDiscovered",
                                          "All resources successfully discovered"),
    "NamespaceDeletionGroupVersionParsingFailure": ("ParsedGroupVersions",
                                                    "All legacy kube types successfully parsed"),
    "NamespaceDeletionContentFailure": (
        "ContentDeleted", "All content successfully deleted, may be waiting on finalization"),
    "NamespaceContentRemaining": ("ContentRemoved", "All content successfully removed"),
    "NamespaceFinalizersRemaining": ("ContentRemoved", "All content successfully removed"),
}


def namespaced_resources() -> list[Resource]:
    # Versions served over another one's storage hold the same objects: emptied once.
    return [r for r in CATALOGUE if r.stored and not r.stored_as and r.namespaced
            and {"list", "delete"} <= set(r.verbs)]


def conditions_for(failures: list[str], remaining: dict[str, int],
                   by_finalizer: dict[str, int], discovery_error: str = ""
                   ) -> dict[str, tuple[str, str, str]]:
    """type -> (status, reason, message) for the five deletion conditions."""
    out = {t: ("False", *OK[t]) for t in CONDITION_TYPES}
    if discovery_error:
        out["NamespaceDeletionDiscoveryFailure"] = (
            "True", "DiscoveryFailed", f"Discovery failed for some groups: {discovery_error}")
    if failures:
        out["NamespaceDeletionContentFailure"] = (
            "True", "ContentDeletionFailed",
            f"Failed to delete all resource types, {len(failures)} remaining: "
            + ", ".join(sorted(failures)))
    if remaining:
        parts = sorted(f"{r} has {n} resource instances" for r, n in remaining.items() if n)
        out["NamespaceContentRemaining"] = (
            "True", "SomeResourcesRemain", "Some resources are remaining: " + ", ".join(parts))
    if by_finalizer:
        parts = sorted(f"{f} in {n} resource instances" for f, n in by_finalizer.items() if n)
        out["NamespaceFinalizersRemaining"] = (
            "True", "SomeFinalizerRemain", "Some finalizers are remaining: " + ", ".join(parts))
    return out


def merge_conditions(existing: list[dict], wanted: dict[str, tuple[str, str, str]],
                     now: float) -> tuple[list[dict], bool]:
    conds = copy.deepcopy(existing or [])
    changed = False
    for type_ in CONDITION_TYPES:
        status, reason, message = wanted[type_]
        c = find_condition(conds, type_)
        if c is None:
            conds.append({"type": type_, "status": status, "reason": reason,
                          "message": message, "lastTransitionTime": rfc3339(now)})
            changed = True
        elif (c.get("status"), c.get("reason"), c.get("message")) != (status, reason, message):
            if c.get("status") != status:
                c["lastTransitionTime"] = rfc3339(now)
            c.update(status=status, reason=reason, message=message)
            changed = True
    return conds, changed


class NamespaceController(Controller):
    name = "namespace"
    workers = 10

    def __init__(self, client, factory, recorder=None, clock=time.time):
        super().__init__(client, factory, recorder)
        self.clock = clock
        self.namespaces = factory.informer(NAMESPACES)
        self.namespaces.add_handler(on_add=self._changed,
                                    on_update=lambda o, n: self._changed(n))

    @classmethod
    def from_options(cls, client, factory, recorder, options):
        ctrl = cls(client, factory, recorder)
        ctrl.workers = options.concurrent_namespace_syncs
        return ctrl

    def _changed(self, ns: dict) -> None:
        if ns["metadata"].get("deletionTimestamp"):
            self.enqueue(ns)

    async def reconcile(self, key: str) -> float | None:
        ns = self.namespaces.get(key)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return None
        if FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or []):
            return None
        try:
            extra = [r for r in await discovery.extra_resources(self.client, {"list", "delete"})
                     if r.namespaced]
            discovery_error = ""
        except (APIError, aiohttp.ClientError, TimeoutError) as exc:
            extra, discovery_error = [], str(exc) or type(exc).__name__
        failures, remaining, by_finalizer, wait = await self._delete_content(key, extra)
        ns = await self._set_conditions(ns, conditions_for(failures, remaining, by_finalizer,
                                                           discovery_error))
        if failures or remaining or discovery_error:
            return min(MAX_RECHECK, max(wait, 1.0)) if wait else RECHECK
        await self._finalize(ns)
        return None

    async def _delete_content(self, namespace: str, extra: list[Resource] = ()):
        failures: list[str] = []
        remaining: dict[str, int] = {}
        by_finalizer: dict[str, int] = {}
        wait = 0.0
        now = self.clock()
        for res in [*namespaced_resources(), *extra]:
            try:
                items = (await self.client.list(res, namespace)).get("items") or []
            except APIError as exc:
                failures.append(f"{res.qualified}: {exc.message}")
                continue
            left = 0
            for obj in items:
                md = obj["metadata"]
                if not md.get("deletionTimestamp"):
                    try:
                        out = await self.client.delete(res, md["name"], namespace,
                                                       propagation_policy="Background",
                                                       preconditions={"uid": md.get("uid")})
                    except APIError as exc:
                        if exc.code in (404, 409):
                            continue
                        failures.append(f"{res.qualified}: {exc.message}")
                        break
                    # The answer is the object while finalizers or a grace period hold it.
                    md = (out or {}).get("metadata") or {}
                    if not md.get("deletionTimestamp"):
                        continue
                left += 1
                for f in md.get("finalizers") or []:
                    by_finalizer[f] = by_finalizer.get(f, 0) + 1
                # Graceful pods: look again when their grace period ends.
                until = timestamp(md.get("deletionTimestamp"))
                if until is not None and md.get("deletionGracePeriodSeconds"):
                    wait = max(wait, until - now)
            if left:
                remaining[res.qualified] = left
        return failures, remaining, by_finalizer, wait

    async def _set_conditions(self, ns: dict, wanted) -> dict:
        status = ns.get("status") or {}
        conds, changed = merge_conditions(status.get("conditions") or [], wanted, self.clock())
        if not changed:
            return ns
        updated = copy.deepcopy(ns)
        updated.setdefault("status", {})["conditions"] = conds
        try:
            return await self.client.update(NAMESPACES, updated, subresource="status")
        except APIError as exc:
            if exc.code == 404:
                return ns
            raise

    async def _finalize(self, ns: dict) -> None:
        updated = copy.deepcopy(ns)
        fins = (updated.get("spec") or {}).get("finalizers") or []
        updated.setdefault("spec", {})["finalizers"] = [f for f in fins if f != FINALIZER]
        try:
            await self.client.update(NAMESPACES, updated, subresource="finalize")
        except APIError as exc:
            if exc.code != 404:
                raise
        self.log.info("namespace %s: content deleted, finalized", ns["metadata"]["name"])
