"""Scheduler throughput: prints numbers next to a baseline from the same run; asserts nothing.

    .venv/bin/python bench/bench_scheduler.py [--pods 1000] [--nodes 100] [--profile]

Starts a real etcd and API server on loopback (tests/integration/cluster.py) and
writes N fake nodes (a tenth tainted, five zones). Baseline: a plain client
POSTs pods/binding for N pods nobody schedules, as fast as it can (concurrency
32). Then the scheduler runs as a real process with its own credentials and the
N pods (cpu/memory requests, a zone spread constraint) are created; the rate is
pods from the first create to the last binding seen on a watch, and for N pods
already pending when the scheduler starts (its own rate, apart from the API
server's create rate). The baseline is measured before and after; its mean is
the reference, since the shared machine's load drifts. --profile runs
the scheduler under cProfile and prints its top functions. Last, the RSS of a
scheduler started with --memory-pods (5,000) bound pods and the nodes cached.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bootstrap.api.client import Client  # noqa: E402
from bootstrap.api.errors import APIError  # noqa: E402
from bootstrap.api.resources import by_gvr  # noqa: E402
from tests.integration.cluster import ROOT, free_port, running_cluster  # noqa: E402

PODS = by_gvr("", "v1", "pods")
NODES = by_gvr("", "v1", "nodes")
NAMESPACES = by_gvr("", "v1", "namespaces")
SAS = by_gvr("", "v1", "serviceaccounts")
CONCURRENCY = 32


def node(i: int) -> dict:
    alloc = {"cpu": "32", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    taints = [{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}] if i % 10 == 0 else []
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": f"node-{i:03d}",
                         "labels": {"kubernetes.io/hostname": f"node-{i:03d}", "zone": f"z{i % 5}"}},
            "spec": {"taints": taints},
            "status": {"capacity": alloc, "allocatable": alloc,
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def pod(ns: str, i: int, scheduler: str = "default-scheduler") -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"p-{i:05d}", "namespace": ns, "labels": {"app": "bench"}},
            "spec": {"schedulerName": scheduler, "automountServiceAccountToken": False,
                     "containers": [{"name": "c", "image": "busybox", "resources": {
                         "requests": {"cpu": "100m", "memory": "128Mi"}}}],
                     "topologySpreadConstraints": [{
                         "maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
                         "labelSelector": {"matchLabels": {"app": "bench"}}}]}}


async def concurrently(n: int, fn, concurrency: int = CONCURRENCY) -> float:
    """fn(i) for i in range(n) with ``concurrency`` workers; returns the seconds taken."""
    items = iter(range(n))

    async def worker():
        for i in items:
            await fn(i)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start


async def namespace(client: Client, name: str) -> None:
    await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": name}})
    await client.create(SAS, {"apiVersion": "v1", "kind": "ServiceAccount",
                              "metadata": {"name": "default", "namespace": name}})


async def raw_binding_rate(client: Client, n: int, nodes: int, ns: str) -> float:
    await namespace(client, ns)
    await concurrently(n, lambda i: client.create(PODS, pod(ns, i, "nobody"), ns))

    async def bind(i: int) -> None:
        name = f"p-{i:05d}"
        await client.create(PODS, {"apiVersion": "v1", "kind": "Binding",
                                   "metadata": {"name": name, "namespace": ns},
                                   "target": {"kind": "Node", "name": f"node-{1 + i % (nodes - 1):03d}"}},
                            ns, subresource="binding", name=name)
    seconds = await concurrently(n, bind)

    async def delete(i: int) -> None:
        try:
            await client.delete(PODS, f"p-{i:05d}", ns, grace_period_seconds=0)
        except APIError:
            pass
    await concurrently(n, delete)
    return n / seconds


def readyz(port: int) -> bool:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", context=ctx, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


async def start(kubeconfig, port: int, log: Path, prof: Path | None) -> subprocess.Popen:
    cmd = [sys.executable] + (["-m", "cProfile", "-o", str(prof)] if prof else []) + [
        "-m", "bootstrap.agents.scheduler", f"--kubeconfig={kubeconfig}",
        "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={port}"]
    sched = subprocess.Popen(cmd, stdout=open(log, "wb"), stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + 120
    while not readyz(port):
        if sched.poll() is not None or time.monotonic() > deadline:
            sched.kill()
            raise RuntimeError("scheduler did not start: " + log.read_text())
        await asyncio.sleep(0.1)
    return sched


async def cached_rss(client: Client, cluster, kubeconfig, args) -> float:
    """RSS of a freshly started scheduler whose cache holds ``memory_pods`` bound pods."""
    have = 0
    for ns in ("bench", "bench-backlog"):
        have += len((await client.list(PODS, ns))["items"])
    more = max(args.memory_pods - have, 0)
    ns = "bench-memory"
    await namespace(client, ns)

    async def create(i: int) -> None:
        body = pod(ns, i)
        body["spec"]["nodeName"] = f"node-{1 + i % (args.nodes - 1):03d}"
        await client.create(PODS, body, ns)
    await concurrently(more, create)
    port = free_port()
    sched = await start(kubeconfig, port, cluster.base / "scheduler-memory.log", None)
    try:
        return proc_stats(sched.pid)[1]
    finally:
        sched.terminate()
        sched.wait(30)


def proc_stats(pid: int) -> tuple[float, float]:
    """(cpu seconds, RSS MiB) of a process from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    return cpu, rss


