"""Growing a running etcd: 1 member, then 3, through `member add` one at a time.

The same sandbox hosts under two inventories in one directory (so they share
the artifacts/PKI): first the etcd group holds one host, then all three.
"""

from __future__ import annotations

import json

import pytest
import yaml
from e2e_names import sandbox_name
from etcd_helpers import bring_up, cli, close, etcdctl, freeze_wheelhouse, ok

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
        grow = cli("cluster", "up", "-i", str(full), "--tags", "pki,etcd")
        c = bring_up(full, tmp_path_factory.mktemp("unused"))
        yield c, grow
    finally:
        if c is not None:
            close(c)
        sandbox_factory.down(NAME)


def test_members_were_added_one_at_a_time(grown):
    c, grow = grown
    out = ok(grow)
    added = [line for line in out.splitlines() if "adding member" in line]
    assert len(added) == 2, out[-3000:]


def test_grown_cluster_has_three_healthy_members(grown):
    c, _ = grown
    first = c.nodes[0]
    members = json.loads(c.run(first.host, etcdctl("--write-out=json member list",
                                                   [first.client_url])).stdout)["members"]
    assert sorted(m["name"] for m in members) == sorted(n.name for n in c.nodes)
    assert all(h["health"] for h in c.health(first.host))
