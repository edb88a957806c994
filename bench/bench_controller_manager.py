"""Controller manager memory: prints numbers next to a baseline from the same run;
asserts nothing.

    .venv/bin/python bench/bench_controller_manager.py [--pods 5000] [--nodes 100]

Starts a real etcd and API server on loopback (tests/integration/cluster.py). The
baseline is the controller manager (every controller, kubeadm's flags) on the empty
cluster; then N nodes and M pods (unowned, so no controller acts on them) are
written and a fresh manager starts: the numbers are its RSS once every
controller's informers have synced, the time from process start to synced, and
the RSS per cached pod over the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bootstrap.agents.controllers.manager import CONTROLLERS  # noqa: E402
from bootstrap.api.client import Client  # noqa: E402
from bootstrap.api.resources import by_gvr  # noqa: E402
from tests.integration.cluster import ROOT, free_port, running_cluster  # noqa: E402

PODS = by_gvr("", "v1", "pods")
NODES = by_gvr("", "v1", "nodes")
NAMESPACES = by_gvr("", "v1", "namespaces")
CONCURRENCY = 32
SETTLE = 5.0  # let the first reconcile of every object finish before reading RSS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_manager(cluster, log: Path) -> tuple[float, float]:
    """(seconds from start until every controller runs, RSS MiB after settling)."""
    p = cluster.pki
    kc = cluster.kubeconfig("system:kube-controller-manager")
    started = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen([
            sys.executable, "-m", "bootstrap.agents.controllers", f"--kubeconfig={kc}",
            "--controllers=*,bootstrapsigner,tokencleaner", "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}", "--cluster-cidr=10.244.0.0/16",
            "--allocate-node-cidrs=true", f"--cluster-signing-cert-file={p.path('ca.crt')}",
            f"--cluster-signing-key-file={p.path('ca.key')}",
            f"--root-ca-file={p.path('ca.crt')}"], stdout=out, stderr=subprocess.STDOUT,
            cwd=ROOT)
    try:
        want = len([n for n in CONTROLLERS if _exists(n)])
        while log.read_text(errors="replace").count(" controller with ") < want:
            if proc.poll() is not None:
                raise RuntimeError("controller manager exited:\n" + log.read_text())
            if time.monotonic() - started > 300:
                raise RuntimeError("controllers did not start:\n" + log.read_text()[-3000:])
            time.sleep(0.1)
        synced = time.monotonic() - started
        time.sleep(SETTLE)
        return synced, rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(15)


def _exists(name: str) -> bool:
    from bootstrap.agents.controllers.manager import load
    return load(name) is not None


async def wait_for_sa(cluster) -> None:
    """Pods need the namespace's default ServiceAccount (admission)."""
    client = Client.from_kubeconfig(cluster.admin)
    try:
        sas = by_gvr("", "v1", "serviceaccounts")
        try:
            await client.create(sas, {"metadata": {"name": "default", "namespace": "bench"}},
                                "bench")
        except Exception:  # noqa: BLE001 - already there
            pass
    finally:
        await client.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=5000)
    ap.add_argument("--nodes", type=int, default=100)
    args = ap.parse_args()
    with running_cluster() as cluster:
        base_sync, base_rss = run_manager(cluster, cluster.base / "cm-empty.log")

        async def fill() -> float:
            client = Client.from_kubeconfig(cluster.admin)
            try:
                await client.create(NAMESPACES, {"metadata": {"name": "bench"}})
            finally:
                await client.close()
            await wait_for_sa(cluster)
            return await seed_pods(cluster, args.nodes, args.pods)

        seconds = asyncio.run(fill())
        sync, rss = run_manager(cluster, cluster.base / "cm-loaded.log")
    print(f"seeded {args.nodes} nodes + {args.pods} pods in {seconds:.1f}s")
    print(f"{'':28}{'synced after':>14}{'RSS':>12}")
    print(f"{'baseline: empty cluster':28}{base_sync:>13.1f}s{base_rss:>9.1f} MiB")
    print(f"{f'{args.nodes} nodes, {args.pods} pods':28}{sync:>13.1f}s{rss:>9.1f} MiB")
    if args.pods:
        print(f"RSS per cached pod over the baseline: "
              f"{(rss - base_rss) * 1024 / args.pods:.1f} KiB")


async def seed_pods(cluster, nodes: int, pods: int) -> float:
    client = Client.from_kubeconfig(cluster.admin)
    started = time.monotonic()
    sem = asyncio.Semaphore(CONCURRENCY)

    async def make(res, obj, ns=None):
        async with sem:
            await client.create(res, obj, ns)
    try:
        await asyncio.gather(*(make(NODES, {"metadata": {"name": f"node-{i:03d}"}})
                               for i in range(nodes)))
        await asyncio.gather(*(make(PODS, {
            "metadata": {"name": f"p-{i:05d}", "namespace": "bench",
                         "labels": {"app": "bench"}},
            "spec": {"automountServiceAccountToken": False,
                     "containers": [{"name": "c", "image": "busybox"}]}}, "bench")
            for i in range(pods)))
    finally:
        await client.close()
    return time.monotonic() - started


if __name__ == "__main__":
    main()
