"""``bootstrap join [HOST:PORT] ...`` and ``join phase ...``: derived from the join workflow."""

from __future__ import annotations

import click

from bootstrap.cli import main
from bootstrap.flows.join import join_workflow
from bootstrap.flows.workflow import build_run_command

_join = build_run_command(join_workflow(click.echo))


class _JoinGroup(type(_join)):
    """kubeadm's positional endpoint: `join 10.0.0.1:6443 --token ...`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["--api-server-endpoint", args[0], *args[1:]]
        return super().parse_args(ctx, args)


_join.__class__ = _JoinGroup
main.add_command(_join)