class BoundWatch:
    """Counts pods of a namespace seen bound on a watch; times the first and last."""

    def __init__(self, client: Client, ns: str, n: int):
        self.client, self.ns, self.n = client, ns, n
        self.bound: set[str] = set()
        self.first = self.last = 0.0
        self.done = asyncio.Event()

    async def start(self) -> None:
        rv = (await self.client.list(PODS, self.ns))["metadata"]["resourceVersion"]
        self.task = asyncio.create_task(self._watch(rv))

    async def _watch(self, rv: str) -> None:
        while not self.done.is_set():
            async for ev in self.client.watch(PODS, self.ns, resource_version=rv,
                                              timeout_seconds=300):
                obj = ev["object"]
                rv = obj["metadata"].get("resourceVersion", rv)
                if ev["type"] in ("ADDED", "MODIFIED") and (obj.get("spec") or {}).get("nodeName"):
                    self.last = time.perf_counter()
                    self.first = self.first or self.last
                    self.bound.add(obj["metadata"]["name"])
                    if len(self.bound) >= self.n:
                        self.done.set()
                        return

    async def wait(self) -> None:
        await asyncio.wait_for(self.done.wait(), 600)
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def scheduled_rate(client: Client, n: int) -> tuple[float, float, float]:
    """(pods/s first create to last bound, creates/s, seconds) with the scheduler running."""
    ns = "bench"
    await namespace(client, ns)
    watch = BoundWatch(client, ns, n)
    await watch.start()
    start = time.perf_counter()
    create_seconds = await concurrently(n, lambda i: client.create(PODS, pod(ns, i), ns))
    await watch.wait()
    seconds = watch.last - start
    return n / seconds, n / create_seconds, seconds


def decisions_per_second(n: int, nodes: int) -> float:
    """The pure core alone: filter, score and assume n pods over the cached nodes."""
    from bootstrap.agents.scheduler.cache import PodInfo, SchedulerCache
    from bootstrap.agents.scheduler.config import default_config, frameworks

    fw = frameworks(default_config())["default-scheduler"]
    cache = SchedulerCache()
    for i in range(nodes):
        cache.add_node(node(i))
    infos = [PodInfo({**pod("core", i), "metadata": {**pod("core", i)["metadata"], "uid": str(i)}})
             for i in range(n)]
    start = time.perf_counter()
    for pi in infos:
        result, _ = fw.schedule(pi, cache.snapshot())
        cache.assume(pi, result.node)
    return n / (time.perf_counter() - start)


