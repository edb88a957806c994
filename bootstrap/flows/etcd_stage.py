"""The etcd stage of ``cluster up``: bootstrap, converge, or grow the etcd cluster.

What to do depends on what the members already hold, so the stage first
probes every etcd host (read-only, also under --dry-run):

* no member has data: a new cluster. Every member starts at once
  (``--initial-cluster-state new``); its unit is Type=notify, so one member's
  start returns only once a quorum is up, which needs the others starting too.
* some have data: the running members converge one at a time (serial: 1, the
  handler restarts a member only when its unit changed), then each host
  without data joins: ``etcdctl member add`` (only while every member is
  healthy), start it with ``--initial-cluster-state existing``, wait until it
  is healthy, then the next one.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from bootstrap.engine.model import Recap
from bootstrap.errors import UserError
from bootstrap.flows import etcd as ops
from bootstrap.flows.plan import EtcdNode, etcd_nodes, initial_cluster
from bootstrap.remote.pool import parallel_map

# etcd 3.4 runs without ETCD_UNSUPPORTED_ARCH only on amd64 and ppc64le.
_GO_ARCH = {"x86_64": "", "amd64": "", "ppc64le": "", "aarch64": "arm64", "arm64": "arm64",
            "s390x": "s390x", "armv7l": "arm", "riscv64": "riscv64"}


@dataclass(frozen=True)
class Probe:
    host: str
    has_data: bool
    arch: str


def probe(conn, data_dir: str) -> Probe:
    q = shlex.quote(f"{data_dir}/member")
    r = conn.run(f"uname -m; if [ -d {q} ]; then echo has-data; else echo no-data; fi")
    lines = r.stdout.split()
    return Probe(host=conn.host, has_data="has-data" in lines, arch=lines[0] if lines else "")


def unsupported_arch(arch: str) -> str:
    return _GO_ARCH.get(arch, arch)


def base_vars(ctx, nodes: list[EtcdNode], probes: dict[str, Probe]) -> dict:
    return {
        "etcd_nodes": {n.host: n.as_var() for n in nodes},
        "etcd_cluster_token": f"{ctx.config.cluster_name}-etcd",
        "etcd_unsupported_archs": {h: unsupported_arch(p.arch) for h, p in probes.items()},
    }


def _say(ctx, msg: str) -> None:
    if ctx.console is not None:
        ctx.console.print(f"[bold]etcd:[/] {msg}")


def run(ctx) -> Recap:
    if ctx.config.etcd.external is not None:
        _say(ctx, "external etcd from the cluster config; nothing to install")
        return Recap(dry_run=ctx.dry_run)
    nodes = etcd_nodes(ctx.inventory)
    missing = [n.host for n in nodes if n.host not in ctx.connections]
    if missing:
        raise UserError(f"etcd hosts not connected: {', '.join(missing)}")
    data_dir = ctx.cluster_vars.get("etcd_data_dir", ops.DEFAULT_DATA_DIR)
    probes = {p.host: p for p in parallel_map(
        lambda n: probe(ctx.connections[n.host], data_dir), nodes)}
    common = base_vars(ctx, nodes, probes)
    running = [n for n in nodes if probes[n.host].has_data]
    joining = [n for n in nodes if not probes[n.host].has_data]

    if not running:
        hosts = ctx.hosts(n.host for n in nodes)
        if hosts and len(hosts) < len(nodes):
            raise UserError("a new etcd cluster starts all its members together; --limit leaves"
                            " out " + ", ".join(n.host for n in nodes if n.host not in hosts),
                            hint="include every etcd host in --limit, or drop it")
        return ctx.play("etcd (new cluster)", hosts, ["etcd"], vars={
            **common, "etcd_bootstrap_hosts": hosts, "etcd_initial_cluster_state": "new",
            "etcd_initial_cluster": initial_cluster(nodes)})

    recap = ctx.play("etcd", ctx.hosts(n.host for n in running), ["etcd"], serial=1,
                     vars={**common, "etcd_bootstrap_hosts": []})
    if recap.failed:
        return recap
    for new in joining:
        if ctx.limit is not None and new.host not in ctx.limit:
            continue
        conn = ctx.connections[running[0].host]
        if ctx.dry_run:
            _say(ctx, f"would add member {new.name} ({new.peer_url})")
            cluster = initial_cluster(running + [new])
        else:
            _say(ctx, f"adding member {new.name} ({new.peer_url})")
            cluster = ops.add_member(conn, running, new)
        recap = recap.merge(ctx.play(f"etcd (join {new.name})", [new.host], ["etcd"], vars={
            **common, "etcd_bootstrap_hosts": [new.host],
            "etcd_initial_cluster_state": "existing", "etcd_initial_cluster": cluster}))
        if recap.failed:
            return recap
        running.append(new)
        if not ctx.dry_run:
            ops.wait_healthy(conn, running)
    return recap
