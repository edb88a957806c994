"""A de-duplicating work queue with rate-limited requeue, as client-go's workqueue.

A key is queued at most once (the *dirty* set); a key being processed is never
handed to a second worker: re-adding it while in *processing* marks it dirty and
it is queued again on ``done()``. Failed keys come back through a rate limiter
(per-item exponential backoff max'ed with an overall token bucket), delayed keys
wait in a heap.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
import weakref
from collections import deque
from collections.abc import Callable, Hashable

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

from bootstrap.api.metrics import REGISTRY

Key = Hashable

# Upstream's workqueue metrics (k8s.io/component-base/metrics/prometheus/workqueue).
_BUCKETS = tuple(1e-8 * 10 ** i for i in range(10))
DEPTH = Gauge("workqueue_depth", "Current depth of workqueue", ["name"], registry=REGISTRY)
ADDS = Counter("workqueue_adds", "Total number of adds handled by workqueue", ["name"],
               registry=REGISTRY)
RETRIES = Counter("workqueue_retries", "Total number of retries handled by workqueue",
                  ["name"], registry=REGISTRY)
QUEUE_DURATION = Histogram(
    "workqueue_queue_duration_seconds",
    "How long in seconds an item stays in workqueue before being requested.", ["name"],
    buckets=_BUCKETS, registry=REGISTRY)
WORK_DURATION = Histogram(
    "workqueue_work_duration_seconds",
    "How long in seconds processing an item from workqueue takes.", ["name"],
    buckets=_BUCKETS, registry=REGISTRY)


class _InFlightCollector:
    """workqueue_unfinished_work_seconds and workqueue_longest_running_processor_seconds,
    computed at scrape time from the keys being processed (upstream samples them every
    500 ms instead)."""

    def __init__(self):
        self.queues: weakref.WeakSet[WorkQueue] = weakref.WeakSet()

    def collect(self):
        unfinished = GaugeMetricFamily(
            "workqueue_unfinished_work_seconds",
            "How many seconds of work has done that is in progress and hasn't been "
            "observed by work_duration. Large values indicate stuck threads.", labels=["name"])
        longest = GaugeMetricFamily(
            "workqueue_longest_running_processor_seconds",
            "How many seconds has the longest running processor for workqueue been running.",
            labels=["name"])
        now = time.monotonic()
        for queue in list(self.queues):
            ages = [now - t for t in queue._started_at.values()]
            unfinished.add_metric([queue.name], sum(ages))
            longest.add_metric([queue.name], max(ages, default=0.0))
        yield unfinished
        yield longest


_IN_FLIGHT = _InFlightCollector()
REGISTRY.register(_IN_FLIGHT)


class RateLimiter:
    def when(self, item: Key) -> float:
        """Seconds to wait before the item is retried (and count the retry)."""
        raise NotImplementedError

    def forget(self, item: Key) -> None:
        """The item succeeded: stop tracking its failures."""

    def num_requeues(self, item: Key) -> int:
        return 0


class ItemExponentialFailureRateLimiter(RateLimiter):
    """base * 2**failures per item, capped at max_delay."""

    def __init__(self, base: float = 0.005, max_delay: float = 1000.0):
        self.base = base
        self.max_delay = max_delay
        self._failures: dict[Key, int] = {}

    def when(self, item: Key) -> float:
        n = self._failures.get(item, 0)
        self._failures[item] = n + 1
        if n > 64:  # 2**n overflows any sane delay long before this
            return self.max_delay
        return min(self.base * 2 ** n, self.max_delay)

    def forget(self, item: Key) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: Key) -> int:
        return self._failures.get(item, 0)


class BucketRateLimiter(RateLimiter):
    """An overall token bucket (golang.org/x/time/rate Reserve semantics): each retry
    takes a token; when none is left the retry waits for the next one."""

    def __init__(self, qps: float = 10.0, burst: int = 100,
                 clock: Callable[[], float] = time.monotonic):
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def when(self, item: Key) -> float:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps


class MaxOfRateLimiter(RateLimiter):
    def __init__(self, *limiters: RateLimiter):
        self.limiters = limiters

    def when(self, item: Key) -> float:
        return max(rl.when(item) for rl in self.limiters)

    def forget(self, item: Key) -> None:
        for rl in self.limiters:
            rl.forget(item)

    def num_requeues(self, item: Key) -> int:
        return max(rl.num_requeues(item) for rl in self.limiters)


def default_controller_rate_limiter() -> RateLimiter:
    """client-go's DefaultControllerRateLimiter: 5 ms..1000 s per item, 10 qps / 100 burst."""
    return MaxOfRateLimiter(ItemExponentialFailureRateLimiter(0.005, 1000.0),
                            BucketRateLimiter(10.0, 100))


