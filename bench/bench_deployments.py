"""Deployment reconcile: prints numbers next to a baseline from the same run; asserts nothing.

    .venv/bin/python bench/bench_deployments.py [--deployments 100] [--replicas 10]

Starts a real etcd and API server on loopback (tests/integration/cluster.py) and
the controller manager as a process (deployment, replicaset, serviceaccount
controllers; --profile runs it under cProfile). Baseline: a plain client creates the same number of pods directly
(concurrency 32). Then N Deployments x R replicas are created; the time is from
the first create until every pod exists. A task in this process plays kubelet:
it marks each new pod Running and Ready. Then every Deployment gets a new image
(the default RollingUpdate, 25% surge and unavailable); the time is until every
Deployment reports all replicas updated and available for its new generation.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_scheduler import concurrently, readyz  # noqa: E402
from bootstrap.api.client import Client  # noqa: E402
from bootstrap.api.errors import APIError  # noqa: E402
from tests.integration.cluster import ROOT, free_port, running_cluster  # noqa: E402

PODS = ("", "v1", "pods")
DEPLOYMENTS = ("apps", "v1", "deployments")


def deployment(ns: str, i: int, replicas: int, image: str = "busybox") -> dict:
    labels = {"app": f"d{i:03d}"}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": f"d{i:03d}", "namespace": ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {
                         "automountServiceAccountToken": False,
                         "containers": [{"name": "c", "image": image}]}}}}


def bare_pod(ns: str, i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"p-{i:05d}", "namespace": ns, "labels": {"app": "base"}},
            "spec": {"automountServiceAccountToken": False,
                     "containers": [{"name": "c", "image": "busybox"}]}}


async def namespace(client: Client, name: str) -> None:
    """A namespace and its default ServiceAccount (the serviceaccount controller may
    have made it first)."""
    await client.create(("", "v1", "namespaces"), {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": name}})
    try:
        await client.create(("", "v1", "serviceaccounts"), {
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": name}})
    except APIError as exc:
        if exc.code != 409:
            raise


class Kubelet:
    """Marks every new pod of a namespace Running and Ready; counts pods seen."""

    def __init__(self, client: Client, ns: str):
        self.client, self.ns = client, ns
        self.seen: set[str] = set()
        self.readied: set[str] = set()
        self.sem = asyncio.Semaphore(32)
        self.tasks: set[asyncio.Task] = set()
        self.changed = asyncio.Event()

    async def start(self) -> None:
        rv = (await self.client.list(PODS, self.ns))["metadata"]["resourceVersion"]
        self.task = asyncio.create_task(self._watch(rv))

    async def _watch(self, rv: str) -> None:
        while True:
            async for ev in self.client.watch(PODS, self.ns, resource_version=rv,
                                              timeout_seconds=300):
                obj = ev["object"]
                rv = obj["metadata"].get("resourceVersion", rv)
                name = obj["metadata"].get("name")
                if ev["type"] == "ADDED":
                    self.seen.add(name)
                    self.changed.set()
                if ev["type"] in ("ADDED", "MODIFIED") and name not in self.readied and \
                        not obj["metadata"].get("deletionTimestamp"):
                    self.readied.add(name)
                    t = asyncio.create_task(self._ready(name))
                    self.tasks.add(t)
                    t.add_done_callback(self.tasks.discard)

    async def _ready(self, name: str) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        async with self.sem:
            try:
                await self.client.patch(PODS, name, {"status": {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True",
                                    "lastTransitionTime": now}]}},
                    self.ns, patch_type="merge", subresource="status")
            except APIError:
                pass  # deleted meanwhile (a rollout removes old pods)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, *self.tasks, return_exceptions=True)


async def wait_until(pred, timeout: float = 900.0, every: float = 0.05) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise TimeoutError("benchmark condition not reached")
        await asyncio.sleep(every)


async def rolled_out(client: Client, ns: str, replicas: int, generation: int, n: int) -> bool:
    items = (await client.list(DEPLOYMENTS, ns))["items"]
    done = 0
    for d in items:
        st = d.get("status") or {}
        if d["metadata"].get("generation") == generation and \
                st.get("observedGeneration") == generation and \
                st.get("updatedReplicas") == replicas and st.get("replicas") == replicas and \
                st.get("availableReplicas") == replicas:
            done += 1
    return done == n


def request_counts(cluster) -> tuple[int, int]:
    """(requests, 409 Conflicts) the API server has answered, from its /metrics."""
    with urllib.request.urlopen(cluster.server.url + "/metrics",
                                context=cluster.ssl_context(), timeout=10) as resp:
        text = resp.read().decode()
    total = conflicts = 0
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{"):
            value = int(float(line.rsplit(" ", 1)[1]))
            total += value
            if 'code="409"' in line:
                conflicts += value
    return total, conflicts


def start_manager(cluster, log: Path, profile: Path | None) -> subprocess.Popen:
    port = free_port()
    prof = ["-m", "cProfile", "-o", str(profile)] if profile else []
    proc = subprocess.Popen([
        sys.executable, *prof, "-m", "bootstrap.agents.controllers",
        f"--kubeconfig={cluster.kubeconfig('system:kube-controller-manager')}",
        "--controllers=deployment,replicaset,serviceaccount", "--leader-elect=false",
        "--bind-address=127.0.0.1", f"--secure-port={port}"],
        stdout=open(log, "wb"), stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + 60
    while not readyz(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("controller manager did not start: " + log.read_text())
        time.sleep(0.1)
    return proc


async def run(args) -> None:
    n, r = args.deployments, args.replicas
    total = n * r
    with running_cluster() as cluster:
        async with Client.from_kubeconfig(cluster.admin) as client:
            await namespace(client, "base")
            base_seconds = await concurrently(total, lambda i: client.create(
                PODS, bare_pod("base", i), "base"))
            log = cluster.base / "controller-manager.log"
            profile = Path(tempfile.gettempdir()) / f"bench-deployments-{os.getpid()}.prof" \
                if args.profile else None
            manager = start_manager(cluster, log, profile)
            try:
                await namespace(client, "bench")
                kubelet = Kubelet(client, "bench")
                await kubelet.start()
                before = request_counts(cluster)
                start = time.perf_counter()
                await concurrently(n, lambda i: client.create(
                    DEPLOYMENTS, deployment("bench", i, r), "bench"))
                await wait_until(lambda: len(kubelet.seen) >= total)
                create_seconds = time.perf_counter() - start
                # wait until the first rollout is complete before the update
                while not await rolled_out(client, "bench", r, 1, n):
                    await asyncio.sleep(0.2)
                ready_seconds = time.perf_counter() - start

                async def new_image(i: int) -> None:
                    await client.patch(DEPLOYMENTS, f"d{i:03d}", {"spec": {"template": {
                        "spec": {"containers": [{"name": "c", "image": "busybox:v2"}]}}}},
                        "bench", patch_type="strategic")
                start = time.perf_counter()
                await concurrently(n, new_image)
                while not await rolled_out(client, "bench", r, 2, n):
                    await asyncio.sleep(0.2)
                update_seconds = time.perf_counter() - start
                after = request_counts(cluster)
                await kubelet.stop()
            finally:
                manager.send_signal(signal.SIGTERM)
                try:
                    manager.wait(15)
                except subprocess.TimeoutExpired:
                    manager.kill()
                errors = log.read_text(errors="replace").count("error syncing")
    print(f"deployments: {n} x {r} replicas = {total} pods")
    print(f"  baseline: plain client creates {total} pods      {base_seconds:8.2f} s "
          f"({total / base_seconds:6.0f} pods/s)")
    print(f"  deployments created -> all {total} pods exist     {create_seconds:8.2f} s "
          f"({total / create_seconds:6.0f} pods/s, {base_seconds / create_seconds:.2f}x baseline)")
    print(f"  ... -> every deployment available            {ready_seconds:8.2f} s")
    print(f"  rolling update of all {n} -> complete           {update_seconds:8.2f} s "
          f"({2 * total} pod creates+deletes)")
    print(f"  API requests during both phases: {after[0] - before[0]} "
          f"({after[1] - before[1]} answered 409 Conflict); controller errors logged: {errors}")
    if profile is not None and profile.exists():
        pstats.Stats(str(profile)).sort_stats("cumulative").print_stats(30)
        pstats.Stats(str(profile)).sort_stats("tottime").print_stats(20)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--deployments", type=int, default=100)
    p.add_argument("--replicas", type=int, default=10)
    p.add_argument("--profile", action="store_true",
                   help="run the controller manager under cProfile and print its top functions")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
