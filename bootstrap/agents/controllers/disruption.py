"""Disruption controller (upstream's pkg/controller/disruption): keeps each
PodDisruptionBudget's status (expectedPods, currentHealthy, desiredHealthy,
disruptionsAllowed, the DisruptionAllowed condition) so the API server's
pods/eviction can refuse evictions that would break the budget. Percentages and
maxUnavailable are taken of the selected pods' controllers' scale (Deployment
through its ReplicaSet, ReplicaSet, StatefulSet), as upstream.

The eviction handler records each granted eviction in status.disruptedPods; such
a pod stops counting as healthy until it is gone or two minutes passed
(DeletionTimeout), so concurrent evictions cannot overdraw the budget."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime

from bootstrap.agents.controllers import podcontrol as pc
from bootstrap.agents.controllers.intstr import is_percent, scaled_value
from bootstrap.api.cache import split_key
from bootstrap.api.controller import Controller
from bootstrap.api.meta import parse_time
from bootstrap.api.selectors import label_selector_from_dict

PDBS = ("policy", "v1", "poddisruptionbudgets")
REPLICASETS = ("apps", "v1", "replicasets")
DEPLOYMENTS = ("apps", "v1", "deployments")
STATEFULSETS = ("apps", "v1", "statefulsets")
API_VERSION, KIND = "policy/v1", "PodDisruptionBudget"
DELETION_TIMEOUT = 120.0
SUFFICIENT, INSUFFICIENT, SYNC_FAILED = "SufficientPods", "InsufficientPods", "SyncFailed"


class NoController(Exception):
    """A selected pod's controller (or its scale) cannot be found."""


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def expected_and_desired(pdb: dict, pods: list[dict], scale_of) -> tuple[int, int, list[str]]:
    """getExpectedPodCount: (expectedPods, desiredHealthy, unmanaged pod names).
    ``scale_of(pod)`` gives (controller uid, replicas) or raises NoController."""
    spec = pdb.get("spec") or {}
    unmanaged: list[str] = []

    def scale() -> int:
        seen: dict[str, int] = {}
        for pod in pods:
            if pc.controller_of(pod) is None:
                unmanaged.append(pod["metadata"]["name"])
                continue
            uid, replicas = scale_of(pod)
            seen[uid] = replicas
        return sum(seen.values())

    if spec.get("maxUnavailable") is not None:
        expected = scale()
        max_unavailable = scaled_value(spec["maxUnavailable"], expected, True)
        return expected, max(0, expected - max_unavailable), unmanaged
    min_available = spec.get("minAvailable")
    if min_available is None:
        return len(pods), 0, unmanaged
    if is_percent(min_available):
        expected = scale()
        return expected, scaled_value(min_available, expected, True), unmanaged
    return len(pods), scaled_value(min_available, len(pods), True), unmanaged


def healthy(pods: list[dict], disrupted: dict[str, str], now: float) -> int:
    """countHealthyPods: Ready, not being deleted, not just evicted."""
    count = 0
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        when = disrupted.get(pod["metadata"]["name"])
        if when and parse_time(when).timestamp() + DELETION_TIMEOUT > now:
            continue
        if pc.is_ready(pod):
            count += 1
    return count


def live_disrupted(pdb: dict, pods: list[dict], now: float) -> tuple[dict[str, str], float | None]:
    """buildDisruptedPodMap: evictions still pending, and when the next one expires."""
    by_name = {p["metadata"]["name"]: p for p in pods}
    out: dict[str, str] = {}
    recheck = None
    for name, when in ((pdb.get("status") or {}).get("disruptedPods") or {}).items():
        pod = by_name.get(name)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            continue
        expires = parse_time(when).timestamp() + DELETION_TIMEOUT
        if expires <= now:
            continue
        out[name] = when
        recheck = expires if recheck is None else min(recheck, expires)
    return out, recheck


