"""Sandbox up/down times next to a bare-namespace baseline (prints, never asserts).

Baseline, measured in the same run: the same number of `ip netns add` + veth
pairs on a bridge, i.e. the networking a host needs without systemd or sshd.
Run as root: .venv/bin/python bench/bench_sandbox.py [--sizes 3,6]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time

from bootstrap import sandbox


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def baseline(n: int) -> tuple[float, float]:
    tag = f"{os.getpid() % 100000}"
    bridge = f"bsbench{tag}"
    t0 = time.perf_counter()
    _ip("link", "add", "name", bridge, "type", "bridge")
    for i in range(n):
        ns, veth = f"bsbench.{tag}.{i}", f"bsbv{tag}x{i}"
        _ip("netns", "add", ns)
        _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("link", "set", veth, "master", bridge, "up")
        _ip("-n", ns, "addr", "add", f"10.251.0.{10 + i}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
    t1 = time.perf_counter()
    for i in range(n):
        _ip("link", "del", f"bsbv{tag}x{i}")
        _ip("netns", "del", f"bsbench.{tag}.{i}")
    _ip("link", "del", bridge)
    return t1 - t0, time.perf_counter() - t1


def measure(n: int) -> tuple[float, float, float]:
    name = f"sbxbench{n}"
    try:
        t0 = time.perf_counter()
        sandbox.up(name, n)
        t1 = time.perf_counter()
        sandbox.up(name, n)  # no-op on a healthy sandbox
        t2 = time.perf_counter()
    finally:
        t3 = time.perf_counter()
        sandbox.down(name)
    return t1 - t0, t2 - t1, time.perf_counter() - t3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="3,6")
    sizes = [int(x) for x in ap.parse_args().sizes.split(",")]
    print(f"{'hosts':>5} {'up s':>7} {'re-up s':>8} {'down s':>7} | {'bare netns up s':>15} {'down s':>7} | up/bare")
    for n in sizes:
        bu, bd = baseline(n)
        up, reup, down = measure(n)
        print(f"{n:>5} {up:>7.2f} {reup:>8.2f} {down:>7.2f} | {bu:>15.3f} {bd:>7.3f} | {up / bu:>6.1f}x")


if __name__ == "__main__":
    main()
