"""Rolling `cluster upgrade` of a stacked 3 + 2 sandbox cluster, with the clients it must not fail.

Prints numbers, asserts nothing. In one run, on one 5-host sandbox (3 control
plane, 2 workers) built by `bootstrap cluster up` from this tree's version:

* the upgrade to the next minor version (a second real install built from the
  same tree, its wheelhouse built before the clock starts): total time, the
  time to put the new install beside the old one on every host, and each
  host's time (its host command, plus cordon/drain/uncordon for workers);
* during it, the two steady clients of tests/e2e/test_cluster_upgrade_rolling.py on a
  worker (API reads and writes through haproxy; HTTP to a 3-replica Deployment
  through its NodePort): requests served and failed;
* the baseline: the same clients for the same duration with no upgrade.

Run as root:  .venv/bin/python bench/bench_upgrade.py [--name ugbench]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from rich.console import Console  # noqa: E402
from upgrade_clients import Clients  # noqa: E402

from bootstrap import __version__, sandbox  # noqa: E402
from bootstrap.config.inventory import load_inventory  # noqa: E402
from bootstrap.flows import versions  # noqa: E402
from bootstrap.flows.cluster_upgrade import UpgradeOptions, cluster_upgrade  # noqa: E402
from bootstrap.flows.wheelhouse_version import build_version_wheelhouse  # noqa: E402

KUBECTL = "/usr/bin/kubectl"


def web_manifest() -> str:
    # The e2e test's workload (Deployment with preStop and readiness, PDB, Service).
    text = (ROOT / "tests" / "e2e" / "test_cluster_upgrade.py").read_text()
    return text.split('WEB = """', 1)[1].split('"""', 1)[0]


def run(*cmd: str, input: str | None = None, timeout: float = 3600) -> str:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, input=input,
                          timeout=timeout)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="ugbench")
    ap.add_argument("--quiet", action="store_true", help="do not echo the upgrade's lines")
    args = ap.parse_args()
    v = versions.parse(__version__)
    new = f"{v.major}.{v.minor + 1}.0"
    rows: list[tuple[str, str]] = []
    try:
        t0 = time.perf_counter()
        inv_path = sandbox.up(args.name, 5)
        run(sys.executable, "-m", "bootstrap", "cluster", "up", "-i", str(inv_path))
        setup = time.perf_counter() - t0
        admin = inv_path.parent / "artifacts" / "admin.conf"
        kubectl = (KUBECTL, "--kubeconfig", str(admin))
        run(*kubectl, "apply", "-f", "-", input=web_manifest())
        run(*kubectl, "rollout", "status", "deployment/web", "--timeout=300s")
        node_port = json.loads(run(*kubectl, "get", "svc", "web", "-o", "json"))["spec"][
            "ports"][0]["nodePort"]
        inv = load_inventory(inv_path)
        cps = [h.name for h in inv.control_plane]
        client_host = [h.name for h in inv.workers if h.name not in cps][-1]
        svc_ip = f"{inv.hosts[client_host].node_ip}:{node_port}"
        build_version_wheelhouse(new)  # untimed: the upgrade ships what is built

        clients = Clients(inv_path, client_host, svc_ip, admin)
        clients.start()
        try:
            result = cluster_upgrade(str(inv_path), UpgradeOptions(to=new),
                                     console=None if args.quiet else Console())
        finally:
            during = clients.stop()
        baseline = Clients(inv_path, client_host, svc_ip, admin, duration=result.total_time)
        baseline.start()
        base = baseline.stop()
    finally:
        if os.environ.get("BENCH_KEEP") != "1":
            sandbox.down(args.name)

    rows.append(("setup: sandbox up + cluster up (5 hosts)", f"{setup:8.1f} s"))
    rows.append((f"cluster upgrade {__version__} -> {new}, total", f"{result.total_time:8.1f} s"))
    rows.append(("  install beside the running version (all hosts)",
                 f"{result.install_time:8.1f} s"))
    for host in result.upgraded:
        kind = "control plane" if host in cps else "worker"
        rows.append((f"  {host} ({kind})", f"{result.host_times[host]:8.1f} s"))
    for label, counts in (("during the upgrade", during), ("baseline, no upgrade", base)):
        for client in ("api", "http"):
            c = counts[client]
            extra = f", {c['retries']} keep-alive re-sends" if client == "api" else ""
            rows.append((f"{client} client, {label} ({counts['seconds']:.0f} s)",
                         f"{c['ok']:6d} ok, {c['failed']} failed{extra}"))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measurement':<{width}}  value")
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    for label, counts in (("during", during), ("baseline", base)):
        for client in ("api", "http"):
            for err in counts[client]["errors"][:5]:
                print(f"  {label} {client} error: {err}")


if __name__ == "__main__":
    main()
