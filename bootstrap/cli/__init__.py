"""The ``bootstrap`` command line.

Commands stay thin: parse options, call a flow or a library function, print.
Every command module registers itself on the root group ``main``; a
``UserError`` anywhere below becomes one line on stderr and its exit code.
"""

from __future__ import annotations

import importlib
import sys

import click

from bootstrap import __version__
from bootstrap.errors import UserError

# Command modules, imported for their side effect of adding commands to ``main``.
# Only commands that work are listed here.
COMMAND_MODULES: list[str] = ["init_cmd", "certs_cmd", "token_cmd", "sandbox_cmd", "config_cmd", "inventory_cmd", "cluster_cmd", "etcd_cmd", "image_cmd", "join_cmd"]


class _Root(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"error: {exc.line()}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bootstrap")
def main() -> None:
    """Stand up and run a Kubernetes-style cluster on your own hosts."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"bootstrap.cli.{_name}")
