"""``bootstrap inventory``: read a kubespray inventory and show what it means."""

from __future__ import annotations

import shutil

import click
from rich import box
from rich.console import Console
from rich.table import Table

from bootstrap.cli import main
from bootstrap.config.inventory import load_inventory
from bootstrap.config.kubespray_vars import effective_config

_TOPOLOGY = {
    "stacked": "stacked (etcd members run on the control-plane hosts)",
    "external": "external (etcd members on their own hosts)",
    "mixed": "mixed (see each host's etcd placement)",
}
_PLACEMENT = {"local-member": "local member", "member": "member",
              "remote-members": "uses remote members", None: ""}


@main.group("inventory")
def inventory() -> None:
    """kubespray-format inventories (INI or YAML, with group_vars/ and host_vars/)."""


@inventory.command("check")
@click.option("-i", "--inventory", "path", required=True, metavar="PATH",
              help="Inventory file, directory holding one, or executable inventory script.")
@click.option("--config", "config_path", metavar="PATH", default=None,
              help="Cluster configuration file; its fields win over the inventory's variables.")
def check(path: str, config_path: str | None) -> None:
    """Print the resolved hosts, their roles, etcd placement and the effective settings
    with where each came from."""
    inv = load_inventory(path)
    eff = effective_config(inv, config_path)
    # Tables must not wrap when piped; rich assumes 80 columns without a terminal.
    out = Console(width=max(200, shutil.get_terminal_size((200, 24)).columns),
                  highlight=False, soft_wrap=True)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("HOST", "ADDRESS", "USER", "NODE IP", "ROLES", "ETCD MEMBER", "ETCD",
                   "VIA"):
        table.add_column(column, no_wrap=True)
    for host in inv.hosts.values():
        address = host.address if host.port == 22 else f"{host.address}:{host.port}"
        roles = ", ".join(inv.roles(host.name))
        member = (host.etcd_member_name or host.name) if host in inv.etcd else ""
        user = host.user + (f" (sudo {host.become_user})" if host.become else "")
        via = "local" if host.connection == "local" else \
            (f"jump {host.jump_host.spec()}" if host.jump_host else "ssh")
        table.add_row(host.name, address, user, host.node_ip, roles, member,
                      _PLACEMENT[host.etcd], via)
    out.print(table)
    out.print(f"topology: {_TOPOLOGY[inv.topology]}")
    out.print(f"control plane: {len(inv.control_plane)}, workers: {len(inv.workers)}, "
              f"etcd members: {len(inv.etcd)}")
    out.print(f"etcd servers: {inv.etcd_servers}")
    out.print(f"state dir: {inv.artifacts_dir} (kubespray's artifacts_dir: PKI, kubeconfigs)")
    settings = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("SETTING", "VALUE", "FROM"):
        settings.add_column(column, no_wrap=True)
    for name, setting in eff.sources.items():
        settings.add_row(name, _show(setting.value), setting.source)
    out.print(settings)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for note in [*inv.warnings, *eff.warnings]:
        err.print(f"warning: {note}", markup=False)


def _show(value: object) -> str:
    if isinstance(value, list):
        if value and all(isinstance(v, dict) and set(v) == {"name", "value"} for v in value):
            return ",".join(f"{v['name']}={v['value']}" for v in value)
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)
