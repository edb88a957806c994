"""``bootstrap reset`` and ``reset phase ...``: derived from the reset workflow."""

from __future__ import annotations

import click

from bootstrap.cli import main
from bootstrap.flows.reset import reset_workflow
from bootstrap.flows.workflow import build_run_command

main.add_command(build_run_command(reset_workflow(click.echo)))
