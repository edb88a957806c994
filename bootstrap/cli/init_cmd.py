"""``bootstrap init phase ...``: derived from the init workflow declaration.

Plain ``bootstrap init`` (every phase in order, ``--skip-phases``) is registered
once the workflow does the full job (control plane, kubelet); until then only
the individual phases are offered.
"""

from __future__ import annotations

import click

from bootstrap.cli import main
from bootstrap.flows.init import init_workflow
from bootstrap.flows.workflow import build_phase_only_command

main.add_command(build_phase_only_command(init_workflow(click.echo)))
