"""Growing a running etcd: 1 member, then 3, through `member add` one at a time.

The same sandbox hosts under two inventories in one directory (so they share
the artifacts/PKI): first the etcd group holds one host, then all three.
"""

from __future__ import annotations

import json

import pytest
import yaml
from e2e_names import sandbox_name
from etcd_helpers import Cluster, bring_up, cli, close, etcdctl, freeze_wheelhouse, ok

from bootstrap.config.inventory import load_inventory
from bootstrap.flows.plan import etcd_nodes
from bootstrap.remote.pool import connect_all

pytestmark = [pytest.mark.slow, pytest.mark.root]

NAME = sandbox_name("etcgrow")


def _with_etcd(inventory: dict, members: list[str]) -> dict:
    inv = json.loads(json.dumps(inventory))
    inv["all"]["children"]["etcd"] = {"hosts": {m: {} for m in members}}
    return inv


@pytest.fixture(scope="module")
def grown(sandbox_factory, tmp_path_factory):
    sandbox_inv = yaml.safe_load(sandbox_factory(NAME, 3).read_text())
    hosts = list(sandbox_inv["all"]["hosts"])
    work = tmp_path_factory.mktemp("grow")
    small, full = work / "one.yaml", work / "three.yaml"
    small.write_text(yaml.safe_dump(_with_etcd(sandbox_inv, hosts[:1])))
    full.write_text(yaml.safe_dump(_with_etcd(sandbox_inv, hosts)))
    c = None
    try:
        freeze_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))
        ok(cli("cluster", "up", "-i", str(small), "--tags", "pki,etcd"))
        # The case: a tag run on the grown inventory must not touch membership.
        c = _connect(small)
        ok(cli("cluster", "up", "-i", str(full), "--tags", "sysctl"))
        members_after_sysctl = _members(c)
        close(c)
        grow = cli("cluster", "up", "-i", str(full), "--tags", "pki,etcd")
        c = bring_up(full, tmp_path_factory.mktemp("unused"))
        yield c, grow, members_after_sysctl
    finally:
        if c is not None:
            close(c)
        sandbox_factory.down(NAME)


def _connect(inventory_path) -> Cluster:
    """Connections only (no `cluster up`), to look at the cluster as it is."""
    inv = load_inventory(inventory_path)
    return Cluster(inventory_path, inv, connect_all(list(inv.hosts.values())), etcd_nodes(inv),
                   None)


def _members(c) -> list[dict]:
    first = c.nodes[0]
    return json.loads(c.run(first.host, etcdctl("--write-out=json member list",
                                                [first.client_url])).stdout)["members"]


def test_tags_sysctl_on_the_grown_inventory_adds_no_member(grown):
    _, _, members_after_sysctl = grown
    assert len(members_after_sysctl) == 1


def test_members_were_added_one_at_a_time(grown):
    c, grow, _ = grown
    out = ok(grow)
    assert "adding member(s)" in out and "etcd (join)" in out, out[-3000:]


def test_grown_cluster_has_three_healthy_members(grown):
    c, _, _ = grown
    members = _members(c)
    assert sorted(m["name"] for m in members) == sorted(n.name for n in c.nodes)
    assert all(h["health"] for h in c.health(c.nodes[0].host))
