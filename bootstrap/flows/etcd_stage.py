"""The etcd stage of ``cluster up``: bootstrap, converge, or grow the etcd cluster.

What to do depends on what the members already hold, so the stage first
probes every etcd host (read-only, also under --dry-run):

* no member has data: a new cluster. Every member starts at once
  (``--initial-cluster-state new``); its unit is Type=notify, so one member's
  start returns only once a quorum is up, which needs the others starting too.
* some have data: the running members converge one at a time (serial: 1, the
  handler restarts a member only when its unit changed), then each host
  without data joins, one at a time: the role's ``etcd_member`` operation adds
  it (its fact is the member list: nothing happens when the member is there,
  and it obeys tags, --limit, --dry-run and the recap like any task), then it
  starts with ``--initial-cluster-state existing`` and must be healthy before
  the next one.
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
    unreachable = getattr(ctx, "unreachable", {})
    if missing and ctx.dry_run and all(h in unreachable for h in missing):
        # Membership is planned from every member's data dir: without one, no plan.
        _say(ctx, f"dry run: not planned, member(s) {', '.join(missing)} unreachable")
        return Recap(dry_run=True)
    if missing:
        raise UserError(f"etcd hosts not connected: {', '.join(missing)}")
    data_dir = ctx.cluster_vars.get("etcd_data_dir", ops.DEFAULT_DATA_DIR)
    probes = {p.host: p for p in parallel_map(
        lambda n: probe(ctx.connections[n.host], data_dir), nodes)}
    common = base_vars(ctx, nodes, probes)
    running = [n for n in nodes if probes[n.host].has_data]
    joining = [n for n in nodes if not probes[n.host].has_data]

    recap = _members(ctx, nodes, common, running, joining)
    # After the members: the timer snapshots a member that serves.
    return recap.merge(ctx.play("etcd backups", ctx.hosts(n.host for n in nodes),
                                ["etcd-backup"], vars=common))


def _members(ctx, nodes: list[EtcdNode], common: dict, running: list[EtcdNode],
             joining: list[EtcdNode]) -> Recap:
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
    # New members one at a time: the role's etcd_member task adds the member
    # (only if the member list lacks it, only while every member is healthy),
    # then it starts and must be healthy before the next host's turn.
    joining_hosts = ctx.hosts(n.host for n in joining)
    if joining_hosts:
        _say(ctx, ("would add" if ctx.dry_run else "adding") + " member(s) "
             + ", ".join(n.name for n in joining if n.host in joining_hosts))
        recap = recap.merge(ctx.play("etcd (join)", joining_hosts, ["etcd"], serial=1, vars={
            **common, "etcd_bootstrap_hosts": joining_hosts, "etcd_joining_hosts": joining_hosts,
            "etcd_initial_cluster_state": "existing",
            "etcd_member_endpoints": [n.client_url for n in running]}))
    return recap
