"""``bootstrap cluster upgrade``: a rolling upgrade of every host (kubespray's upgrade-cluster)."""

from __future__ import annotations

import sys

import click
from rich.console import Console

from bootstrap.flows.cluster_upgrade import (
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_NODE_TIMEOUT,
    UpgradeOptions,
    cluster_upgrade,
)
from bootstrap.flows.drain import DrainOptions


@click.command("upgrade", help="Upgrade every host to VERSION, one control-plane host at a "
               "time, then the workers in batches (each cordoned, drained through the "
               "Eviction API, upgraded, uncordoned once Ready). A failed host is rolled back "
               "and stops the rollout; run the command again to continue (upgraded hosts "
               "are skipped).")
@click.option("-i", "--inventory", "inventory", required=True,
              type=click.Path(exists=True, dir_okay=False), help="kubespray-format inventory")
@click.option("--to", "to", required=True, metavar="VERSION", help="the version to upgrade to")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="cluster configuration (kubeadm-style YAML); defaults otherwise")
@click.option("--limit", help="comma-separated host names to upgrade (continue a stopped "
              "upgrade); the control plane still goes first")
@click.option("--serial", metavar="N|N%", default=None,
              help="workers upgraded at once: a number of hosts, or a percentage of the "
                   "workers to upgrade (rounded down, at least 1; kubespray's default is "
                   "20%)  [default: the inventory's serial, else 1]")
@click.option("--drain-timeout", type=click.FloatRange(min=0), default=DEFAULT_DRAIN_TIMEOUT,
              show_default=True, help="seconds a worker's drain may take (0: no limit)")
@click.option("--grace-period", type=int, default=-1, show_default=True,
              help="seconds each evicted pod gets to terminate (negative: the pod's own)")
@click.option("--force", is_flag=True,
              help="drain also pods that declare no controller (as kubectl drain --force)")
@click.option("--delete-emptydir-data", is_flag=True,
              help="drain also pods using emptyDir volumes (their data is lost)")
@click.option("--node-timeout", type=click.FloatRange(min=1), default=DEFAULT_NODE_TIMEOUT,
              show_default=True, help="seconds a host's node may take to be Ready again")
@click.option("--health-timeout", type=click.FloatRange(min=1), default=None,
              help="seconds each component may take to become healthy on a host "
                   "(passed to `bootstrap upgrade apply|node`)")
@click.option("--dry-run", is_flag=True, help="print the plan, change nothing")
def upgrade(inventory: str, to: str, config_path: str | None, limit: str | None,
            serial: str | None,
            drain_timeout: float, grace_period: int, force: bool, delete_emptydir_data: bool,
            node_timeout: float, health_timeout: float | None, dry_run: bool) -> None:
    console = Console(stderr=False)
    limit_set = frozenset(h.strip() for h in (limit or "").split(",") if h.strip()) or None
    opts = UpgradeOptions(
        to=to, serial=serial, limit=limit_set, dry_run=dry_run, node_timeout=node_timeout,
        health_timeout=health_timeout,
        drain=DrainOptions(force=force, delete_emptydir_data=delete_emptydir_data,
                           timeout=drain_timeout, grace_period=grace_period))
    result = cluster_upgrade(inventory, opts, config_path=config_path, console=console)
    if dry_run:
        console.print(f"cluster upgrade (dry run): {len(result.planned)} "
                      "host(s) would be upgraded, nothing changed", markup=False, soft_wrap=True)
    elif not result.upgraded:
        console.print(f"cluster upgrade: every host is on {result.target} (0 changed)",
                      markup=False, soft_wrap=True)
    else:
        console.print(f"cluster upgrade: {len(result.upgraded)} host(s) upgraded to "
                      f"{result.target} in {result.total_time:.0f}s"
                      + (f", {len(result.skipped)} already were" if result.skipped else ""),
                      markup=False, soft_wrap=True)
    sys.stdout.flush()
