"""``bootstrap etcd ...``: status and snapshots of the cluster's etcd."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from bootstrap.cli import main
from bootstrap.errors import UserError
from bootstrap.flows import etcd_admin, etcd_backup

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
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@_inventory
@click.option("--dir", "directory", type=click.Path(file_okay=False),
              help="where to keep timestamped snapshots [default: artifacts/backups beside "
                   "the inventory]")
@click.option("--retention", type=int, default=etcd_backup.DEFAULT_RETENTION, show_default=True,
              help="keep only the newest N snapshots in the directory (0 keeps all)")
def save(path: str | None, inventory: str, directory: str | None, retention: int) -> None:
    """Snapshot one healthy member onto this machine.

    Saved as etcd-snapshot-<UTC time>.db with a .sha256 and a .json (revision,
    keys, size) beside it; or exactly to PATH when one is given (no retention).
    """
    saved = etcd_admin.snapshot_save(inventory, path, directory=directory, retention=retention)
    st = saved.status
    click.echo(f"snapshot saved to {saved.path} from member {saved.member}: revision "
               f"{st.get('revision')}, {st.get('totalKey')} keys, {_size(st.get('totalSize'))},"
               f" sha256 {saved.sha256}")
    for old in saved.removed:
        click.echo(f"retention: removed {old}")


@snapshot.command("restore")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@_inventory
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="cluster configuration (for the etcd data dir)")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def restore(path: str, inventory: str, config_path: str | None, yes: bool) -> None:
    """Restore the WHOLE cluster's etcd from PATH.

    Stops the API servers, controller managers, schedulers and every etcd
    member, restores every member from PATH (same names and peer URLs, a new
    cluster token; old data dirs kept as <dataDir>.backup-<time>), starts them
    and waits for health, then starts the control plane. Everything written
    after the snapshot is lost.
    """
    def confirm() -> None:
        if not yes:
            click.confirm("This stops the API servers and etcd on every member and replaces "
                          "the cluster's data with the snapshot; everything written since is "
                          "lost. Continue?", abort=True)
    out = etcd_admin.snapshot_restore(inventory, path, config_path=config_path,
                                      progress=lambda m: click.echo(f"restore: {m}"),
                                      confirm=confirm)
    _print_status(out.rows)
    click.echo(f"restore: done; etcd healthy at revision {out.revision}, API servers ready on "
               f"{', '.join(out.api_hosts) or 'no control-plane host'}")
