"""ReplicaSet controller (upstream's pkg/controller/replicaset): keeps
``spec.replicas`` active pods matching the selector, adopting orphans and
releasing pods that stopped matching, and reports status through /status.

The ReplicationController controller is the same loop over core/v1
ReplicationControllers, whose selector is a plain label map (upstream also runs
the ReplicaSet code for them).
"""

from __future__ import annotations

import copy
import time

from bootstrap.agents.controllers import podcontrol as pc
from bootstrap.api.cache import split_key
from bootstrap.api.controller import Controller
from bootstrap.api.selectors import label_selector_from_dict

REPLICASETS = ("apps", "v1", "replicasets")
REPLICATIONCONTROLLERS = ("", "v1", "replicationcontrollers")


def _replicas(rs: dict) -> int:
    value = (rs.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def calculate_status(rs: dict, pods: list[dict], now: float, manage_error: Exception | None
                     ) -> dict:
    """calculateStatus: counts over the RS's active pods, and the ReplicaFailure
    condition while creates or deletes fail."""
    spec = rs.get("spec") or {}
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    fully = sum(1 for p in pods
                if all(((p.get("metadata") or {}).get("labels") or {}).get(k) == v
                       for k, v in template_labels.items()))
    status = {
        "replicas": len(pods),
        "fullyLabeledReplicas": fully,
        "readyReplicas": sum(1 for p in pods if pc.is_ready(p)),
        "availableReplicas": sum(1 for p in pods if pc.is_available(p, min_ready, now)),
        "observedGeneration": (rs.get("metadata") or {}).get("generation", 0),
    }
    conditions = [c for c in (rs.get("status") or {}).get("conditions") or []
                  if c.get("type") != "ReplicaFailure"]
    if manage_error is not None:
        diff = len(pods) - _replicas(rs)
        reason = "FailedCreate" if diff < 0 else "FailedDelete"
        prev = next((c for c in (rs.get("status") or {}).get("conditions") or []
                     if c.get("type") == "ReplicaFailure"), None)
        conditions.append({"type": "ReplicaFailure", "status": "True", "reason": reason,
                           "message": str(getattr(manage_error, "message", manage_error)),
                           "lastTransitionTime": (prev or {}).get("lastTransitionTime")
                           or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))})
    if conditions:
        status["conditions"] = conditions
    return omit_zero(status, keep=("replicas",))


def omit_zero(status: dict, keep: tuple[str, ...] = ()) -> dict:
    """Drop zero counters that upstream's types mark omitempty."""
    return {k: v for k, v in status.items() if k in keep or v not in (0, None, [], {})}


def status_changed(old: dict, new: dict) -> bool:
    return omit_zero(old or {}, keep=("replicas",)) != new


class ReplicaSetController(Controller):
    name = "replicaset"
    workers = 5  # --concurrent-replicaset-syncs
    from_options = pc.workers_from("concurrent_replicaset_syncs")
    resource, api_version, kind = REPLICASETS, "apps/v1", "ReplicaSet"

    @staticmethod
    def selector(rs: dict):
        return label_selector_from_dict((rs.get("spec") or {}).get("selector"))

    def __init__(self, client, factory, recorder=None, *, clock=time.time):
        super().__init__(client, factory, recorder)
        self.clock = clock
        self.expectations = pc.Expectations(clock)
        self.written = pc.LastWritten()
        self.replicasets = factory.informer(self.resource)
        self.pods = factory.informer(pc.PODS)
        self.pods.add_indexers(pc.owner_indexers())
        self.replicasets.add_handler(on_add=self.enqueue,
                                     on_update=lambda old, new: self.enqueue(new),
                                     on_delete=self._rs_deleted)
        children = pc.ChildEvents(self.kind, self.replicasets, self.enqueue, self.expectations,
                                  on_change=self._pod_changed)
        self.pods.add_handler(children.on_add, children.on_update, children.on_delete)

    def _rs_deleted(self, rs: dict) -> None:
        self.expectations.delete(pc.pod_key(rs))
        self.written.forget(pc.pod_key(rs))
        self.enqueue(rs)

    def _pod_changed(self, rs: dict, old: dict, new: dict) -> None:
        # A pod that just became Ready becomes available minReadySeconds later.
        min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
        if min_ready and not pc.is_ready(old) and pc.is_ready(new):
            self.enqueue_after(rs, min_ready + 1)

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        rs = self.written.fresh(key, self.replicasets.get(name, namespace))
        if rs is None:
            self.expectations.delete(key)
            return None
        satisfied = self.expectations.satisfied(key)
        pods = await pc.claim(self.client, pc.PODS, rs, self.api_version, self.kind,
                              self.selector(rs), pc.candidates(self.pods.indexer, rs),
                              pc.fresh_owner_check(self.client, self.resource, rs))
        active = [p for p in pods if pc.is_active(p)]
        err = None
        if satisfied and not rs["metadata"].get("deletionTimestamp"):
            err = await self._manage(rs, key, active)
        now = self.clock()
        status = calculate_status(rs, active, now, err)
        if status_changed(rs.get("status"), status):
            obj = copy.deepcopy(rs)
            obj["status"] = status
            self.written.remember(
                await self.client.update(self.resource, obj, namespace, subresource="status"))
        if err is not None:
            raise err
        waits = [w for p in active
                 if (w := pc.available_in(p, int(rs["spec"].get("minReadySeconds") or 0),
                                          now)) is not None]
        return min(waits) if waits else None

    async def _manage(self, rs: dict, key: str, active: list[dict]) -> Exception | None:
        diff = len(active) - _replicas(rs)
        owner = pc.kinded(rs, self.api_version, self.kind)
        if diff < 0:
            template = rs["spec"].get("template") or {}
            return await pc.create_pods(
                self.client, self.recorder, owner, self.expectations, key,
                lambda: pc.pod_from_template(template, rs, self.api_version, self.kind), -diff)
        if diff > 0:
            doomed = pc.deletion_order(active)[:min(diff, pc.BURST_REPLICAS)]
            return await pc.delete_pods(self.client, self.recorder, owner, self.expectations,
                                        key, doomed)
        return None


class ReplicationControllerController(ReplicaSetController):
    name = "replicationcontroller"
    from_options = pc.workers_from("concurrent_rc_syncs")
    resource, api_version, kind = REPLICATIONCONTROLLERS, "v1", "ReplicationController"

    @staticmethod
    def selector(rc: dict):
        return label_selector_from_dict(
            {"matchLabels": (rc.get("spec") or {}).get("selector") or {}})
