"""``bootstrap inventory``: read a kubespray inventory and show what it means."""

from __future__ import annotations

import shutil

import click
from rich import box
from rich.console import Console
from rich.table import Table

from bootstrap.cli import main
from bootstrap.config.inventory import load_inventory

_TOPOLOGY = {
    "stacked": "stacked (etcd members run on the control-plane hosts)",
    "external": "external (etcd members on their own hosts)",
}


@main.group("inventory")
def inventory() -> None:
    """kubespray-format inventories (INI or YAML, with group_vars/ and host_vars/)."""


@inventory.command("check")
@click.option("-i", "--inventory", "path", required=True, metavar="PATH",
              help="Inventory file (or a directory holding one hosts.yaml/inventory.ini).")
def check(path: str) -> None:
    """Print the resolved hosts, their roles and the etcd topology."""
    inv = load_inventory(path)
    # Tables must not wrap when piped; rich assumes 80 columns without a terminal.
    out = Console(width=max(120, shutil.get_terminal_size((120, 24)).columns),
                  highlight=False, soft_wrap=True)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("HOST", "ADDRESS", "USER", "NODE IP", "ROLES", "ETCD MEMBER"):
        table.add_column(column, no_wrap=True)
    for host in inv.hosts.values():
        address = host.address if host.port == 22 else f"{host.address}:{host.port}"
        roles = ", ".join(inv.roles(host.name))
        member = (host.etcd_member_name or host.name) if host in inv.etcd else ""
        table.add_row(host.name, address, host.user, host.node_ip, roles, member)
    out.print(table)
    out.print(f"topology: {_TOPOLOGY[inv.topology]}")
    out.print(f"control plane: {len(inv.control_plane)}, workers: {len(inv.workers)}, "
              f"etcd members: {len(inv.etcd)}")
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for note in inv.warnings:
        err.print(f"warning: {note}", markup=False)
