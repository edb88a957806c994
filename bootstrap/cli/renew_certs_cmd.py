"""``bootstrap cluster renew-certs`` (attached to the ``cluster`` group in cluster_cmd)."""

from __future__ import annotations

import sys

import click
from rich.console import Console


@click.command("renew-certs")
@click.option("-i", "--inventory", "inventory", required=True,
              type=click.Path(exists=True, dir_okay=False), help="kubespray-format inventory")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="cluster configuration (validity period, key algorithm); defaults otherwise")
@click.option("--limit", help="comma-separated host names to renew on (the artifacts are "
              "renewed whole either way)")
@click.option("--new-key", is_flag=True, help="generate new private keys instead of keeping them")
@click.option("--dry-run", is_flag=True,
              help="show what would be renewed and restarted per host, change nothing")
def renew_certs_cmd(inventory: str, config_path: str | None, limit: str | None, new_key: bool,
                    dry_run: bool) -> None:
    """Renew every leaf certificate and kubeconfig on every host, keeping subjects and SANs.

    The leaves and kubeconfigs in the artifacts dir are re-signed by the cluster's CAs,
    then each host in turn (etcd hosts, control plane, workers) gets its renewed files
    and restarts the components that use them, each waiting for its health check
    before the next host. The kubelets rotate their own certificates."""
    from bootstrap.flows.renew_certs import plan_text, renew_certs

    console = Console(stderr=False)
    result = renew_certs(inventory, config_path=config_path, dry_run=dry_run, new_key=new_key,
                         limit=limit, console=None if dry_run else console)
    click.echo(plan_text(result))
    result.recap.raise_on_failure()
    if dry_run:
        click.echo(f"cluster renew-certs (dry run): {len(result.plan)} host(s) would be renewed")
    else:
        click.echo(f"cluster renew-certs: renewed on {len(result.plan)} host(s), "
                   f"{result.recap.changed} changed")
    sys.stdout.flush()
