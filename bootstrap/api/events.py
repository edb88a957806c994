"""core/v1 Events, written in the background and correlated as client-go's
EventCorrelator does, so a loop that reports the same thing every second makes one
Event with a growing ``count`` rather than thousands of objects:

- spam filter: per (source, involved object) a token bucket of 25, refilled one
  token every 5 minutes; events beyond it are dropped;
- aggregator: from the 10th distinct message of otherwise similar events (no
  gap over 10 minutes between them) on, they collapse into one
  "(combined from similar events): <message>" Event;
- logger: an event identical to one already written (same source, object, type,
  reason, message; remembered in an LRU of 4096) PATCHes that Event's count,
  lastTimestamp and message.
Writing is best effort, as upstream: at most 1000 events wait to be written
(more are dropped), a write failing on the connection, 429 or 5xx is retried a
few times, anything else is logged and dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bootstrap.api.client import Client
from bootstrap.api.errors import APIError
from bootstrap.api.resources import by_gvr

log = logging.getLogger(__name__)

EVENTS = by_gvr("", "v1", "events")
NORMAL, WARNING = "Normal", "Warning"

SPAM_BURST = 25
SPAM_REFILL_SECONDS = 300.0
AGGREGATE_MAX_EVENTS = 10
AGGREGATE_INTERVAL = 600.0
CACHE_SIZE = 4096
MAX_QUEUED = 1000  # upstream's maxQueuedEvents: beyond it, new events are dropped
COMBINED_PREFIX = "(combined from similar events): "


def object_reference(obj: dict) -> dict:
    """An ObjectReference for an object (or a reference passed as is)."""
    if "metadata" not in obj:
        return {k: v for k, v in obj.items() if v}
    meta = obj["metadata"]
    ref = {"kind": obj.get("kind", ""), "namespace": meta.get("namespace", ""),
           "name": meta.get("name", ""), "uid": meta.get("uid", ""),
           "apiVersion": obj.get("apiVersion", ""),
           "resourceVersion": meta.get("resourceVersion", "")}
    return {k: v for k, v in ref.items() if v}


def _ref_key(ref: dict) -> tuple:
    return tuple(ref.get(k, "") for k in ("kind", "namespace", "name", "fieldPath", "uid",
                                          "apiVersion"))


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Written:
    name: str
    namespace: str
    count: int


class _Aggregate:
    def __init__(self):
        self.messages: set[str] = set()
        self.last = 0.0


class EventRecorder:
    # Pauses before retrying a write the server may accept later (connection errors,
    # 429, 5xx); upstream tries 12 times, 10 s apart, which we shorten.
    retry_delays: tuple[float, ...] = (1.0, 2.0, 4.0)

    def __init__(self, client: Client, component: str, host: str = "", *,
                 clock: Callable[[], float] = time.time):
        self.client = client
        self.component = component
        self.host = host
        self._clock = clock
        self._pending: asyncio.Queue[dict] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._written: OrderedDict[tuple, _Written] = OrderedDict()
        self._aggregates: OrderedDict[tuple, _Aggregate] = OrderedDict()
        self._spam: OrderedDict[tuple, tuple[float, float]] = OrderedDict()  # tokens, last
        self._closed = False
        self._last_nanos = 0

    def event(self, obj: dict, type_: str, reason: str, message: str) -> None:
        """Record an event about ``obj``; never blocks and never raises on API errors."""
        if self._closed:
            return
        if self._pending.qsize() >= MAX_QUEUED:
            log.debug("event %s dropped: %d events already queued", reason, MAX_QUEUED)
            return
        ref = object_reference(obj)
        self._pending.put_nowait({"ref": ref, "type": type_, "reason": reason,
                                  "message": message, "at": self._clock()})
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"events-{self.component}")

    def eventf(self, obj: dict, type_: str, reason: str, fmt: str, *args) -> None:
        self.event(obj, type_, reason, fmt % args if args else fmt)

    async def flush(self) -> None:
        await self._pending.join()

    async def close(self, timeout: float | None = None) -> None:
        """Write what is queued (for at most ``timeout`` seconds), then stop."""
        self._closed = True
        if self._task is not None:
            try:
                await asyncio.wait_for(self.flush(), timeout)
            except TimeoutError:
                log.warning("%d events not written before shutdown", self._pending.qsize())
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # the writer -------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            item = await self._pending.get()
            try:
                await self._write_with_retries(item)
            finally:
                self._pending.task_done()

    async def _write_with_retries(self, item: dict) -> None:
        for delay in (*self.retry_delays, None):
            try:
                await self._write(item)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # events are best effort, as upstream
                retriable = not isinstance(exc, APIError) or exc.code >= 500 or exc.code == 429
                if delay is None or not retriable:
                    log.warning("unable to write event %s %s: %s", item["reason"],
                                item["ref"].get("name"), exc)
                    return
            await asyncio.sleep(delay)

    def _allowed(self, source_key: tuple, at: float) -> bool:
        tokens, last = self._spam.get(source_key, (float(SPAM_BURST), at))
        tokens = min(float(SPAM_BURST), tokens + (at - last) / SPAM_REFILL_SECONDS)
        allowed = tokens >= 1
        self._spam[source_key] = (tokens - 1 if allowed else tokens, at)
        self._spam.move_to_end(source_key)
        while len(self._spam) > CACHE_SIZE:
            self._spam.popitem(last=False)
        return allowed

    def _aggregate(self, base: tuple, message: str, at: float) -> tuple[tuple, str]:
        agg = self._aggregates.get(base)
        if agg is None or at - agg.last > AGGREGATE_INTERVAL:
            agg = _Aggregate()
        agg.last = at  # the window slides with every similar event, as upstream
        self._aggregates[base] = agg
        self._aggregates.move_to_end(base)
        while len(self._aggregates) > CACHE_SIZE:
            self._aggregates.popitem(last=False)
        agg.messages.add(message)
        if len(agg.messages) < AGGREGATE_MAX_EVENTS:
            return base + (message,), message
        agg.messages.pop()  # the set never grows past the threshold
        return base, COMBINED_PREFIX + message

    async def _write(self, item: dict) -> None:
        ref, at = item["ref"], item["at"]
        source = (self.component, self.host)
        if not self._allowed(source + _ref_key(ref) + (item["type"],), at):
            log.debug("event %s on %s dropped by the spam filter", item["reason"],
                      ref.get("name"))
            return
        base = source + _ref_key(ref) + (item["type"], item["reason"])
        key, message = self._aggregate(base, item["message"], at)
        now = _rfc3339(at)
        seen = self._written.get(key)
        if seen is not None:
            patch = {"count": seen.count + 1, "lastTimestamp": now, "message": message}
            try:
                await self.client.patch(EVENTS, seen.name, patch, seen.namespace,
                                        patch_type="strategic")
                seen.count += 1
                self._written.move_to_end(key)
                return
            except APIError as exc:
                if exc.code != 404:
                    raise
                # The Event was deleted (TTL): write a fresh one.
        namespace = ref.get("namespace") or "default"
        # "<object>.<unix nanos in hex>" as upstream; strictly increasing here so two
        # events in one clock tick still get distinct names.
        self._last_nanos = max(int(at * 1e9), self._last_nanos + 1)
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{ref.get('name', '')}.{self._last_nanos:x}",
                         "namespace": namespace},
            "involvedObject": ref, "reason": item["reason"], "message": message,
            "source": {k: v for k, v in (("component", self.component),
                                          ("host", self.host)) if v},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "type": item["type"], "reportingComponent": self.component,
            "reportingInstance": self.host,
        }
        created = await self.client.create(EVENTS, body, namespace)
        self._written[key] = _Written(created["metadata"]["name"], namespace, 1)
        while len(self._written) > CACHE_SIZE:
            self._written.popitem(last=False)
