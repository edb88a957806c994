"""``bootstrap token``: bootstrap tokens for joining nodes."""

from __future__ import annotations

import click

from bootstrap.cli import main
from bootstrap.pki.tokens import generate_token


@main.group("token")
def token() -> None:
    """Manage bootstrap tokens."""


@token.command("generate")
def generate() -> None:
    """Generate and print a bootstrap token (it is not created on the cluster).

    The token has the form [a-z0-9]{6}.[a-z0-9]{16}, drawn from a
    cryptographically secure random source.
    """
    click.echo(generate_token())
