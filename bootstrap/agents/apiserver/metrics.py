"""Prometheus text-format metrics with upstream's apiserver metric names."""

from __future__ import annotations

import bisect
from collections import defaultdict

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5,
            6, 8, 10, 15, 20, 30, 45, 60)
_ETCD_BUCKETS = (0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6,
                 8, 10, 15, 20, 30, 45, 60)


class _Histogram:
    __slots__ = ("buckets", "counts", "sum", "count")

    def __init__(self, buckets):
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        i = bisect.bisect_left(self.buckets, v)
        if i < len(self.counts):
            self.counts[i] += 1
        self.sum += v
        self.count += 1

    def lines(self, name: str, labels: str) -> list[str]:
        out, acc = [], 0
        sep = "," if labels else ""
        for le, c in zip(self.buckets, self.counts, strict=True):
            acc += c
            out.append(f'{name}_bucket{{{labels}{sep}le="{le}"}} {acc}')
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.count}')
        out.append(f"{name}_sum{{{labels}}} {self.sum}")
        out.append(f"{name}_count{{{labels}}} {self.count}")
        return out


def _labels(**kv) -> str:
    return ",".join(f'{k}="{v}"' for k, v in kv.items())


class Metrics:
    def __init__(self):
        self.requests: dict[str, int] = defaultdict(int)
        self.durations: dict[str, _Histogram] = {}
        self.etcd: dict[str, _Histogram] = {}
        self.inflight_watchers: dict[str, int] = defaultdict(int)

    def request(self, verb: str, group: str, version: str, resource: str, subresource: str,
                scope: str, code: int, seconds: float) -> None:
        self.requests[_labels(code=code, component="apiserver", group=group,
                              resource=resource, scope=scope, subresource=subresource,
                              verb=verb.upper(), version=version)] += 1
        if verb != "WATCH":
            key = _labels(component="apiserver", group=group, resource=resource, scope=scope,
                          subresource=subresource, verb=verb.upper(), version=version)
            h = self.durations.get(key)
            if h is None:
                h = self.durations[key] = _Histogram(_BUCKETS)
            h.observe(seconds)

    def etcd_observe(self, operation: str, seconds: float) -> None:
        h = self.etcd.get(operation)
        if h is None:
            h = self.etcd[operation] = _Histogram(_ETCD_BUCKETS)
        h.observe(seconds)

    def watchers(self, res, delta: int) -> None:
        self.inflight_watchers[_labels(group=res.group, kind=res.kind)] += delta

    def render(self, cache_sizes: dict[str, int]) -> str:
        lines = ["# HELP apiserver_request_total Counter of apiserver requests broken out for "
                 "each verb, dry run value, group, version, resource, scope, component, and "
                 "HTTP response code.", "# TYPE apiserver_request_total counter"]
        lines += [f"apiserver_request_total{{{k}}} {v}" for k, v in sorted(self.requests.items())]
        lines += ["# HELP apiserver_request_duration_seconds Response latency distribution in "
                  "seconds for each verb, dry run value, group, version, resource, subresource, "
                  "scope and component.", "# TYPE apiserver_request_duration_seconds histogram"]
        for k, h in sorted(self.durations.items()):
            lines += h.lines("apiserver_request_duration_seconds", k)
        lines += ["# HELP etcd_request_duration_seconds Etcd request latency in seconds for "
                  "each operation.", "# TYPE etcd_request_duration_seconds histogram"]
        for op, h in sorted(self.etcd.items()):
            lines += h.lines("etcd_request_duration_seconds", _labels(operation=op))
        lines += ["# HELP apiserver_registered_watchers Number of currently registered watchers "
                  "for a given resources", "# TYPE apiserver_registered_watchers gauge"]
        lines += [f"apiserver_registered_watchers{{{k}}} {v}"
                  for k, v in sorted(self.inflight_watchers.items())]
        lines += ["# HELP apiserver_storage_objects Number of stored objects at the time of last check split by kind.",
                  "# TYPE apiserver_storage_objects gauge"]
        lines += [f'apiserver_storage_objects{{resource="{r}"}} {n}'
                  for r, n in sorted(cache_sizes.items())]
        return "\n".join(lines) + "\n"
