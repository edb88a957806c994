"""``bootstrap cluster remove-node`` and ``bootstrap cluster reset`` (kubespray's
remove-node.yml and reset.yml); attached to the ``cluster`` group by cluster_cmd."""

from __future__ import annotations

import click

from bootstrap.errors import UserError
from bootstrap.flows import cluster_remove

_inventory = click.option("-i", "--inventory", "inventory", required=True,
                          type=click.Path(exists=True, dir_okay=False),
                          help="kubespray-format inventory")


def _member_ids(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for v in values:
        node, sep, mid = v.partition("=")
        if not sep or not node or not mid:
            raise UserError(f"--etcd-member-id {v!r}: expected NODE=ID",
                            hint="e.g. --etcd-member-id cp3=8e9e05c52164694d")
        out[node] = mid
    return out


@click.command("remove-node")
@click.argument("nodes", nargs=-1, required=True)
@_inventory
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="cluster configuration (kubeadm-style YAML); defaults otherwise")
@click.option("--force", is_flag=True,
              help="the host is dead or unreachable (kubespray's reset_nodes=false): do not "
                   "drain or reset it; still remove its etcd member and its Node")
@click.option("--etcd-member-id", "member_ids", multiple=True, metavar="NODE=ID",
              help="remove this etcd member ID (hex, as `etcdctl member list` prints it) for "
                   "NODE instead of matching it by name and peer URL")
@click.option("--drain-timeout", type=click.FloatRange(min=0),
              default=cluster_remove.DRAIN_TIMEOUT, show_default=True,
              help="seconds the drain may take (0: no limit)")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def remove_node_cmd(nodes: tuple[str, ...], inventory: str, config_path: str | None, force: bool,
                member_ids: tuple[str, ...], drain_timeout: float, yes: bool) -> None:
    """Cordon, drain, reset and delete NODES; remove their etcd members safely."""
    ids = _member_ids(member_ids)
    if not yes:
        click.confirm(f"Remove {', '.join(nodes)} from the cluster "
                      f"({'no drain, no reset: --force' if force else 'drain and reset'})?",
                      abort=True)
    done = cluster_remove.remove_nodes(inventory, list(nodes), config_path=config_path,
                                       force=force, member_ids=ids,
                                       drain_timeout=drain_timeout, echo=click.echo)
    for r in done:
        click.echo(f"remove-node: {r.host.name} removed ({', '.join(r.done) or 'nothing left'})")
    click.echo("remove-node: take the removed hosts out of the inventory before the next "
               "`cluster up`")


@click.command("reset")
@_inventory
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def cluster_reset_cmd(inventory: str, yes: bool) -> None:
    """`bootstrap reset` on every host of the inventory: the whole cluster goes."""
    if not yes:
        click.confirm("This resets every host of the inventory and deletes the cluster's "
                      "data (etcd included). Continue?", abort=True)
    results = cluster_remove.reset_cluster(inventory, echo=click.echo)
    click.echo(f"cluster reset: {len(results)} host(s) reset")

