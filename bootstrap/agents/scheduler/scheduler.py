"""The scheduling loop: pop a pod, decide (pure), then write the decision.

The decision (filters, scores, preemption) runs synchronously on the event loop
against the cache, so nothing changes under it. The writes run as tasks so the
next pod is scheduled while the last one is being bound, as upstream's binding
cycle: the pod is *assumed* on its node first, so the next cycle already counts
it. Informer handlers feed the cache (assigned pods, nodes, namespaces) and the
queue (pending pods of our profiles) and turn cluster changes into queue moves.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

from bootstrap.api.errors import APIError
from bootstrap.api.events import NORMAL, WARNING
from bootstrap.api.meta import now_rfc3339
from bootstrap.api.metrics import REGISTRY
from bootstrap.api.resources import by_gvr

from . import framework as fwk
from .cache import PodInfo, SchedulerCache, pod_key
from .framework import FitError, Framework, ScheduleResult
from .preemption import DISRUPTION_TARGET, PREEMPTION_BY_SCHEDULER, Candidate, preempt
from .queue import QueuedPod, SchedulingQueue

log = logging.getLogger(__name__)

PODS = by_gvr("", "v1", "pods")
# Event reasons, upstream's strings.
SCHEDULED = "Scheduled"
FAILED_SCHEDULING = "FailedScheduling"
PREEMPTED = "Preempted"
UNSCHEDULABLE_REASON = "Unschedulable"
# Bindings in flight at once: enough to keep the API server busy, few enough that
# the client does not open (and TLS-handshake) a connection per pending pod.
MAX_IN_FLIGHT_WRITES = 32

ATTEMPTS = Counter("scheduler_schedule_attempts_total",
                   "Number of attempts to schedule pods, by the result.",
                   ["result", "profile"], registry=REGISTRY)
ATTEMPT_SECONDS = Histogram(
    "scheduler_scheduling_attempt_duration_seconds",
    "Scheduling attempt latency in seconds (scheduling algorithm + binding start).",
    ["result", "profile"], registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512))
PENDING = Gauge("scheduler_pending_pods", "Number of pending pods, by the queue type.",
                ["queue"], registry=REGISTRY)
PREEMPTION_VICTIMS = Counter("scheduler_preemption_victims_total",
                             "Number of pods evicted by preemption.", registry=REGISTRY)


def _assigned(pod: dict) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def _terminal(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


class Scheduler:
    def __init__(self, client, frameworks: dict[str, Framework], recorders: dict, *,
                 queue: SchedulingQueue | None = None, cache: SchedulerCache | None = None,
                 pdbs: Callable[[], list[dict]] = list, rng: random.Random | None = None):
        self.client = client
        self.frameworks = frameworks
        # One recorder per profile: upstream reports events as the scheduler name.
        self.recorders = recorders
        events: dict[str, frozenset[str]] = {}
        for fw in frameworks.values():
            events.update(fw.plugin_events())
        self.queue = queue or SchedulingQueue(events)
        if not self.queue.plugin_events:
            self.queue.plugin_events = events
        self.cache = cache or SchedulerCache()
        self.pdbs = pdbs
        self.rng = rng or random.Random()
        self._tasks: set[asyncio.Task] = set()
        self._writes = asyncio.Semaphore(MAX_IN_FLIGHT_WRITES)

    def responsible(self, pod: dict) -> bool:
        return (pod.get("spec") or {}).get("schedulerName", "default-scheduler") \
            in self.frameworks

    # informer handlers ------------------------------------------------------------------
    def on_pod_add(self, pod: dict) -> None:
        if _assigned(pod):
            self.queue.delete(pod)
            self.cache.add_pod(pod)
            self.queue.move_all(fwk.POD_ADD)
        elif self.responsible(pod) and not _terminal(pod) and \
                not (pod.get("metadata") or {}).get("deletionTimestamp"):
            self.queue.add(pod)

    def on_pod_update(self, old: dict, new: dict) -> None:
        if _assigned(new):
            self.queue.delete(new)
            was = self.cache.has_pod(pod_key(new)) and not self.cache.is_assumed(pod_key(new))
            self.cache.update_pod(new)
            if _terminal(new):
                self.queue.move_all(fwk.POD_DELETE)   # its resources are free again
            elif not (was and _assigned(old)):
                self.queue.move_all(fwk.POD_ADD)
            elif _pod_scheduling_view(old) != _pod_scheduling_view(new):
                # labels (affinity, spread) or requests changed; status-only updates
                # (the kubelet's, every few seconds) help no pending pod
                self.queue.move_all(fwk.POD_UPDATE)
            return
        if not self.responsible(new) or self.cache.is_assumed(pod_key(new)):
            return  # an assumed pod's own status updates change nothing
        if _terminal(new) or (new.get("metadata") or {}).get("deletionTimestamp"):
            self.queue.delete(new)
        else:
            self.queue.update(old, new)

    def on_pod_delete(self, pod: dict) -> None:
        key = pod_key(pod)
        self.queue.delete(pod)
        if _assigned(pod) or self.cache.has_pod(key):
            self.cache.remove_pod(pod)
            self.queue.move_all(fwk.POD_DELETE)

    def on_node_add(self, node: dict) -> None:
        self.cache.add_node(node)
        self.queue.move_all(fwk.NODE_ADD)

    def on_node_update(self, old: dict, new: dict) -> None:
        self.cache.update_node(new)
        # Only changes a plugin can use: labels, taints, unschedulable, allocatable.
        if _node_scheduling_view(old) != _node_scheduling_view(new):
            self.queue.move_all(fwk.NODE_UPDATE)

    def on_node_delete(self, node: dict) -> None:
        self.cache.remove_node(node)
        self.queue.move_all(fwk.NODE_DELETE)

    def on_namespace(self, ns: dict, new: dict | None = None) -> None:
        ns = new or ns
        meta = ns.get("metadata") or {}
        self.cache.namespaces[meta.get("name", "")] = meta.get("labels") or {}

    def on_namespace_delete(self, ns: dict) -> None:
        self.cache.namespaces.pop((ns.get("metadata") or {}).get("name", ""), None)

    # the loop -------------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            while True:
                qp = await self.queue.pop()
                try:
                    self.schedule_one(qp)
                except Exception:  # a bug on one pod must not stop the others
                    log.exception("scheduling %s failed", qp.key)
                    self.cache.forget_assumed(qp.key)
                    self.queue.requeue_error(qp)
                self._gauges()
                # Let the binding tasks and informer listeners run between cycles.
                await asyncio.sleep(0)
        finally:
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for rec in self.recorders.values():
                await rec.close()

    def _recorder(self, pi: PodInfo):
        return self.recorders[pi.spec.get("schedulerName", "default-scheduler")]

    def _gauges(self) -> None:
        q = self.queue
        PENDING.labels("active").set(len(q.active))
        PENDING.labels("backoff").set(len(q.backoff))
        PENDING.labels("unschedulable").set(len(q.unschedulable))
        PENDING.labels("gated").set(len(q.gated))

    async def wait_idle(self) -> None:
        """Wait for in-flight writes (bindings, status, preemption) to finish (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def schedule_one(self, qp: QueuedPod) -> ScheduleResult | FitError | None:
        pi = qp.info
        fw = self.frameworks.get(pi.spec.get("schedulerName", "default-scheduler"))
        if fw is None or pi.deleting or pi.node_name or self.cache.has_pod(pi.key):
            self.queue.done(pi.key)
            return None
        started = time.perf_counter()
        snapshot = self.cache.snapshot()
        cycle = self.queue.scheduling_cycle
        nominated = self.queue.nominated_pods()
        result, state = fw.schedule(pi, snapshot, nominated)
        if isinstance(result, ScheduleResult):
            ATTEMPTS.labels("scheduled", fw.scheduler_name).inc()
            ATTEMPT_SECONDS.labels("scheduled", fw.scheduler_name).observe(
                time.perf_counter() - started)
            self.cache.assume(pi, result.node)
            self.queue.delete_nominated(pi.key)
            self.queue.done(pi.key)
            self._spawn(self._bind(qp, result.node))
            return result
        ATTEMPTS.labels("unschedulable", fw.scheduler_name).inc()
        nominate: str | None = None    # None: leave status.nominatedNodeName as it is
        candidate: Candidate | None = None
        if fw.preemption and result.statuses and not result.pre_filter_msg:
            outcome = preempt(fw, state, pi, snapshot, result.statuses, self.pdbs(),
                              self.queue.nominated_node(pi.key), nominated, self.rng)
            candidate = outcome.candidate
            if candidate is not None:
                nominate = candidate.node
                self.queue.add_nominated(pi, candidate.node)
            else:
                result.post_filter_msg = "preemption: " + outcome.message
                if outcome.hopeless:
                    nominate = ""  # clear any nomination
                    self.queue.delete_nominated(pi.key)
        self.queue.requeue_unschedulable(qp, result.unschedulable_plugins(), cycle)
        ATTEMPT_SECONDS.labels("unschedulable", fw.scheduler_name).observe(
            time.perf_counter() - started)
        self._spawn(self._fail(pi, result.message(), fw.scheduler_name, nominate, candidate))
        return result

    # writes -----------------------------------------------------------------------------------
    async def _bind(self, qp: QueuedPod, node: str) -> None:
        pi = qp.info
        binding = {"apiVersion": "v1", "kind": "Binding",
                   "metadata": {"name": pi.name, "namespace": pi.namespace, "uid": pi.uid},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        try:
            async with self._writes:
                await self.client.create(PODS, binding, pi.namespace, subresource="binding",
                                         name=pi.name)
        except APIError as exc:
            self.cache.forget_assumed(pi.key)
            if exc.code == 404:
                return  # deleted meanwhile
            log.info("binding %s to %s failed: %s", pi.key, node, exc)
            if exc.code != 409 or "already assigned" not in exc.message:
                self._recorder(pi).event(pi.pod, WARNING, FAILED_SCHEDULING,
                                    f"Binding rejected: {exc.message}")
                self.queue.requeue_error(qp)
            self.queue.move_all(fwk.POD_DELETE)  # its room on the node is free again
            return
        except Exception as exc:  # noqa: BLE001 - a lost connection: try again later
            self.cache.forget_assumed(pi.key)
            log.warning("binding %s to %s failed: %s", pi.key, node, exc)
            self.queue.requeue_error(qp)
            return
        self._recorder(pi).event(pi.pod, NORMAL, SCHEDULED,
                            f"Successfully assigned {pi.namespace}/{pi.name} to {node}")

    async def _fail(self, pi: PodInfo, message: str, scheduler_name: str,
                    nominate: str | None, candidate: Candidate | None) -> None:
        if candidate is not None:
            await self._evict(pi, candidate, scheduler_name)
        log.info("unable to schedule pod %s: %s", pi.key, message)
        self._recorder(pi).event(pi.pod, WARNING, FAILED_SCHEDULING, message)
        await self._patch_condition(pi, message, nominate)

    async def _patch_condition(self, pi: PodInfo, message: str, nominate: str | None) -> None:
        status = pi.pod.get("status") or {}
        current = next((c for c in status.get("conditions") or []
                        if c.get("type") == "PodScheduled"), {})
        same = (current.get("status") == "False" and current.get("reason") == UNSCHEDULABLE_REASON
                and current.get("message") == message)
        nominate_changes = nominate is not None and \
            nominate != (status.get("nominatedNodeName") or "")
        if same and not nominate_changes:
            return
        cond = {"type": "PodScheduled", "status": "False", "reason": UNSCHEDULABLE_REASON,
                "message": message, "lastProbeTime": None,
                "lastTransitionTime": current.get("lastTransitionTime")
                if current.get("status") == "False" else now_rfc3339()}
        patch: dict = {"status": {"conditions": [cond]}}
        if nominate_changes:
            patch["status"]["nominatedNodeName"] = nominate or None
        try:
            await self.client.patch(PODS, pi.name, patch, pi.namespace, patch_type="strategic",
                                    subresource="status")
        except APIError as exc:
            if exc.code != 404:
                log.warning("updating the PodScheduled condition of %s: %s", pi.key, exc)
        except Exception as exc:  # noqa: BLE001 - the next cycle writes it again
            log.warning("updating the PodScheduled condition of %s: %s", pi.key, exc)

    async def _evict(self, preemptor: PodInfo, candidate: Candidate, scheduler_name: str) -> None:
        async def one(victim: PodInfo) -> None:
            if victim.deleting:
                return  # graceful deletion already under way
            cond = {"type": DISRUPTION_TARGET, "status": "True", "reason": PREEMPTION_BY_SCHEDULER,
                    "message": f"{scheduler_name}: preempting to accommodate a higher priority pod",
                    "lastTransitionTime": now_rfc3339()}
            try:
                await self.client.patch(PODS, victim.name, {"status": {"conditions": [cond]}},
                                        victim.namespace, patch_type="strategic",
                                        subresource="status")
                await self.client.delete(PODS, victim.name, victim.namespace)
            except APIError as exc:
                if exc.code != 404:
                    log.warning("preempting %s: %s", victim.key, exc)
                return
            PREEMPTION_VICTIMS.inc()
            self._recorder(preemptor).event(victim.pod, NORMAL, PREEMPTED,
                                f"Preempted by pod {preemptor.uid} on node {candidate.node}")

        await asyncio.gather(*(one(v) for v in candidate.victims))
        # Lower-priority pods nominated to this node may no longer fit: let them look again.
        for other in list(self.queue.nominated.get(candidate.node, {}).values()):
            if other.priority < preemptor.priority:
                self.queue.delete_nominated(other.key)
                try:
                    await self.client.patch(PODS, other.name,
                                            {"status": {"nominatedNodeName": None}},
                                            other.namespace, patch_type="strategic",
                                            subresource="status")
                except APIError:
                    pass
                self.queue.activate(other.key)


def _pod_scheduling_view(pod: dict) -> tuple:
    return ((pod.get("metadata") or {}).get("labels"), pod.get("spec"))


def _node_scheduling_view(node: dict) -> tuple:
    meta, spec, status = node.get("metadata") or {}, node.get("spec") or {}, \
        node.get("status") or {}
    return (meta.get("labels"), spec.get("taints"), spec.get("unschedulable"),
            status.get("allocatable"), status.get("images"))