class DisruptionController(Controller):
    name = "disruption"
    workers = 1

    def __init__(self, client, factory, recorder=None, *, clock=time.time):
        super().__init__(client, factory, recorder)
        self.clock = clock
        self.pdbs = factory.informer(PDBS)
        self.pods = factory.informer(pc.PODS)
        self.replicasets = factory.informer(REPLICASETS)
        self.deployments = factory.informer(DEPLOYMENTS)
        self.statefulsets = factory.informer(STATEFULSETS)
        self.pdbs.add_handler(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new))
        self.pods.add_handler(on_add=self._pod, on_update=self._pod_update, on_delete=self._pod)
        for inf in (self.replicasets, self.deployments, self.statefulsets):
            inf.add_handler(on_add=self._namespace, on_update=lambda old, new: self._namespace(new),
                            on_delete=self._namespace)

    def _pod(self, pod: dict) -> None:
        meta = pod.get("metadata") or {}
        for pdb in self.pdbs.list(meta.get("namespace")):
            if label_selector_from_dict((pdb.get("spec") or {}).get("selector")).matches(
                    meta.get("labels")):
                self.enqueue(pdb)

    def _pod_update(self, old: dict, new: dict) -> None:
        self._pod(new)
        if (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"):
            self._pod(old)

    def _namespace(self, obj: dict) -> None:
        # A controller's scale changes the expected count of PDBs over its pods.
        for pdb in self.pdbs.list((obj.get("metadata") or {}).get("namespace")):
            self.enqueue(pdb)

    def _scale_of(self, pod: dict) -> tuple[str, int]:
        ns = pod["metadata"].get("namespace")
        ref = pc.controller_of(pod) or {}
        kind, name = ref.get("kind"), ref.get("name", "")
        if kind == "ReplicaSet":
            rs = self.replicasets.get(name, ns)
            if rs is not None and rs["metadata"].get("uid") == ref.get("uid"):
                dref = pc.controller_of(rs)
                if dref is not None and dref.get("kind") == "Deployment":
                    d = self.deployments.get(dref.get("name", ""), ns)
                    if d is None or d["metadata"].get("uid") != dref.get("uid"):
                        raise NoController(pod["metadata"]["name"])
                    return d["metadata"]["uid"], _replicas(d)
                return rs["metadata"]["uid"], _replicas(rs)
        elif kind == "StatefulSet":
            sts = self.statefulsets.get(name, ns)
            if sts is not None and sts["metadata"].get("uid") == ref.get("uid"):
                return sts["metadata"]["uid"], _replicas(sts)
        raise NoController(pod["metadata"]["name"])

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        cached = self.pdbs.get(name, namespace)
        if cached is None:
            return None
        pdb = copy.deepcopy(cached)
        owner = pc.kinded(pdb, API_VERSION, KIND)
        now = self.clock()
        selector = label_selector_from_dict((pdb.get("spec") or {}).get("selector"))
        pods = [p for p in self.pods.list(namespace)
                if selector.matches((p.get("metadata") or {}).get("labels"))]
        if not pods:
            pc.event(self.recorder, owner, "Normal", "NoPods", "No matching pods found")
        disrupted, recheck = live_disrupted(pdb, pods, now)
        try:
            expected, desired, unmanaged = expected_and_desired(pdb, pods, self._scale_of)
        except NoController as exc:
            pc.event(self.recorder, owner, "Warning", "CalculateExpectedPodCountFailed",
                     "Failed to calculate the number of expected pods: found no controllers "
                     f'for pod "{exc}"')
            await self._write(pdb, self._fail_safe(pdb, now, str(exc)))
            return None
        if unmanaged:
            pc.event(self.recorder, owner, "Warning", "UnmanagedPods",
                     f"Pods selected by this PodDisruptionBudget (selector: {selector}) were "
                     "found to be unmanaged. As a result, the status of the PDB cannot be "
                     "calculated correctly, which may result in undefined behavior. To account "
                     "for these pods please set \".spec.minAvailable\" field of the PDB to an "
                     "integer value.")
        current = healthy(pods, disrupted, now)
        allowed = max(0, current - desired) if expected > 0 else 0
        status = {"currentHealthy": current, "desiredHealthy": desired,
                  "expectedPods": expected, "disruptionsAllowed": allowed,
                  "observedGeneration": pdb["metadata"].get("generation", 1)}
        if disrupted:
            status["disruptedPods"] = disrupted
        ok = allowed > 0
        status["conditions"] = _condition(pdb, "True" if ok else "False",
                                          SUFFICIENT if ok else INSUFFICIENT, "", now)
        await self._write(pdb, status)
        return max(recheck - now, 0.0) if recheck is not None else None

    def _fail_safe(self, pdb: dict, now: float, err: str) -> dict:
        status = copy.deepcopy(pdb.get("status") or {})
        status["disruptionsAllowed"] = 0
        status["observedGeneration"] = pdb["metadata"].get("generation", 1)
        status["conditions"] = _condition(pdb, "False", SYNC_FAILED, err, now)
        for k in ("currentHealthy", "desiredHealthy", "expectedPods"):
            status.setdefault(k, 0)
        return status

    async def _write(self, pdb: dict, status: dict) -> None:
        if status == (pdb.get("status") or {}):
            return
        obj = copy.deepcopy(pdb)
        obj["status"] = status
        await self.client.update(PDBS, obj, obj["metadata"]["namespace"], subresource="status")


def _condition(pdb: dict, status: str, reason: str, message: str, now: float) -> list[dict]:
    old = [c for c in (pdb.get("status") or {}).get("conditions") or []]
    prev = next((c for c in old if c.get("type") == "DisruptionAllowed"), None)
    stamp = prev["lastTransitionTime"] if prev and prev.get("status") == status and \
        prev.get("lastTransitionTime") else _stamp(now)
    cond = {"type": "DisruptionAllowed", "status": status, "reason": reason,
            "message": message, "lastTransitionTime": stamp,
            "observedGeneration": pdb["metadata"].get("generation", 1)}
    return [c for c in old if c.get("type") != "DisruptionAllowed"] + [cond]


def _replicas(obj: dict) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)
