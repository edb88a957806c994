"""``bootstrap cluster ...``: multi-host plays over an inventory (kubespray's playbooks)."""

from __future__ import annotations

import sys

import click
from rich.console import Console

from bootstrap.cli import main
from bootstrap.cli.cluster_remove_cmd import cluster_reset_cmd, remove_node_cmd
from bootstrap.cli.cluster_upgrade_cmd import upgrade as upgrade_cmd
from bootstrap.cli.renew_certs_cmd import renew_certs_cmd
from bootstrap.errors import RemoteError
from bootstrap.flows.cluster_up import cluster_up, phases_help


@main.group("cluster")
def cluster() -> None:
    """Converge the hosts of an inventory into a cluster."""


@cluster.command("up", help="Install and converge everything the inventory describes "
                 f"(idempotent).\n\n{phases_help()}")
@click.option("-i", "--inventory", "inventory", required=True,
              type=click.Path(exists=True, dir_okay=False), help="kubespray-format inventory")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="cluster configuration (kubeadm-style YAML); defaults otherwise")
@click.option("--tags", help="comma-separated phases or task tags to run (a phase name runs "
              "the whole phase; a task tag runs just those tasks); unknown tags are an error")
@click.option("--limit", help="comma-separated host names to run on")
@click.option("--skip-phases", metavar="PHASE[,PHASE...]",
              help="phases to skip (see the list above), e.g. wait")
@click.option("--wait-timeout", type=click.FloatRange(min=0), default=None,
              help="seconds the wait phase waits for every node to be Ready [default: 300]")
@click.option("--dry-run", is_flag=True, help="show what would change, change nothing")
@click.option("--diff", is_flag=True, help="show file differences")
def up(inventory: str, config_path: str | None, tags: str | None, limit: str | None,
       skip_phases: str | None, wait_timeout: float | None, dry_run: bool, diff: bool) -> None:
    console = Console(stderr=False)
    result = cluster_up(inventory, config_path=config_path, tags=tags, limit=limit,
                        dry_run=dry_run, diff=diff, console=console, skip_phases=skip_phases,
                        wait_timeout=wait_timeout)
    recap = result.recap
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)  # one line each
    if result.scratch:
        # Said on every dry run: nothing was kept, and the real run makes its own.
        console.print(f"pki: dry run: {result.pki_created} certificate/key file(s) would be "
                      f"created in {result.state_dir}; generated in a temporary directory, "
                      "now removed", highlight=False, soft_wrap=True)
    elif result.pki_created:
        console.print(f"pki: created {result.pki_created} certificate/key file(s) in "
                      f"{result.state_dir}", highlight=False, soft_wrap=True)
    recap.raise_on_failure()
    if result.summary:
        console.print(result.summary, markup=False, highlight=False, soft_wrap=True)
    if dry_run:
        console.print(f"cluster up (dry run): {recap.changed} change(s) would be made")
        if result.unreachable:
            sys.stdout.flush()
            # ansible's UNREACHABLE: the others were checked, but the answer is incomplete.
            raise RemoteError(f"{len(result.unreachable)} host(s) unreachable, not checked: "
                              + ", ".join(sorted(result.unreachable)), where="cluster up")
    elif recap.changed == 0:
        console.print("cluster up: converged, nothing changed (0 changed)")
    else:
        console.print(f"cluster up: converged, {recap.changed} changed")
    sys.stdout.flush()


cluster.add_command(renew_certs_cmd)
cluster.add_command(remove_node_cmd)
cluster.add_command(cluster_reset_cmd)
cluster.add_command(upgrade_cmd)
