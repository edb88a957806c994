"""What every workload controller shares: pods from templates, owner references,
expectations, adoption and release by ControllerRef, slow-start batches, pod
predicates and the deletion ranking (upstream's pkg/controller/controller_utils.go
and controller_ref_manager.go, rewritten for our client and caches).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from bootstrap.api.errors import APIError
from bootstrap.api.meta import parse_time
from bootstrap.api.selectors import LabelSelector

log = logging.getLogger(__name__)

PODS = ("", "v1", "pods")

# Upstream's burstReplicas: at most this many creates/deletes per sync.
BURST_REPLICAS = 500
# slowStartBatch's first batch: a failing template costs one call, not hundreds.
SLOW_START_INITIAL_BATCH = 1
# ExpectationsTimeout: a lost watch event cannot block a controller for longer.
EXPECTATIONS_TTL = 5 * 60.0
POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"

# Event reasons (pkg/controller/controller_utils.go).
SUCCESSFUL_CREATE = "SuccessfulCreate"
FAILED_CREATE = "FailedCreate"
SUCCESSFUL_DELETE = "SuccessfulDelete"
FAILED_DELETE = "FailedDelete"

Clock = Callable[[], float]


# ------------------------------------------------------------------ expectations

@dataclass
class _Expectation:
    add: int = 0
    dels: set[str] = field(default_factory=set)
    stamp: float = 0.0


class Expectations:
    """Creates and deletes a controller has issued but not yet seen in its cache
    (upstream's UIDTrackingControllerExpectations, keyed by pod key for deletes).
    A controller syncs only when its expectations are met or expired, so a cache
    that lags behind its own writes never makes it create twice."""

    def __init__(self, clock: Clock = time.time, ttl: float = EXPECTATIONS_TTL):
        self._clock = clock
        self._ttl = ttl
        self._items: dict[str, _Expectation] = {}

    def satisfied(self, key: str) -> bool:
        exp = self._items.get(key)
        if exp is None:
            return True
        if exp.add <= 0 and not exp.dels:
            return True
        return self._clock() - exp.stamp > self._ttl

    def expect_creations(self, key: str, count: int) -> None:
        self._items[key] = _Expectation(add=count, stamp=self._clock())

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        self._items[key] = _Expectation(dels=set(pod_keys), stamp=self._clock())

    def creation_observed(self, key: str) -> None:
        exp = self._items.get(key)
        if exp is not None:
            exp.add -= 1

    def deletion_observed(self, key: str, pod_key: str) -> None:
        exp = self._items.get(key)
        if exp is not None:
            exp.dels.discard(pod_key)

    def lower_creations(self, key: str, count: int) -> None:
        """Creates that failed or were skipped will never be observed."""
        exp = self._items.get(key)
        if exp is not None:
            exp.add -= count

    def delete(self, key: str) -> None:
        self._items.pop(key, None)


# ------------------------------------------------------------------ owners

def owner_reference(owner: dict, api_version: str, kind: str) -> dict:
    meta = owner["metadata"]
    return {"apiVersion": api_version, "kind": kind, "name": meta["name"],
            "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}


def controller_of(obj: dict) -> dict | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def owned_by(obj: dict, owner: dict) -> bool:
    ref = controller_of(obj)
    return ref is not None and ref.get("uid") == owner["metadata"].get("uid")


def resolve_controller(obj: dict, kind: str, lookup: Callable[[str, str | None], dict | None]
                       ) -> dict | None:
    """The owner named by obj's ControllerRef, when it is of ``kind`` and still the
    same object (same name, same uid), from ``lookup(name, namespace)``."""
    ref = controller_of(obj)
    if ref is None or ref.get("kind") != kind:
        return None
    owner = lookup(ref.get("name", ""), (obj.get("metadata") or {}).get("namespace"))
    if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
        return None
    return owner


def pod_from_template(template: dict, owner: dict, api_version: str, kind: str, *,
                      generate_name: str | None = None, name: str | None = None,
                      extra_labels: dict | None = None, finalizers: list[str] | None = None
                      ) -> dict:
    """A pod for ``owner`` from its pod template (GetPodFromTemplate): the template's
    labels, annotations and spec; the owner as controller with blockOwnerDeletion."""
    tmeta = template.get("metadata") or {}
    meta: dict = {"namespace": owner["metadata"].get("namespace"),
                  "labels": {**(tmeta.get("labels") or {}), **(extra_labels or {})},
                  "ownerReferences": [owner_reference(owner, api_version, kind)]}
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    if name:
        meta["name"] = name
    else:
        # Upstream's getPodsPrefix: the owner's name and a dash, cut to fit.
        meta["generateName"] = generate_name or owner["metadata"]["name"] + "-"
    if finalizers or tmeta.get("finalizers"):
        meta["finalizers"] = list(tmeta.get("finalizers") or []) + list(finalizers or [])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


# ------------------------------------------------------------------ adoption

async def claim(client, resource, owner: dict, api_version: str, kind: str,
                selector: LabelSelector, candidates: Iterable[dict],
                can_adopt: Callable[[], Awaitable[bool]] | None = None) -> list[dict]:
    """The objects ``owner`` controls after adopting matching orphans and releasing
    owned objects its selector no longer matches (ControllerRefManager.Claim).
    Adoption is refused while the owner is being deleted; ``can_adopt`` re-reads
    the owner from the server once before the first adoption, as upstream does,
    so a stale cache never adopts for an owner that is gone."""
    uid = owner["metadata"]["uid"]
    deleting = bool(owner["metadata"].get("deletionTimestamp"))
    claimed: list[dict] = []
    checked: bool | None = None
    for obj in candidates:
        meta = obj.get("metadata") or {}
        ref = controller_of(obj)
        matches = selector.matches(meta.get("labels"))
        if ref is not None:
            if ref.get("uid") != uid:
                continue
            if matches:
                claimed.append(obj)
            elif not deleting:
                await _release(client, resource, obj, uid)
            continue
        if not matches or deleting or meta.get("deletionTimestamp"):
            continue
        if checked is None:
            checked = await can_adopt() if can_adopt is not None else True
        if not checked:
            continue
        adopted = await _adopt(client, resource, obj, owner, api_version, kind)
        if adopted is not None:
            claimed.append(adopted)
    return claimed


async def _adopt(client, resource, obj: dict, owner: dict, api_version: str, kind: str
                 ) -> dict | None:
    meta = obj["metadata"]
    patch = {"metadata": {"ownerReferences": [owner_reference(owner, api_version, kind)],
                          "uid": meta["uid"]}}
    try:
        return await client.patch(resource, meta["name"], patch, meta.get("namespace"),
                                  patch_type="strategic")
    except APIError as exc:
        if exc.code in (404, 409, 422):
            return None  # gone, changed owner meanwhile, or recreated: next sync decides
        raise


async def _release(client, resource, obj: dict, owner_uid: str) -> None:
    meta = obj["metadata"]
    patch = {"metadata": {"ownerReferences": [{"$patch": "delete", "uid": owner_uid}],
                          "uid": meta["uid"]}}
    try:
        await client.patch(resource, meta["name"], patch, meta.get("namespace"),
                           patch_type="strategic")
    except APIError as exc:
        if exc.code not in (404, 409, 422):
            raise


def fresh_owner_check(client, resource, owner: dict) -> Callable[[], Awaitable[bool]]:
    """RecheckDeletionTimestamp: an uncached GET that the owner is the same and alive."""
    async def check() -> bool:
        meta = owner["metadata"]
        try:
            fresh = await client.get(resource, meta["name"], meta.get("namespace"))
        except APIError as exc:
            if exc.code == 404:
                return False
            raise
        fm = fresh.get("metadata") or {}
        return fm.get("uid") == meta["uid"] and not fm.get("deletionTimestamp")
    return check


# ------------------------------------------------------------------ batches

async def slow_start_batch(count: int, fn: Callable[[], Awaitable[None]],
                           initial: int = SLOW_START_INITIAL_BATCH) -> tuple[int, Exception | None]:
    """Call ``fn`` ``count`` times in batches of 1, 2, 4, ... run concurrently,
    stopping after the first batch with a failure. Returns (successes, first error)."""
    done = 0
    size = min(count, initial)
    while size > 0:
        results = await asyncio.gather(*(fn() for _ in range(size)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        done += size - len(errors)
        if errors:
            return done, errors[0] if isinstance(errors[0], Exception) else None
        remaining = count - done
        size = min(2 * size, remaining)
    return done, None


# ------------------------------------------------------------------ pod predicates

def pod_phase(pod: dict) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def is_terminal(pod: dict) -> bool:
    return pod_phase(pod) in ("Succeeded", "Failed")


def is_active(pod: dict) -> bool:
    """FilterActivePods: not finished and not being deleted."""
    return not is_terminal(pod) and not (pod.get("metadata") or {}).get("deletionTimestamp")


def condition(obj: dict, type_: str) -> dict | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return None


def is_ready(pod: dict) -> bool:
    c = condition(pod, "Ready")
    return c is not None and c.get("status") == "True"


def ready_since(pod: dict) -> float | None:
    c = condition(pod, "Ready")
    if c is None or c.get("status") != "True":
        return None
    stamp = c.get("lastTransitionTime")
    return parse_time(stamp).timestamp() if stamp else None


def is_available(pod: dict, min_ready_seconds: int, now: float) -> bool:
    """IsPodAvailable: Ready, and Ready for at least minReadySeconds."""
    if not is_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    since = ready_since(pod)
    return since is not None and since + min_ready_seconds <= now


def available_in(pod: dict, min_ready_seconds: int, now: float) -> float | None:
    """Seconds until a Ready pod becomes available (None when not Ready or already)."""
    since = ready_since(pod)
    if since is None or not min_ready_seconds:
        return None
    left = since + min_ready_seconds - now
    return left if left > 0 else None


def restarts(pod: dict) -> int:
    return sum(int(cs.get("restartCount") or 0)
               for cs in (pod.get("status") or {}).get("containerStatuses") or [])


def _created(obj: dict) -> float:
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    return parse_time(stamp).timestamp() if stamp else 0.0


def _deletion_cost(pod: dict) -> int:
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(POD_DELETION_COST)
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        return 0


_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def deletion_order(pods: list[dict], related: list[dict] | None = None) -> list[dict]:
    """Pods sorted so the ones to delete first come first (ActivePodsWithRanks):
    unassigned before assigned; Pending before Unknown before Running; not Ready
    before Ready; lower pod-deletion-cost first; pods doubled up on a node with
    more related pods first; Ready for less time first (log2 buckets, as the
    LogarithmicScaleDown default); more restarts first; newer first."""
    per_node: dict[str, int] = {}
    for pod in related if related is not None else pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and is_active(pod):
            per_node[node] = per_node.get(node, 0) + 1
    now = time.time()

    def key(pod: dict):
        node = (pod.get("spec") or {}).get("nodeName")
        ready = is_ready(pod)
        since = ready_since(pod) if ready else None
        ready_bucket = int(math.log2(max(now - since, 1))) if since is not None else 0
        return (1 if node else 0,
                _PHASE_RANK.get(pod_phase(pod), 3),
                1 if ready else 0,
                _deletion_cost(pod),
                -per_node.get(node or "", 0),
                ready_bucket,
                -restarts(pod),
                -_created(pod))
    return sorted(pods, key=key)


def pod_key(pod: dict) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


async def create_pods(client, recorder, owner: dict, expectations: Expectations, key: str,
                      make: Callable[[], dict], count: int) -> Exception | None:
    """Create ``count`` pods made by ``make()`` in slow-start batches, expecting each
    create first and lowering the expectation for creates that fail or never run.
    Events as upstream's RealPodControl: SuccessfulCreate / FailedCreate."""
    count = min(count, BURST_REPLICAS)
    expectations.expect_creations(key, count)

    async def one() -> None:
        pod = make()
        try:
            created = await client.create(PODS, pod, pod["metadata"]["namespace"])
        except APIError as exc:
            expectations.lower_creations(key, 1)
            if exc.code == 409 and pod["metadata"].get("name"):
                return  # a named pod (StatefulSet, DaemonSet retry) already there
            event(recorder, owner, "Warning", FAILED_CREATE, f"Error creating: {exc.message}")
            raise
        event(recorder, owner, "Normal", SUCCESSFUL_CREATE,
               f"Created pod: {created['metadata']['name']}")

    done, err = await slow_start_batch(count, one)
    skipped = count - done - (1 if err else 0)
    if skipped > 0:
        expectations.lower_creations(key, skipped)
    return err


async def delete_pods(client, recorder, owner: dict, expectations: Expectations | None,
                      key: str, pods: list[dict]) -> Exception | None:
    """Delete ``pods`` concurrently, expecting each deletion (by pod key)."""
    if expectations is not None:
        expectations.expect_deletions(key, [pod_key(p) for p in pods])

    async def one(pod: dict) -> None:
        meta = pod["metadata"]
        try:
            await client.delete(PODS, meta["name"], meta["namespace"])
        except APIError as exc:
            if expectations is not None:
                expectations.deletion_observed(key, pod_key(pod))
            if exc.code == 404:
                return
            event(recorder, owner, "Warning", FAILED_DELETE, f"Error deleting: {exc.message}")
            raise
        event(recorder, owner, "Normal", SUCCESSFUL_DELETE, f"Deleted pod: {meta['name']}")

    results = await asyncio.gather(*(one(p) for p in pods), return_exceptions=True)
    for r in results:
        if isinstance(r, Exception):
            return r
    return None


def kinded(obj: dict, api_version: str, kind: str) -> dict:
    """A shallow copy carrying apiVersion/kind (list items from a cache may lack
    them), so Events name their involvedObject fully."""
    return {**obj, "apiVersion": api_version, "kind": kind}


def event(recorder, obj: dict, type_: str, reason: str, message: str) -> None:
    """Record an Event when the controller has a recorder (unit tests may pass none)."""
    if recorder is not None:
        recorder.event(obj, type_, reason, message)


# ------------------------------------------------------------------ pod event routing

ORPHANS = "orphanPods"


def index_orphans(obj: dict) -> list[str]:
    """Objects without a ControllerRef, by namespace: the only ones a controller
    may adopt, so claiming never scans every pod of a namespace."""
    if controller_of(obj) is not None:
        return []
    ns = (obj.get("metadata") or {}).get("namespace")
    return [ns] if ns else []


def owner_indexers() -> dict:
    from bootstrap.api.cache import OWNER_UID, index_by_owner_uid
    return {OWNER_UID: index_by_owner_uid, ORPHANS: index_orphans}


def candidates(indexer, owner: dict) -> list[dict]:
    """What ``owner`` may claim: objects it controls plus the namespace's orphans."""
    from bootstrap.api.cache import OWNER_UID
    meta = owner["metadata"]
    seen: dict[str, dict] = {}
    for obj in indexer.by_index(OWNER_UID, meta["uid"]) + \
            indexer.by_index(ORPHANS, meta.get("namespace") or ""):
        seen[obj["metadata"]["name"]] = obj
    return list(seen.values())


class ChildEvents:
    """Informer handlers for a controller's children (pods, ReplicaSets, Jobs):
    route each event to the owner named by the ControllerRef, record the observed
    create/delete in its expectations, and offer orphans to every owner whose
    selector matches (upstream's addPod/updatePod/deletePod, written once)."""

    def __init__(self, kind: str, owners, enqueue: Callable[[dict], None],
                 expectations: Expectations | None = None,
                 selector_of: Callable[[dict], LabelSelector] | None = None,
                 on_change: Callable[[dict, dict, dict], None] | None = None):
        from bootstrap.api.selectors import label_selector_from_dict
        self.kind = kind
        self.owners = owners
        self.enqueue = enqueue
        self.expectations = expectations
        self.selector_of = selector_of or (
            lambda o: label_selector_from_dict((o.get("spec") or {}).get("selector")))
        self.on_change = on_change

    def _owner(self, obj: dict) -> dict | None:
        return resolve_controller(obj, self.kind, self.owners.get)

    def _offer(self, obj: dict) -> None:
        meta = obj.get("metadata") or {}
        for owner in self.owners.list(meta.get("namespace")):
            if self.selector_of(owner).matches(meta.get("labels")):
                self.enqueue(owner)

    def _key(self, owner: dict) -> str:
        m = owner["metadata"]
        return f"{m.get('namespace')}/{m['name']}" if m.get("namespace") else m["name"]

    def on_add(self, obj: dict) -> None:
        if (obj.get("metadata") or {}).get("deletionTimestamp"):
            self.on_delete(obj)
            return
        owner = self._owner(obj)
        if owner is not None:
            if self.expectations is not None:
                self.expectations.creation_observed(self._key(owner))
            self.enqueue(owner)
        elif controller_of(obj) is None:
            self._offer(obj)

    def on_update(self, old: dict, new: dict) -> None:
        if (old.get("metadata") or {}).get("resourceVersion") == \
                (new.get("metadata") or {}).get("resourceVersion"):
            return
        if (new.get("metadata") or {}).get("deletionTimestamp") and \
                not (old.get("metadata") or {}).get("deletionTimestamp"):
            # Graceful deletion: the replacement may start now, not at the final delete.
            self.on_delete(new)
            return
        old_ref, new_ref = controller_of(old), controller_of(new)
        if old_ref != new_ref and old_ref is not None:
            prev = resolve_controller(old, self.kind, self.owners.get)
            if prev is not None:
                self.enqueue(prev)
        owner = self._owner(new)
        if owner is not None:
            if self.on_change is not None:
                self.on_change(owner, old, new)
            self.enqueue(owner)
        elif new_ref is None and ((old.get("metadata") or {}).get("labels") !=
                                  (new.get("metadata") or {}).get("labels") or old_ref):
            self._offer(new)

    def on_delete(self, obj: dict) -> None:
        owner = self._owner(obj)
        if owner is None:
            return
        if self.expectations is not None:
            self.expectations.deletion_observed(self._key(owner), pod_key(obj))
        self.enqueue(owner)


class LastWritten:
    """Read-your-writes over a lagging cache: the newest object this controller
    wrote per key, used instead of the cached one while the cache is older. A
    Job counted from a stale status would otherwise create pods twice; the
    resourceVersion (etcd's revision here) orders the two."""

    def __init__(self):
        self._objs: dict[str, dict] = {}

    def remember(self, obj: dict) -> dict:
        self._objs[pod_key(obj)] = obj
        return obj

    def fresh(self, key: str, cached: dict | None) -> dict | None:
        mine = self._objs.get(key)
        if cached is None or mine is None:
            if cached is None:
                self._objs.pop(key, None)
            return cached
        if mine["metadata"].get("uid") != cached["metadata"].get("uid"):
            self._objs.pop(key, None)
            return cached
        try:
            newer = int(mine["metadata"]["resourceVersion"]) > \
                int(cached["metadata"]["resourceVersion"])
        except (KeyError, ValueError):
            newer = False
        if not newer:
            self._objs.pop(key, None)
            return cached
        return mine

    def forget(self, key: str) -> None:
        self._objs.pop(key, None)


def workers_from(option: str):
    """A ``from_options`` that sizes the worker pool from a --concurrent-*-syncs flag
    (the manager calls it with its parsed Options)."""
    @classmethod
    def from_options(cls, client, factory, recorder, options):
        ctl = cls(client, factory, recorder)
        value = getattr(options, option, None)
        if value:
            ctl.workers = int(value)
        return ctl
    return from_options
