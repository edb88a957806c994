"""``bootstrap etcd ...``: status and snapshots of the cluster's etcd."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from bootstrap.cli import main
from bootstrap.errors import UserError
from bootstrap.flows import etcd_admin

_inventory = click.option("-i", "--inventory", "inventory", required=True,
                          type=click.Path(exists=True, dir_okay=False),
                          help="kubespray-format inventory")


@main.group("etcd")
def etcd() -> None:
    """Inspect and back up the etcd members of an inventory."""


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _print_status(rows) -> None:
    table = Table(title="etcd members")
    for col in ("ENDPOINT", "NAME", "HEALTH", "LEADER", "RAFT TERM", "REVISION", "RAFT INDEX",
                "DB SIZE", "VERSION"):
        table.add_column(col)
    for r in rows:
        health = "[green]healthy[/]" if r.healthy else f"[red]unhealthy[/] {r.error}".rstrip()
        dash = lambda v: "-" if v is None else str(v)  # noqa: E731
        table.add_row(r.endpoint, r.name, health, "yes" if r.leader else "no",
                      dash(r.raft_term), dash(r.revision), dash(r.raft_index), _size(r.db_size),
                      r.version or "-")
    Console(width=160).print(table)


@etcd.command("status")
@_inventory
def status(inventory: str) -> None:
    """Per member: health, leader, raft term, revision, raft index, db size."""
    rows = etcd_admin.status(inventory)
    _print_status(rows)
    bad = [r.name for r in rows if not r.healthy]
    if bad:
        raise UserError(f"unhealthy etcd member(s): {', '.join(bad)}")


@etcd.group("snapshot")
def snapshot() -> None:
    """Save and restore etcd snapshots."""


@snapshot.command("save")
@click.argument("path", type=click.Path(dir_okay=False))
@_inventory
def save(path: str, inventory: str) -> None:
    """Snapshot a healthy member into PATH on this machine."""
    st = etcd_admin.snapshot_save(inventory, path)
    click.echo(f"snapshot saved to {path}: revision {st.get('revision')}, "
               f"{st.get('totalKey')} keys, {_size(st.get('totalSize'))}, hash {st.get('hash')}")


@snapshot.command("restore")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@_inventory
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="cluster configuration (for the etcd data dir)")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def restore(path: str, inventory: str, config_path: str | None, yes: bool) -> None:
    """Replace the data of every member with PATH (old data dirs are kept as backups)."""
    if not yes:
        click.confirm("This stops etcd on every member and replaces its data. Continue?",
                      abort=True)
    rows = etcd_admin.snapshot_restore(inventory, path, config_path=config_path,
                                       progress=lambda m: click.echo(f"restore: {m}"))
    _print_status(rows)
    click.echo("restore: done, every member healthy")