class ShutDown(Exception):
    """The queue was shut down and has nothing left to hand out."""


class WorkQueue:
    def __init__(self, name: str = "", rate_limiter: RateLimiter | None = None):
        self.name = name
        self.rate_limiter = rate_limiter or default_controller_rate_limiter()
        self._queue: deque[Key] = deque()
        self._dirty: set[Key] = set()
        self._processing: set[Key] = set()
        self._added_at: dict[Key, float] = {}
        self._started_at: dict[Key, float] = {}
        self._shutting_down = False
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        # add_after: (ready_at, seq, key) with lazy deletion via _waiting[key]
        self._heap: list[tuple[float, int, Key]] = []
        self._waiting: dict[Key, float] = {}
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._metrics = bool(name)
        if self._metrics:
            _IN_FLIGHT.queues.add(self)

    # the basic queue -------------------------------------------------------------

    def add(self, key: Key) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if self._metrics:
            ADDS.labels(self.name).inc()
        if key in self._processing:
            return  # requeued by done()
        self._push(key)

    def _push(self, key: Key) -> None:
        self._queue.append(key)
        self._added_at.setdefault(key, time.monotonic())
        self._idle.clear()
        self._wake.set()
        self._gauge()

    async def get(self) -> Key:
        while not self._queue:
            if self._shutting_down:
                raise ShutDown(self.name)
            self._wake.clear()
            await self._wake.wait()
        key = self._queue.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        now = time.monotonic()
        added = self._added_at.pop(key, now)
        self._started_at[key] = now
        if self._metrics:
            QUEUE_DURATION.labels(self.name).observe(now - added)
        self._gauge()
        return key

    def done(self, key: Key) -> None:
        self._processing.discard(key)
        started = self._started_at.pop(key, None)
        if self._metrics and started is not None:
            WORK_DURATION.labels(self.name).observe(time.monotonic() - started)
        if key in self._dirty:
            self._push(key)
        elif not self._queue and not self._processing:
            self._idle.set()

    def __len__(self) -> int:
        return len(self._queue)

    def _gauge(self) -> None:
        if self._metrics:
            DEPTH.labels(self.name).set(len(self._queue))

    # delays and rate limiting ----------------------------------------------------

    def add_after(self, key: Key, seconds: float) -> None:
        """Add the key once ``seconds`` have passed; a key already waiting keeps the
        earlier of its two ready times."""
        if self._shutting_down:
            return
        if seconds <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        ready = loop.time() + seconds
        if key in self._waiting and self._waiting[key] <= ready:
            return
        self._waiting[key] = ready
        heapq.heappush(self._heap, (ready, next(self._seq), key))
        self._arm(loop)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._heap and self._waiting.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # superseded entry
        if self._heap:
            self._timer = loop.call_at(self._heap[0][0], self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        while self._heap and self._heap[0][0] <= now:
            ready, _, key = heapq.heappop(self._heap)
            if self._waiting.get(key) == ready:
                del self._waiting[key]
                self.add(key)
        self._arm(loop)

    def add_rate_limited(self, key: Key) -> None:
        if self._metrics:
            RETRIES.labels(self.name).inc()
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: Key) -> None:
        self.rate_limiter.forget(key)

    def num_requeues(self, key: Key) -> int:
        return self.rate_limiter.num_requeues(key)

    # shutdown --------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop accepting keys; queued keys are still handed out, then get() raises
        ShutDown. Keys waiting for a delay are dropped."""
        self._shutting_down = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._heap.clear()
        self._waiting.clear()
        self._wake.set()

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    async def shutdown_with_drain(self) -> None:
        """shutdown() and wait until every queued and in-flight key is done."""
        self.shutdown()
        await self._idle.wait()
