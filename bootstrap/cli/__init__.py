"""The ``bootstrap`` command line.

Commands stay thin: parse options, call a flow or a library function, print.
Every command module registers itself on the root group ``main``; a
``UserError`` anywhere below becomes one line on stderr and its exit code.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import re
import sys

import click

from bootstrap import __version__
from bootstrap.errors import UserError

# Command modules, imported for their side effect of adding commands to ``main``.
# Only commands that work are listed here.
COMMAND_MODULES: list[str] = ["init_cmd", "certs_cmd", "token_cmd", "sandbox_cmd", "config_cmd", "inventory_cmd", "cluster_cmd", "etcd_cmd", "image_cmd", "join_cmd", "version_cmd", "reset_cmd", "upgrade_cmd", "kubeconfig_cmd", "csr_cmd"]


_VERBOSITY = re.compile(r"^(?:-v|--v)(?:=?(\d+))?$")


def take_verbosity(args: list[str]) -> tuple[list[str], int | None]:
    """kubeadm's -v/--v N works anywhere on the line: lift it out before click parses,
    so no subcommand has to declare it."""
    out, level, i = [], None, 0
    while i < len(args):
        m = _VERBOSITY.match(args[i])
        if m and args[i] != "--":
            if m.group(1) is not None:
                level = int(m.group(1))
            elif i + 1 < len(args) and args[i + 1].isdigit():
                level, i = int(args[i + 1]), i + 1
            else:
                out.append(args[i])  # a bare -v belongs to whoever defines it
        elif args[i] == "--":
            out.extend(args[i:])
            break
        else:
            out.append(args[i])
        i += 1
    return out, level


def _configure_logging(level: int | None) -> None:
    if level is None:
        return
    # klog's levels: 0-1 warnings and info of the tool, 2+ our debug, 6+ every library.
    logging.basicConfig(level=logging.DEBUG if level >= 2 else logging.INFO,
                        format="%(levelname).1s %(name)s: %(message)s", stream=sys.stderr)
    if level < 6:
        for noisy in ("paramiko", "asyncio", "urllib3", "invoke", "fabric"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def _usage_line(exc: click.UsageError) -> str:
    """One line for a mistyped command or option, with a suggestion (not click's
    usage block)."""
    message = exc.format_message()
    ctx = exc.ctx
    m = re.match(r"No such command '([^']+)'", message)
    if m and "did you mean" not in message.lower() and ctx is not None and \
            isinstance(ctx.command, click.Group):
        close = difflib.get_close_matches(m.group(1), ctx.command.list_commands(ctx), n=1)
        if close:
            message = f"{message.rstrip('.')}; did you mean {close[0]!r}?"
    where = ctx.command_path if ctx is not None else "bootstrap"
    hint = f"see '{where} --help'"
    return f"error: {where}: {' '.join(message.split())} ({hint})"


class _Root(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"error: {exc.line()}", err=True)
            sys.exit(exc.exit_code)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        args, level = take_verbosity(list(sys.argv[1:] if args is None else args))
        _configure_logging(level)
        try:
            rv = super().main(args, prog_name or "bootstrap", complete_var,
                              standalone_mode=False, **extra)
        except click.UsageError as exc:
            click.echo(_usage_line(exc), err=True)
            sys.exit(2)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bootstrap")
def main() -> None:
    """Stand up and run a Kubernetes-style cluster on your own hosts."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"bootstrap.cli.{_name}")
