"""`bootstrap cluster up` against ansible-playbook on the same sandbox hosts.

Prints numbers, asserts nothing. Measured in one run, on one 3-host sandbox:

* sandbox up time;
* the whole task list of `cluster up` (prepare with the kube user, pki,
  agents, etcd; bench/ansible/site.yml is our roles task for task) run by
  ansible-playbook, then by `bootstrap cluster up`, each from the same clean
  hosts, first run and no-change run, and the ratios.

Like for like: both tools get the same inventory (the sandbox writes
kubespray's format, which is Ansible's), the same per-cluster values
(computed by bootstrap.flows), the same role defaults and templates, and the
same agents wheelhouse (built once, before either tool is timed), copied to
the same remote dir and pip-installed offline into the same
/opt/bootstrap/<version>. Run as root:  .venv/bin/python bench/bench_cluster_up.py
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bootstrap import sandbox
from bootstrap.config.cluster import default_config
from bootstrap.config.inventory import load_inventory
from bootstrap.flows.cluster_pki import ensure_cluster_pki
from bootstrap.flows.plan import etcd_nodes, initial_cluster, pki_plan
from bootstrap.flows.wheelhouse import agents_vars
from bootstrap.remote.pool import close_all, connect_all, parallel_map

HERE = Path(__file__).resolve().parent
# Undo everything cluster up does, so each tool starts from the same host.
RESET = ("systemctl stop etcd 2>/dev/null; rm -rf /var/lib/etcd /etc/etcd /etc/kubernetes"
         " /etc/systemd/system/etcd.service /etc/sysctl.d/99-bootstrap.conf /opt/bootstrap"
         " /var/lib/bootstrap/wheelhouse; userdel kube 2>/dev/null; groupdel kube-cert 2>/dev/null;"
         " systemctl daemon-reload")


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout


def bootstrap(*args: str) -> tuple[float, str]:
    return timed([sys.executable, "-m", "bootstrap", *args])


def reset(inventory) -> None:
    conns = connect_all(list(inventory.hosts.values()))
    try:
        parallel_map(lambda c: c.run(RESET, timeout=120), list(conns.values()))
    finally:
        close_all(conns)


def ansible_vars(inventory, pki_root: Path) -> dict:
    nodes = etcd_nodes(inventory)
    return {
        "pki_plan": pki_plan(inventory, pki_root),
        "etcd_nodes": {n.host: n.as_var() for n in nodes},
        "etcd_initial_cluster": initial_cluster(nodes),
        "etcd_initial_cluster_state": "new",
        "etcd_bootstrap_hosts": [n.host for n in nodes],
        "etcd_cluster_token": f"{default_config().cluster_name}-etcd",
        **agents_vars(inventory),
    }


def ansible(inv_path: Path, vars_file: Path) -> tuple[float, str]:
    bin_dir = Path(sys.executable).parent
    return timed([str(bin_dir / "ansible-playbook"), "-i", str(inv_path), "-e", f"@{vars_file}",
                  str(HERE / "ansible" / "site.yml")],
                 env={"ANSIBLE_CONFIG": str(HERE / "ansible" / "ansible.cfg"),
                      "LC_ALL": "C.UTF-8", "PATH": f"{bin_dir}:{os.environ['PATH']}"})


def ansible_changed(out: str) -> int:
    return sum(int(n) for n in re.findall(r"changed=(\d+)", out))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="etcbench")
    ap.add_argument("--hosts", type=int, default=3)
    args = ap.parse_args()
    rows: list[tuple[str, float]] = []
    try:
        t0 = time.perf_counter()
        inv_path = sandbox.up(args.name, args.hosts)
        rows.append((f"sandbox up ({args.hosts} hosts)", time.perf_counter() - t0))
        inv = load_inventory(inv_path)
        # Untimed setup both tools rely on: CAs and leaves, the wheelhouse.
        pki_root, _ = ensure_cluster_pki(inv, default_config())
        with tempfile.TemporaryDirectory() as tmp:
            vars_file = Path(tmp) / "vars.json"
            vars_file.write_text(json.dumps(ansible_vars(inv, pki_root)))
            reset(inv)
            a1, _ = ansible(inv_path, vars_file)
            a2, a2_out = ansible(inv_path, vars_file)
        if ansible_changed(a2_out):
            print(f"note: ansible's re-run reported changed={ansible_changed(a2_out)}")
        reset(inv)
        b1, _ = bootstrap("cluster", "up", "-i", str(inv_path))
        b2, out = bootstrap("cluster", "up", "-i", str(inv_path))
        if "nothing changed" not in out:
            print("note: bootstrap's re-run changed something:", out.strip().splitlines()[-1])
        rows += [("ansible-playbook, all stages, first run", a1),
                 ("ansible-playbook, all stages, no-change run", a2),
                 ("bootstrap cluster up, all stages, first run", b1),
                 ("bootstrap cluster up, all stages, no-change run", b2)]
    finally:
        sandbox.down(args.name)

    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  seconds")
    for label, secs in rows:
        print(f"{label:<{width}}  {secs:7.2f}")
    print(f"{'speed-up vs ansible, first run':<{width}}  {a1 / b1:6.1f}x")
    print(f"{'speed-up vs ansible, no-change run':<{width}}  {a2 / b2:6.1f}x")


if __name__ == "__main__":
    main()
