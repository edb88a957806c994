"""``bootstrap upgrade plan|apply|node`` (kubeadm's), derived from the upgrade workflows."""

from __future__ import annotations

import click

from bootstrap.cli import main
from bootstrap.flows.upgrade import FAIL_HEALTH_ENV, UpgradeContext, apply_workflow, node_workflow
from bootstrap.flows.workflow import build_run_command


def _confirm(question: str) -> bool:
    return click.confirm(question, default=False)


@main.group("upgrade")
def upgrade() -> None:
    """Upgrade this host's agents to another bootstrap install, kubeadm's way.

    \b
    On the first control-plane host:  bootstrap upgrade plan 0.2.0
                                      bootstrap upgrade apply 0.2.0
    Then on every other host:         bootstrap upgrade node --to 0.2.0
    """


@upgrade.command("plan")
@click.argument("version", required=False)
def plan(version: str | None) -> None:
    """Show what an upgrade to VERSION (default: this toolkit's) would change on this host."""
    from bootstrap.flows.upgrade_plan import make_plan, render

    ctx = UpgradeContext({"to": version}, click.echo, "plan")
    click.echo(render(make_plan(ctx), "apply" if ctx.control_plane else "node"))


def _positional_version(group: click.Group) -> None:
    """`upgrade apply 0.2.0`: the first bare word is the version (--to)."""
    base = type(group)

    class _Group(base):
        def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
            if args and not args[0].startswith("-") and args[0] not in self.commands:
                args = ["--to", args[0], *args[1:]]
            return super().parse_args(ctx, args)

    group.__class__ = _Group


_apply = build_run_command(apply_workflow(click.echo, confirm=_confirm))
_positional_version(_apply)
_apply.help += (f"\n\nA unit that is not healthy within --health-timeout is rolled back with "
                f"the ones already moved (exit 1). Tests set {FAIL_HEALTH_ENV}=kube-apiserver "
                "to make the new API server fail its health check.")
upgrade.add_command(_apply)
_node = build_run_command(node_workflow(click.echo, confirm=_confirm))
upgrade.add_command(_node)
