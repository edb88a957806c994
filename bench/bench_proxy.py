"""kube-proxy sync times next to a bare iptables-restore of the same text
(prints, never asserts).

Inside a throwaway network namespace made and removed here, never the
machine's own tables. For 100, 1,000 and 5,000 Services x 3 endpoints:
the first full sync (empty tables), a steady-state full resync, and at 5,000 a
one-endpoint change (a partial sync); each next to `iptables-restore --noflush`
of exactly the text that sync wrote, run the same way in the same namespace.
Both iptables variants are measured: nft (the host default) and legacy.
Run as root: .venv/bin/python bench/bench_proxy.py [--sizes 100,1000,5000]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bootstrap.agents.proxy.iptables import Runner  # noqa: E402
from bootstrap.agents.proxy.proxier import Proxier  # noqa: E402
from bootstrap.agents.proxy.rules import Options  # noqa: E402


def objects(n: int, eps: int = 3):
    services, slices = [], []
    for i in range(n):
        name = f"svc{i}"
        services.append({"metadata": {"name": name, "namespace": "bench"},
                         "spec": {"clusterIP": f"10.96.{i // 250}.{i % 250 + 1}",
                                  "type": "NodePort" if i % 10 == 0 else "ClusterIP",
                                  "ports": [{"name": "http", "port": 80,
                                             "nodePort": 30000 + i % 2000}]}})
        slices.append(slice_(name, i, eps))
    return services, slices


def slice_(name, i, eps, extra=0):
    return {"metadata": {"name": f"{name}-1", "namespace": "bench",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [f"10.{100 + (i * eps + k) // 65000}."
                                         f"{(i * eps + k) // 250 % 260 % 250}."
                                         f"{(i * eps + k) % 250 + 1}"],
                           "nodeName": "node-a" if k == 0 else "node-b",
                           "conditions": {"ready": True}} for k in range(eps + extra)]}


def bare(runner: Runner, text: str) -> float:
    t = time.perf_counter()
    runner.restore(text)
    return time.perf_counter() - t


def flush(ns: str, ipt: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, "sh", "-c",
                    f"{ipt} -t nat -F; {ipt} -t nat -X; {ipt} -F; {ipt} -X"], check=True)


def measure(ns: str, n: int, ipt: str) -> list[tuple[str, float, float]]:
    runner = Runner(["ip", "netns", "exec", ns], timeout=1800, iptables=ipt)
    services, slices = objects(n)
    rows = []
    flush(ns, ipt)
    p = Proxier("node-a", Options(cluster_cidr="10.100.0.0/14"), runner)
    p.services_synced = p.slices_synced = True
    for s in services:
        p.on_service(s)
    for s in slices:
        p.on_slice(s)
    first = p.sync()
    flush(ns, ipt)
    rows.append((f"{n:>5} svc first full sync", first.seconds, bare(runner, first.text)))
    resync = p.sync(force_full=True)
    rows.append((f"{n:>5} svc full resync", resync.seconds, bare(runner, resync.text)))
    if n >= 5000:
        k = n // 2
        p.on_slice(slice_(f"svc{k}", k, 3, extra=1))
        change = p.sync()
        rows.append((f"{n:>5} svc one-endpoint change", change.seconds,
                     bare(runner, change.text)))
    p.cleanup()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,5000")
    ap.add_argument("--backends", default="iptables-nft,iptables-legacy",
                    help="iptables variants to measure (the host's default is nft)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (a network namespace)", file=sys.stderr)
        return 2
    ns = f"pxbench{os.getpid()}"
    # A stopped run still removes its namespace (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        print(f"{'backend':<16} {'case':<34} {'kube-proxy sync':>16} {'bare restore':>14} "
              f"{'ratio':>7}")
        for ipt in args.backends.split(","):
            for n in (int(s) for s in args.sizes.split(",")):
                for name, ours, base in measure(ns, n, ipt):
                    print(f"{ipt:<16} {name:<34} {ours * 1000:>13.1f} ms "
                          f"{base * 1000:>11.1f} ms {ours / base:>6.2f}x", flush=True)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
