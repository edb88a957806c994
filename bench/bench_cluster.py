"""`bootstrap cluster up` from bare sandbox hosts to every node Ready, both topologies.

Prints numbers, asserts nothing. For each topology, on fresh sandbox hosts:

* the baseline: `sandbox up` of the same hosts (boot to systemd running + sshd);
* first run (all hosts but the last worker), with the time of each phase;
* no-change run;
* adding one worker (the full inventory: only that host changes).

The agents' wheelhouse is built once before anything is timed and pinned
(BOOTSTRAP_WHEELHOUSE), so no run pays for building wheels. Aims from the
issue: first run < 30 s, no-change < 3 s, one added worker < 10 s.
Run as root:  .venv/bin/python bench/bench_cluster.py [--only stacked|external]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import yaml
from rich.console import Console

from bootstrap import sandbox
from bootstrap.flows.cluster_up import cluster_up
from bootstrap.flows.wheelhouse import build_wheelhouse

TOPOLOGIES = {
    # name: (hosts, etcd_hosts, control_plane)
    "stacked": (6, 0, 3),      # 3 control plane + 2 workers, + 1 worker to add
    "external": (4, 3, 2),     # 3 etcd + 2 control plane + 1 worker, + 1 worker to add
}


def without_last_worker(inventory: dict) -> tuple[dict, str]:
    inv = json.loads(json.dumps(inventory))
    cps = set(inv["all"]["children"]["kube_control_plane"].get("hosts") or {})
    last = [h for h in inv["all"]["children"]["kube_node"]["hosts"] if h not in cps][-1]
    inv["all"]["hosts"].pop(last)
    for group in inv["all"]["children"].values():
        (group.get("hosts") or {}).pop(last, None)
    return inv, last


def timed_up(inventory: Path, **kw):
    t0 = time.perf_counter()
    result = cluster_up(str(inventory), console=Console(file=io.StringIO()), **kw)
    result.recap.raise_on_failure()
    return time.perf_counter() - t0, result


def bench(name: str, prefix: str) -> dict:
    hosts, etcd, cp = TOPOLOGIES[name]
    box = f"{prefix}{name[:4]}"
    sandbox.down(box)
    try:
        t0 = time.perf_counter()
        full = sandbox.up(box, hosts, etcd, cp)
        boot = time.perf_counter() - t0
        small_doc, added = without_last_worker(yaml.safe_load(full.read_text()))
        small = full.parent / "bench.yaml"
        small.write_text(yaml.safe_dump(small_doc))
        first, r1 = timed_up(small)
        again, r2 = timed_up(small)
        grow, r3 = timed_up(full, limit=added)
        return {"topology": name, "hosts": hosts + etcd, "boot": boot, "first": first,
                "first_phases": r1.phase_times, "first_changed": r1.changed,
                "nochange": again, "nochange_changed": r2.changed,
                "add_worker": grow, "add_changed": r3.changed, "added": added}
    finally:
        sandbox.down(box)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=sorted(TOPOLOGIES))
    ap.add_argument("--prefix", default=os.environ.get("BOOTSTRAP_E2E_PREFIX", "bn"))
    args = ap.parse_args()
    pinned = Path(tempfile.mkdtemp(prefix="bench-wheelhouse-"))
    try:
        for whl in build_wheelhouse().path.glob("*.whl"):
            shutil.copy2(whl, pinned / whl.name)
        os.environ["BOOTSTRAP_WHEELHOUSE"] = str(pinned)
        rows = [bench(t, args.prefix) for t in ([args.only] if args.only else TOPOLOGIES)]
    finally:
        shutil.rmtree(pinned, ignore_errors=True)
    print(f"\n{'topology':<10}{'hosts':>6}{'sandbox boot':>14}{'first run':>11}"
          f"{'no-change':>11}{'add worker':>12}")
    for r in rows:
        print(f"{r['topology']:<10}{r['hosts']:>6}{r['boot']:>13.1f}s{r['first']:>10.1f}s"
              f"{r['nochange']:>10.1f}s{r['add_worker']:>11.1f}s")
        print(f"  changed: first {r['first_changed']}, no-change {r['nochange_changed']}, "
              f"adding {r['added']} {r['add_changed']}")
        print("  first run by phase: " + ", ".join(
            f"{p} {t:.1f}s" for p, t in r["first_phases"].items()))
    print("(aims: first run < 30 s, no-change < 3 s, one added worker < 10 s; "
          "baseline: the same hosts' sandbox boot)")


if __name__ == "__main__":
    main()
