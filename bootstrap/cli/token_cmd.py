"""``bootstrap token``: bootstrap tokens for joining nodes."""

from __future__ import annotations

import click

from bootstrap.cli import main
from bootstrap.pki.tokens import generate_token

DEFAULT_KUBECONFIG = "/etc/kubernetes/admin.conf"


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


def _kubeconfig_option(f):
    return click.option("--kubeconfig", default=DEFAULT_KUBECONFIG, show_default=True,
                        metavar="PATH", help="The kubeconfig file to talk to the cluster with.")(f)


def _api(kubeconfig: str):
    from bootstrap.flows.kubeapi import KubeAPI

    return KubeAPI.from_kubeconfig(kubeconfig)


@token.command("create")
@click.argument("token_value", required=False, metavar="[TOKEN]")
@click.option("--ttl", default="24h", show_default=True,
              help="The duration before the token is automatically deleted; '0' never expires.")
@click.option("--usages", default="signing,authentication", show_default=True,
              help="The ways in which this token can be used.")
@click.option("--groups", default=None, metavar="GROUPS",
              help="Extra groups this token authenticates as "
                   "[default: system:bootstrappers:kubeadm:default-node-token].")
@click.option("--description", default="", help="A human friendly description.")
@click.option("--print-join-command", is_flag=True,
              help="Print the full `bootstrap join` command with this token.")
@_kubeconfig_option
def create(token_value, ttl, usages, groups, description, print_join_command, kubeconfig):
    """Create a bootstrap token on the cluster (generated unless TOKEN is given)."""
    from bootstrap.flows import token as flow

    ttl_d = flow.parse_ttl(ttl)
    use = flow.parse_usages(usages)
    grp = flow.parse_groups(groups, use)
    if token_value:
        from bootstrap.pki.tokens import parse_token

        parse_token(token_value)
    api = _api(kubeconfig)
    value = flow.create(api, token_value, ttl=ttl_d, usages=use, groups=grp,
                        description=description)
    if print_join_command:
        click.echo(flow.join_command(kubeconfig, value, api))
    else:
        click.echo(value)


@token.command("list")
@_kubeconfig_option
def list_cmd(kubeconfig):
    """List bootstrap tokens on the cluster."""
    from bootstrap.flows import token as flow

    rows = flow.list_tokens(_api(kubeconfig))
    header = ("TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS")
    table = [header] + [(r.token, r.ttl, r.expires, r.usages, r.description, r.groups)
                        for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@token.command("delete")
@click.argument("tokens", nargs=-1, required=True, metavar="TOKEN_ID_OR_TOKEN...")
@_kubeconfig_option
def delete(tokens, kubeconfig):
    """Delete bootstrap tokens on the cluster."""
    from bootstrap.flows import token as flow

    api = _api(kubeconfig)
    for t in tokens:
        click.echo(f'bootstrap token "{flow.delete(api, t)}" deleted')