async def run(args) -> None:
    with running_cluster() as cluster:
        async with Client.from_kubeconfig(cluster.admin) as client:
            await concurrently(args.nodes, lambda i: client.create(NODES, node(i)))
            raw_before = await raw_binding_rate(client, args.pods, args.nodes, "bench-raw-1")
            # A backlog: pods pending before the scheduler starts, so its own rate is
            # measured apart from the API server's create rate.
            await namespace(client, "bench-backlog")
            await concurrently(args.pods, lambda i: client.create(
                PODS, pod("bench-backlog", i), "bench-backlog"))
            backlog = BoundWatch(client, "bench-backlog", args.pods)
            await backlog.start()
            port = free_port()
            log = cluster.base / "scheduler.log"
            prof = Path(tempfile.gettempdir()) / f"bench-scheduler-{os.getpid()}.prof"
            kubeconfig = cluster.kubeconfig("system:kube-scheduler")
            sched = await start(kubeconfig, port, log, prof if args.profile else None)
            try:
                await backlog.wait()
                backlog_rate = (args.pods - 1) / (backlog.last - backlog.first)
                cpu0, _ = proc_stats(sched.pid)
                rate, create_rate, seconds = await scheduled_rate(client, args.pods)
                cpu1, rss = proc_stats(sched.pid)
            finally:
                sched.terminate()
                sched.wait(30)
            # again after, as the shared machine's load drifts: the baseline is the mean
            raw_after = await raw_binding_rate(client, args.pods, args.nodes, "bench-raw-2")
            raw = (raw_before + raw_after) / 2
            rss_cached = None
            if args.memory_pods:
                rss_cached = await cached_rss(client, cluster, kubeconfig, args)
            pods = await client.list(PODS, "bench")
            per_node: dict[str, int] = {}
            for p in pods["items"]:
                per_node[p["spec"].get("nodeName", "")] = per_node.get(p["spec"].get("nodeName", ""), 0) + 1
    core = decisions_per_second(args.pods, args.nodes)
    print(f"{args.pods} pods onto {args.nodes} nodes (10% tainted, zone spread maxSkew 1)")
    print(f"{'':40s} {'ours':>10s} {'baseline':>10s}")
    print(f"{'pods bound per second, create to bound':40s} {rate:10.1f} {raw:10.1f}  "
          f"{rate / raw:5.2f}x of the raw pods/binding rate")
    print(f"{'backlog bound per second (scheduler)':40s} {backlog_rate:10.1f} {raw:10.1f}  "
          f"{backlog_rate / raw:5.2f}x (pods pending before it started)")
    print(f"{'scheduling decisions per second (core)':40s} {core:10.1f} {raw:10.1f}  "
          f"{core / raw:5.2f}x (in-process, no API writes)")
    print(f"{'first create to last bound, s':40s} {seconds:10.2f}")
    print(f"{'pod creates per second (same run)':40s} {create_rate:10.1f}")
    print(f"{'raw pods/binding per second before/after':40s} {raw_before:10.1f} {raw_after:10.1f}")
    print(f"{'scheduler CPU seconds per 1000 pods':40s} {(cpu1 - cpu0) * 1000 / args.pods:10.2f}")
    print(f"{'scheduler RSS MiB':40s} {rss:10.1f}")
    if rss_cached is not None:
        print(f"{f'scheduler RSS MiB, {args.memory_pods} pods cached':40s} {rss_cached:10.1f}")
    tainted = sum(v for k, v in per_node.items() if k.endswith("0") and int(k[-3:]) % 10 == 0)
    print(f"{'pods on tainted nodes (want 0)':40s} {tainted:10d}")
    if args.profile and prof.exists():
        pstats.Stats(str(prof)).sort_stats("tottime").print_stats(30)
        prof.unlink()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--memory-pods", type=int, default=5000,
                    help="pods cached when measuring the scheduler's RSS (0: skip)")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
