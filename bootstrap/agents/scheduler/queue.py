"""The scheduling queue: active, backoff and unschedulable pods (upstream PriorityQueue).

- active: a heap by priority (higher first), then by the time the pod entered the
  queue (earlier first) - the PrioritySort plugin;
- backoff: pods that failed recently wait 1 s doubling per attempt up to 10 s;
- unschedulable: pods no node fits, until a cluster event one of the plugins that
  rejected them cares about (node added/updated, assigned pod deleted, ...) moves
  them back, or after 5 minutes regardless (upstream's leftover flush);
- gated: pods with spec.schedulingGates stay out until the gates are removed.

A cluster event that arrives while a pod is being scheduled, and that one of
the plugins rejecting it cares about, sends that pod to backoff instead of
unschedulable when it fails, so the event is not lost (upstream's in-flight
events). The
queue also keeps the nominator: pods nominated to a node by preemption, which
filters count as already there.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .cache import PodInfo, pod_key

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 10.0
MAX_IN_UNSCHEDULABLE = 300.0
# Fields a pod update may change without making an unschedulable pod worth retrying.
_IGNORED_META = ("resourceVersion", "generation", "managedFields")


@dataclass
class QueuedPod:
    info: PodInfo
    timestamp: float
    initial_attempt: float | None = None
    attempts: int = 0
    unschedulable_plugins: set[str] = field(default_factory=set)
    seq: int = 0

    @property
    def key(self) -> str:
        return self.info.key

    @property
    def pod(self) -> dict:
        return self.info.pod


def has_gates(pod: dict) -> bool:
    return bool((pod.get("spec") or {}).get("schedulingGates"))


def _updated(old: dict, new: dict) -> bool:
    def strip(p: dict) -> tuple:
        meta = {k: v for k, v in (p.get("metadata") or {}).items() if k not in _IGNORED_META}
        return meta, p.get("spec")
    return strip(old) != strip(new)


class SchedulingQueue:
    def __init__(self, plugin_events: dict[str, frozenset[str]] | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 initial_backoff: float = INITIAL_BACKOFF, max_backoff: float = MAX_BACKOFF,
                 max_in_unschedulable: float = MAX_IN_UNSCHEDULABLE,
                 gated: Callable[[dict], bool] = has_gates):
        self.plugin_events = plugin_events or {}
        self.gated_pod = gated
        self.clock = clock
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_in_unschedulable = max_in_unschedulable
        self._seq = itertools.count()
        self._active_heap: list[tuple] = []
        self.active: dict[str, QueuedPod] = {}
        self._backoff_heap: list[tuple] = []
        self.backoff: dict[str, QueuedPod] = {}
        self.unschedulable: dict[str, QueuedPod] = {}
        self.gated: dict[str, QueuedPod] = {}
        self.in_flight: dict[str, QueuedPod] = {}
        self.scheduling_cycle = 0
        # Events seen while pods were in flight: (scheduling cycle, event).
        self._in_flight_events: list[tuple[int, str]] = []
        self.nominated: dict[str, dict[str, PodInfo]] = {}   # node -> key -> pod
        self._nominated_node: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._closed = False

    # sets -----------------------------------------------------------------------------
    def _push_active(self, qp: QueuedPod) -> None:
        qp.seq = next(self._seq)
        self.active[qp.key] = qp
        heapq.heappush(self._active_heap, (-qp.info.priority, qp.timestamp, qp.seq, qp.key))
        self._wake.set()

    def _push_backoff(self, qp: QueuedPod) -> None:
        qp.seq = next(self._seq)
        self.backoff[qp.key] = qp
        heapq.heappush(self._backoff_heap, (self.backoff_expiry(qp), qp.seq, qp.key))
        self._wake.set()

    def _discard(self, key: str) -> QueuedPod | None:
        for d in (self.active, self.backoff, self.unschedulable, self.gated):
            qp = d.pop(key, None)
            if qp is not None:
                return qp  # heap entries go stale and are skipped by seq
        return None

    def __contains__(self, key: str) -> bool:
        return any(key in d for d in (self.active, self.backoff, self.unschedulable,
                                      self.gated, self.in_flight))

    def __len__(self) -> int:
        return len(self.active) + len(self.backoff) + len(self.unschedulable) + len(self.gated)

    # backoff ----------------------------------------------------------------------------
    def backoff_duration(self, qp: QueuedPod) -> float:
        if qp.attempts <= 0:
            return 0.0
        return min(self.initial_backoff * 2 ** (qp.attempts - 1), self.max_backoff)

    def backoff_expiry(self, qp: QueuedPod) -> float:
        return qp.timestamp + self.backoff_duration(qp)

    def backing_off(self, qp: QueuedPod) -> bool:
        return self.backoff_expiry(qp) > self.clock()

    def _activate_or_backoff(self, qp: QueuedPod) -> None:
        if self.backing_off(qp):
            self._push_backoff(qp)
        else:
            self._push_active(qp)

    # informer events ----------------------------------------------------------------------
    def add(self, pod: dict) -> None:
        info = PodInfo(pod)
        if info.key in self:
            self.update(None, pod)
            return
        qp = QueuedPod(info, self.clock())
        self._nominate_from_status(info)
        if self.gated_pod(pod):
            self.gated[info.key] = qp
        else:
            qp.initial_attempt = qp.timestamp
            self._push_active(qp)

    def update(self, old: dict | None, new: dict) -> None:
        info = PodInfo(new)
        key = info.key
        self._nominate_from_status(info)
        if key in self.in_flight:
            self.in_flight[key].info = info
            return
        if key in self.gated:
            qp = self.gated[key]
            qp.info = info
            if not self.gated_pod(new):
                del self.gated[key]
                qp.timestamp = self.clock()
                qp.initial_attempt = qp.initial_attempt or qp.timestamp
                self._push_active(qp)
            return
        if key in self.active or key in self.backoff:
            (self.active.get(key) or self.backoff[key]).info = info
            return
        if key in self.unschedulable:
            qp = self.unschedulable[key]
            changed = old is None or _updated(old, new)
            qp.info = info
            if changed:
                # The pod itself changed (tolerations, affinity, ...): retry it.
                del self.unschedulable[key]
                self._activate_or_backoff(qp)
            return
        self.add(new)

    def delete(self, pod: dict) -> None:
        key = pod_key(pod)
        self._discard(key)
        self.done(key)
        self.delete_nominated(key)

    # the scheduling loop -----------------------------------------------------------------
    def pop_nowait(self) -> QueuedPod | None:
        self.flush()
        while self._active_heap:
            _, _, seq, key = heapq.heappop(self._active_heap)
            qp = self.active.get(key)
            if qp is None or qp.seq != seq:
                continue
            del self.active[key]
            qp.attempts += 1
            self.scheduling_cycle += 1
            self.in_flight[key] = qp
            return qp
        return None

    async def pop(self) -> QueuedPod:
        while True:
            qp = self.pop_nowait()
            if qp is not None:
                return qp
            if self._closed:
                raise asyncio.CancelledError
            self._wake.clear()
            timeout = 1.0
            if self._backoff_heap:
                timeout = min(timeout, max(self._backoff_heap[0][0] - self.clock(), 0.0))
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    def done(self, key: str) -> None:
        self.in_flight.pop(key, None)
        if not self.in_flight:
            self._in_flight_events.clear()

    def requeue_unschedulable(self, qp: QueuedPod, plugins: set[str], cycle: int) -> None:
        """After a failed cycle: to unschedulable, or to backoff when a cluster event
        arrived meanwhile (it may have been the one that makes the pod fit)."""
        if self.in_flight.pop(qp.key, None) is None:
            return  # deleted while it was being scheduled
        qp.timestamp = self.clock()
        qp.unschedulable_plugins = set(plugins)
        missed = any(c >= cycle and self._interested(qp, ev) for c, ev in self._in_flight_events)
        if not self.in_flight:
            self._in_flight_events.clear()
        if missed or not plugins:
            self._push_backoff(qp)
        else:
            self.unschedulable[qp.key] = qp

    def requeue_error(self, qp: QueuedPod) -> None:
        """After an error (API failure, bind conflict): straight to backoff."""
        self.done(qp.key)
        if qp.key in self:
            return
        qp.timestamp = self.clock()
        qp.unschedulable_plugins = set()
        self._push_backoff(qp)

    def move_all(self, event: str) -> int:
        """A cluster event: move the unschedulable pods it may help."""
        moved = 0
        for key, qp in list(self.unschedulable.items()):
            if self._interested(qp, event):
                del self.unschedulable[key]
                self._activate_or_backoff(qp)
                moved += 1
        if self.in_flight:
            self._in_flight_events.append((self.scheduling_cycle, event))
        return moved

    def activate(self, key: str) -> None:
        qp = self.unschedulable.pop(key, None) or self.backoff.pop(key, None)
        if qp is not None:
            self._push_active(qp)

    def _interested(self, qp: QueuedPod, event: str) -> bool:
        if not qp.unschedulable_plugins:
            return True
        return any(event in self.plugin_events.get(p, ()) for p in qp.unschedulable_plugins)

    def flush(self) -> None:
        now = self.clock()
        while self._backoff_heap and self._backoff_heap[0][0] <= now:
            _, seq, key = heapq.heappop(self._backoff_heap)
            qp = self.backoff.get(key)
            if qp is None or qp.seq != seq:
                continue
            del self.backoff[key]
            self._push_active(qp)
        for key, qp in list(self.unschedulable.items()):
            if now - qp.timestamp >= self.max_in_unschedulable:
                del self.unschedulable[key]
                self._activate_or_backoff(qp)

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    # nominator ---------------------------------------------------------------------------
    def _nominate_from_status(self, info: PodInfo) -> None:
        node = (info.pod.get("status") or {}).get("nominatedNodeName") or ""
        if node:
            self.add_nominated(info, node)
        elif info.key in self._nominated_node and not info.node_name:
            self.delete_nominated(info.key)

    def add_nominated(self, info: PodInfo, node: str) -> None:
        self.delete_nominated(info.key)
        self.nominated.setdefault(node, {})[info.key] = info
        self._nominated_node[info.key] = node

    def delete_nominated(self, key: str) -> None:
        node = self._nominated_node.pop(key, None)
        if node is not None:
            pods = self.nominated.get(node, {})
            pods.pop(key, None)
            if not pods:
                self.nominated.pop(node, None)

    def nominated_node(self, key: str) -> str:
        return self._nominated_node.get(key, "")

    def nominated_pods(self) -> dict[str, list[PodInfo]]:
        return {node: list(pods.values()) for node, pods in self.nominated.items() if pods}
