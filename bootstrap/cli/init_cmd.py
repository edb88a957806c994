"""``bootstrap init`` and ``bootstrap init phase ...``: derived from the init workflow declaration."""

from __future__ import annotations

import click

from bootstrap.cli import main
from bootstrap.flows.init import init_workflow
from bootstrap.flows.workflow import build_run_command

main.add_command(build_run_command(init_workflow(click.echo)))
