"""Helpers shared by the etcd e2e modules: the real CLI, and etcdctl on a host."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bootstrap.config.inventory import load_inventory
from bootstrap.flows.etcd import wait_healthy
from bootstrap.flows.plan import EtcdNode, etcd_nodes
from bootstrap.remote.pool import close_all, connect_all

PKI = "/etc/kubernetes/pki"


# Set by freeze_wheelhouse: every later `cluster up` installs these same wheels.
_ENV: dict[str, str] = {}


def freeze_wheelhouse(dest: Path) -> None:
    """Pin the agents' wheelhouse for this test session.

    Other work in a shared checkout changes the source tree between two runs,
    which rightly rebuilds the wheel and reinstalls the agents; a pinned
    wheelhouse (BOOTSTRAP_WHEELHOUSE, a supported way to ship agents) keeps
    "the second run changes nothing" about our code, not about the checkout.
    """
    if _ENV:
        return
    from bootstrap.flows.wheelhouse import build_wheelhouse

    built = build_wheelhouse()
    dest.mkdir(parents=True, exist_ok=True)
    for whl in built.path.glob("*.whl"):
        shutil.copy2(whl, dest / whl.name)
    _ENV["BOOTSTRAP_WHEELHOUSE"] = str(dest)


def cli_env() -> dict[str, str]:
    return {**os.environ, **_ENV}


def cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """``bootstrap ARGS`` as a user runs it."""
    return subprocess.run([sys.executable, "-m", "bootstrap", *args], capture_output=True,
                          text=True, timeout=timeout, env=cli_env())


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def etcdctl(args: str, endpoints: list[str], client: str = "etcd/healthcheck-client") -> str:
    return (f"ETCDCTL_API=3 etcdctl --endpoints={','.join(endpoints)} --cacert={PKI}/etcd/ca.crt"
            f" --cert={PKI}/{client}.crt --key={PKI}/{client}.key --dial-timeout=3s"
            f" --command-timeout=15s {args}")


@dataclass
class Cluster:
    path: Path
    inventory: object
    conns: dict
    nodes: list[EtcdNode]
    first_up: subprocess.CompletedProcess

    def run(self, host: str, cmd: str, check: bool = True):
        return self.conns[host].run(cmd, check=check, timeout=120)

    def health(self, via: str) -> list[dict]:
        r = self.run(via, etcdctl("--write-out=json endpoint health --cluster",
                                  [self.nodes[0].client_url]), check=False)
        return json.loads(r.stdout)


def bring_up(inventory_path: Path, wheel_dir: Path) -> Cluster:
    freeze_wheelhouse(wheel_dir)
    first = cli("cluster", "up", "-i", str(inventory_path))
    ok(first)
    inv = load_inventory(inventory_path)
    conns = connect_all(list(inv.hosts.values()))
    return Cluster(inventory_path, inv, conns, etcd_nodes(inv), first)


def close(cluster: Cluster) -> None:
    close_all(cluster.conns)


@contextmanager
def sandbox_cluster(sandbox_factory, name: str, hosts: int, wheel_dir: Path,
                    **sandbox_kw) -> Iterator[Cluster]:
    """A sandbox brought up by `cluster up`; its connections closed and the sandbox torn
    down afterwards, also when bringing it up fails."""
    path = sandbox_factory(name, hosts, **sandbox_kw)
    c = None
    try:
        c = bring_up(path, wheel_dir)
        yield c
    finally:
        if c is not None:
            close(c)
        sandbox_factory.down(name)


def put_with_retry(cluster: Cluster, host: str, endpoint: str, key: str, value: str,
                   attempts: int = 30) -> None:
    """A write a client would retry: after a leader dies, the survivors need an
    election before they accept writes again."""
    last = None
    for _ in range(attempts):
        last = cluster.run(host, etcdctl(f"put {key} {value}", [endpoint]), check=False)
        if last.ok:
            return
        cluster.run(host, "sleep 1")
    raise AssertionError(f"write through {endpoint} kept failing: {last.stderr[-500:]}")


def leader(cluster: Cluster) -> EtcdNode:
    from bootstrap.flows.etcd import cluster_status

    rows = cluster_status(cluster.conns[cluster.nodes[0].host], cluster.nodes)
    name = next(r.name for r in rows if r.leader)
    return next(n for n in cluster.nodes if n.name == name)


def assert_survives_leader_sigkill(cluster: Cluster, key: str) -> None:
    # The leader is the hard case: the survivors must elect a new one.
    victim = leader(cluster)
    a, b = [n for n in cluster.nodes if n != victim]
    pid = cluster.run(victim.host, "systemctl show -p MainPID --value etcd").stdout.strip()
    assert pid.isdigit() and int(pid) > 0
    cluster.run(victim.host, f"kill -KILL {pid}")
    # Written through one surviving member, read through the other.
    put_with_retry(cluster, a.host, a.client_url, key, "written")
    got = cluster.run(b.host, etcdctl(f"get {key} --print-value-only",
                                      [b.client_url])).stdout.strip()
    assert got == "written"
    # systemd restarts the member (Restart=always) and it catches up.
    wait_healthy(cluster.conns[a.host], cluster.nodes, timeout=120)
    got = cluster.run(victim.host, etcdctl(f"get {key} --print-value-only",
                                           [victim.client_url])).stdout.strip()
    assert got == "written"
