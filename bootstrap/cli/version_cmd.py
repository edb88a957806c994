"""``bootstrap version`` and ``bootstrap completion``, as kubeadm's."""

from __future__ import annotations

import json
import platform
import sys

import click
import yaml

from bootstrap import __version__
from bootstrap.cli import main
from bootstrap.errors import UserError


def version_info() -> dict:
    """kubeadm's version.Info fields, filled with what a Python build knows."""
    base = __version__.split("+", 1)[0]
    parts = (base.split(".") + ["0", "0"])[:2]
    return {
        "major": parts[0], "minor": parts[1], "gitVersion": f"v{__version__}",
        "gitCommit": "", "gitTreeState": "", "buildDate": "",
        "goVersion": "", "compiler": f"python{platform.python_version()}",
        "platform": f"{sys.platform}/{platform.machine().lower().replace('x86_64', 'amd64')}",
    }


@main.command("version")
@click.option("-o", "--output", default="",
              help="Output format; available options are 'yaml', 'json' and 'short'")
def version(output: str) -> None:
    """Print the version of bootstrap."""
    info = version_info()
    if output == "":
        fields = ", ".join(f'{k[0].upper() + k[1:]}:"{v}"' for k, v in info.items())
        click.echo(f"bootstrap version: &version.Info{{{fields}}}")
    elif output == "short":
        click.echo(info["gitVersion"])
    elif output == "json":
        click.echo(json.dumps({"clientVersion": info}, indent=2))
    elif output == "yaml":
        click.echo(yaml.safe_dump({"clientVersion": info}, sort_keys=False), nl=False)
    else:
        raise UserError(f"invalid output format: {output}", where="--output",
                        hint="use yaml, json or short")


SHELLS = ("bash", "zsh", "fish")


@main.command("completion")
@click.argument("shell", required=False)
def completion(shell: str | None) -> None:
    """Output shell completion code for bash, zsh or fish.

    \b
    bash: source <(bootstrap completion bash)
    zsh:  source <(bootstrap completion zsh)
    fish: bootstrap completion fish | source
    """
    from click.shell_completion import get_completion_class

    if shell is None:
        raise UserError("shell not specified", where="completion",
                        hint=f"name one of: {', '.join(SHELLS)}")
    if shell not in SHELLS:
        raise UserError(f"unsupported shell type {shell!r}", where="completion",
                        hint=f"name one of: {', '.join(SHELLS)}")
    cls = get_completion_class(shell)
    click.echo(cls(main, {}, "bootstrap", "_BOOTSTRAP_COMPLETE").source())
