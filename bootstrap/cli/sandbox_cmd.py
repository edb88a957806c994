"""``bootstrap sandbox``: local hosts made of Linux namespaces."""

from __future__ import annotations

import subprocess

import click
from rich.console import Console
from rich.table import Table

from bootstrap import sandbox
from bootstrap.cli import main
from bootstrap.errors import UserError
from bootstrap.sandbox import names, state

DEFAULT_NAME = "default"
_err = Console(stderr=True, highlight=False)


def _log(msg: str) -> None:
    _err.print(f"[dim]sandbox:[/dim] {msg}")


@main.group("sandbox")
def sandbox_group() -> None:
    """Hosts on this machine made of namespaces, with systemd and sshd (needs root)."""


@sandbox_group.command("up")
@click.option("--name", default=DEFAULT_NAME, show_default=True, help="Sandbox name (DNS label).")
@click.option("--hosts", "hosts", type=int, default=3, show_default=True,
              help="Kubernetes hosts <name>-1..N.")
@click.option("--etcd-hosts", type=int, default=0, show_default=True,
              help="Separate etcd hosts <name>-etcd1..M (external etcd topology).")
@click.option("--control-plane", type=int, default=None,
              help="Control-plane hosts among the first ones [default: min(3, hosts)].")
def up_cmd(name: str, hosts: int, etcd_hosts: int, control_plane: int | None) -> None:
    """Create (or keep) the sandbox and print the path of its inventory."""
    path = sandbox.up(name, hosts, etcd_hosts, control_plane, log=_log)
    click.echo(str(path))


@sandbox_group.command("down")
@click.option("--name", default=DEFAULT_NAME, show_default=True)
def down_cmd(name: str) -> None:
    """Remove the sandbox: processes, cgroups, network, mounts and state."""
    if not sandbox.down(name, log=_log):
        _log(f"sandbox {name} does not exist; nothing to do")


@sandbox_group.command("list")
def list_cmd() -> None:
    """Sandboxes on this machine."""
    table = Table(box=None, pad_edge=False)
    for col in ("NAME", "HOSTS", "NETWORK", "STATE"):
        table.add_column(col)
    for info in sandbox.list_sandboxes():
        table.add_row(info.name, str(info.hosts), info.network, info.state)
    Console(highlight=False).print(table)


@sandbox_group.command("ssh", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("host")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def ssh_cmd(ctx: click.Context, name: str, host: str, command: tuple[str, ...]) -> None:
    """Open a shell on HOST (or run COMMAND after `--`) over the real ssh."""
    names.validate_name(name)
    s = state.load(name)
    if s is None:
        raise UserError(f"no sandbox named {name!r}", where="sandbox ssh",
                        hint="see `bootstrap sandbox list`")
    h = s.hosts.get(host) or s.hosts.get(f"{name}-{host}")
    if h is None:
        raise UserError(f"no host {host!r} in sandbox {name}", where="sandbox ssh",
                        hint=f"hosts: {', '.join(s.hosts)}")
    p = sandbox.paths(name)
    argv = ["ssh", "-i", str(p["key"]), "-o", "IdentitiesOnly=yes",
            "-o", "StrictHostKeyChecking=accept-new", "-o", f"UserKnownHostsFile={p['known_hosts']}",
            "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", f"root@{h.ip}"]
    if command:
        argv += ["--", *command]
    ctx.exit(subprocess.call(argv))


@sandbox_group.command("stop")
@click.argument("name")
@click.argument("host")
def stop_cmd(name: str, host: str) -> None:
    """Power HOST off (SIGKILL to its PID 1); its IP and disk are kept for `start`."""
    from bootstrap.sandbox import power

    power.stop(name, host, log=_log)


@sandbox_group.command("start")
@click.argument("name")
@click.argument("host")
def start_cmd(name: str, host: str) -> None:
    """Boot HOST again, with the same IP and disk."""
    from bootstrap.sandbox import power

    power.start(name, host, log=_log)
