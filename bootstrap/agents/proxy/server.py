"""kube-proxy's two plain-HTTP servers, as upstream: /healthz (and /livez) on
healthzBindAddress (0.0.0.0:10256) and /metrics on metricsBindAddress
(127.0.0.1:10249).

Health follows upstream's ProxierHealthServer: healthy once the first sync
applied, and unhealthy while an update has been waiting longer than twice the
sync period (the proxier is stuck). The body is upstream's JSON
``{"lastUpdated": ..., "currentTime": ..., "nodeEligible": true}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    Histogram,
    generate_latest,
)

BUCKETS = tuple(0.001 * 2 ** i for i in range(15))   # upstream: ExponentialBuckets(0.001, 2, 15)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.sync = Histogram("kubeproxy_sync_proxy_rules_duration_seconds",
                              "SyncProxyRules latency in seconds", buckets=BUCKETS,
                              registry=self.registry)
        self.sync_full = Histogram("kubeproxy_sync_full_proxy_rules_duration_seconds",
                                   "SyncProxyRules latency in seconds for full resyncs",
                                   buckets=BUCKETS, registry=self.registry)
        self.sync_partial = Histogram("kubeproxy_sync_partial_proxy_rules_duration_seconds",
                                      "SyncProxyRules latency in seconds for partial resyncs",
                                      buckets=BUCKETS, registry=self.registry)
        self.last_sync = Gauge("kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                               "The last time proxy rules were successfully synced",
                               registry=self.registry)
        self.restore_failures = Gauge("kubeproxy_sync_proxy_rules_iptables_restore_failures",
                                      "Cumulative proxy iptables restore failures",
                                      registry=self.registry)
        self.rules = Gauge("kubeproxy_sync_proxy_rules_iptables_total",
                           "Number of iptables rules written by kube-proxy in the last sync",
                           ["table"], registry=self.registry)

    def observe(self, full: bool, seconds: float, text: str) -> None:
        self.sync.observe(seconds)
        (self.sync_full if full else self.sync_partial).observe(seconds)
        self.last_sync.set_to_current_time()
        table = ""
        counts = {"filter": 0, "nat": 0}
        for line in text.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith("-A ") and table in counts:
                counts[table] += 1
        for t, n in counts.items():
            self.rules.labels(table=t).set(n)


class Health:
    """State shared by the syncer (writer) and the /healthz handler (reader)."""

    def __init__(self, timeout: float, *, clock: Callable[[], float] = time.time):
        self.timeout = timeout
        self.clock = clock
        self.last_updated: float | None = None
        self.oldest_pending: float | None = None

    def queued(self) -> None:
        if self.oldest_pending is None:
            self.oldest_pending = self.clock()

    def updated(self) -> None:
        self.last_updated = self.clock()
        self.oldest_pending = None

    def healthy(self) -> bool:
        if self.last_updated is None:
            return False
        return self.oldest_pending is None or self.clock() - self.oldest_pending <= self.timeout

    def body(self) -> bytes:
        def fmt(t: float | None) -> str:
            if t is None:
                return "0001-01-01T00:00:00Z"    # Go's zero time, as upstream reports
            return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")
        return orjson.dumps({"lastUpdated": fmt(self.last_updated),
                             "currentTime": fmt(self.clock()), "nodeEligible": True})


def healthz_app(health: Health) -> web.Application:
    async def healthz(_req: web.Request) -> web.Response:
        return web.Response(status=200 if health.healthy() else 503, body=health.body(),
                            content_type="application/json")
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/livez", healthz)
    return app


def metrics_app(registry: CollectorRegistry, health: Health | None = None) -> web.Application:
    async def metrics(_req: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_req: web.Request) -> web.Response:
        return web.Response(text="ok")
    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    return app


async def serve(app: web.Application, address: str) -> web.AppRunner:
    host, _, port = address.rpartition(":")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host.strip("[]") or "0.0.0.0", int(port)).start()
    return runner
