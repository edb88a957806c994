"""cluster remove-node / cluster reset over fake connections and a fake API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bootstrap.errors import UserError
from bootstrap.flows import cluster_remove as cr
from bootstrap.remote import Result
from bootstrap.remote.fake import FakeConnection

INVENTORY = """
all:
  hosts:
    cp1: {ansible_host: 10.9.0.1, ip: 10.9.0.1}
    cp10: {ansible_host: 10.9.0.10, ip: 10.9.0.10}
    cp3: {ansible_host: 10.9.0.3, ip: 10.9.0.3}
    w1: {ansible_host: 10.9.0.4, ip: 10.9.0.4}
  children:
    kube_control_plane: {hosts: {cp1: {}, cp10: {}, cp3: {}}}
    kube_node: {hosts: {cp1: {}, cp10: {}, cp3: {}, w1: {}}}
    etcd: {hosts: {cp1: {}, cp10: {}, cp3: {}}}
    k8s_cluster: {children: {kube_control_plane: {}, kube_node: {}}}
"""

IDS = {"cp1": 0xa1, "cp10": 0xb2, "cp3": 0xc3}
IPS = {"cp1": "10.9.0.1", "cp10": "10.9.0.10", "cp3": "10.9.0.3"}


@pytest.fixture
def inventory(tmp_path) -> Path:
    path = tmp_path / "hosts.yaml"
    path.write_text(INVENTORY)
    art = tmp_path / "artifacts"
    art.mkdir()
    (art / "admin.conf").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "a",
        "clusters": [{"name": "c", "cluster": {"server": "https://10.9.0.1:6443"}}],
        "contexts": [{"name": "a", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {}}]}))
    return path


class Etcd:
    """The members as etcd holds them; `member remove` really removes."""

    def __init__(self, down: tuple[str, ...] = ()):
        self.members = dict(IDS)
        self.down = set(down)

    def member_list(self, cmd):
        return Result(0, json.dumps({"members": [
            {"ID": mid, "name": n, "peerURLs": [f"https://{IPS[n]}:2380"],
             "clientURLs": [f"https://{IPS[n]}:2379"]} for n, mid in self.members.items()]}))

    def health(self, cmd):
        return Result(0, json.dumps([{"endpoint": f"https://{IPS[n]}:2379",
                                      "health": n not in self.down} for n in self.members]))

    def remove(self, cmd):
        hex_id = cmd.split("member remove ")[1].split()[0]
        self.members = {n: m for n, m in self.members.items() if format(m, "x") != hex_id}
        return Result(0, "removed")


class API:
    def __init__(self, names=("cp1", "cp10", "cp3", "w1")):
        self.nodes = set(names)
        status = {"apiEndpoints": {n: {"advertiseAddress": IPS[n], "bindPort": 6443}
                                   for n in IPS}}
        self.cm = {"data": {"ClusterStatus": yaml.safe_dump(status)}}
        self.patches = []
        self.slices = {"kube-dns-cp3": {"metadata": {"name": "kube-dns-cp3", "labels": {
            "endpointslice.kubernetes.io/managed-by": "bootstrap-dns"}}}}

    def get(self, resource, name, namespace=None):
        if resource == cr.NODES:
            return {"metadata": {"name": name}} if name in self.nodes else None
        if resource == cr.SLICES:
            return self.slices.get(name)
        return self.cm

    def list(self, resource, namespace=None, **kw):
        return [{"metadata": {"name": n}} for n in sorted(self.nodes)]

    def delete(self, resource, name, namespace=None):
        if resource == cr.SLICES:
            return self.slices.pop(name, None) is not None
        present = name in self.nodes
        self.nodes.discard(name)
        return present

    def patch(self, resource, name, patch, namespace=None, patch_type="strategic"):
        self.patches.append(patch)
        self.cm = {"data": dict(patch["data"])}


@pytest.fixture
def world(monkeypatch):
    etcd, api, drained = Etcd(), API(), []
    conns: dict[str, FakeConnection] = {}

    def fake(host):
        c = FakeConnection(host)
        c.respond(r"member list", etcd.member_list)
        c.respond(r"endpoint health", etcd.health)
        c.respond(r"member remove", etcd.remove)
        c.respond(r"bootstrap reset", Result(0, "[reset] 12 changed\n"))
        conns[host] = c
        return c

    def connect(hosts):
        return {h.name: fake(h.name) for h in hosts}

    def connect_some(hosts):
        return connect(hosts), {}

    monkeypatch.setattr(cr._Cluster, "api", lambda self, avoid: (api, "admin.conf"))
    import bootstrap.flows.drain as drain

    monkeypatch.setattr(drain, "drain_node",
                        lambda kubeconfig, node, opts, log: drained.append((node, opts)))
    monkeypatch.setattr(cr, "_update_balancers", lambda *a: None)
    return type("World", (), {"etcd": etcd, "api": api, "drained": drained, "conns": conns,
                              "kw": {"connect": connect, "connect_some": connect_some}})


def test_remove_a_control_plane_host_in_order(inventory, world):
    lines: list[str] = []
    done = cr.remove_nodes(str(inventory), ["cp1"], echo=lines.append, **world.kw)
    assert done[0].done == ["drained", "etcd member a1 removed", "reset", "Node deleted",
                            "ClusterStatus updated"]
    # Exactly cp1's member went: cp10 (a name with cp1 as its prefix) stays.
    assert sorted(world.etcd.members) == ["cp10", "cp3"]
    assert world.drained[0][0] == "cp1" and world.drained[0][1].force
    assert "cp1" not in world.api.nodes
    assert "cp1" not in yaml.safe_load(world.api.cm["data"]["ClusterStatus"])["apiEndpoints"]
    reset = [c for c in world.conns["cp1"].commands if "bootstrap reset" in c]
    assert reset and "--yes --skip-phases remove-etcd-member" in reset[0]
    # The removal is sent to the members that stay, never to the one leaving.
    remove = next(c for conn in world.conns.values() for c in conn.commands
                  if "member remove" in c)
    assert "https://10.9.0.1:2379" not in remove.split("member remove")[0]
    assert any("etcd healthy: 2 member(s)" in ln for ln in lines)


def test_a_worker_has_no_member_to_remove(inventory, world):
    done = cr.remove_nodes(str(inventory), ["w1"], echo=lambda _l: None, **world.kw)
    assert done[0].done == ["drained", "reset", "Node deleted"]
    assert len(world.etcd.members) == 3


def test_quorum_breaking_removal_is_refused_before_any_change(inventory, world):
    world.etcd.down = {"cp3"}
    with pytest.raises(UserError, match="refusing to remove cp10.*quorum of 2 needs 2"):
        cr.remove_nodes(str(inventory), ["cp10"], echo=lambda _l: None, **world.kw)
    assert world.drained == [] and len(world.etcd.members) == 3 and "cp10" in world.api.nodes
    assert not any("bootstrap reset" in c for conn in world.conns.values()
                   for c in conn.commands)


def test_removing_two_at_once_checks_each_against_what_is_left(inventory, world):
    done = cr.remove_nodes(str(inventory), ["cp10", "cp3"], echo=lambda _l: None, **world.kw)
    assert [r.member.name for r in done] == ["cp10", "cp3"]
    assert sorted(world.etcd.members) == ["cp1"]


def test_dead_host_is_not_contacted_and_its_member_goes_by_id(inventory, world):
    world.etcd.down = {"cp3"}
    done = cr.remove_nodes(str(inventory), ["cp3"], force=True, member_ids={"cp3": "c3"},
                           echo=lambda _l: None, **world.kw)
    assert "cp3" not in world.conns  # no SSH to the dead host
    assert done[0].done == ["etcd member c3 removed", "Node deleted", "ClusterStatus updated"]
    assert sorted(world.etcd.members) == ["cp1", "cp10"]
    assert world.api.slices == {}  # the dead DNS server's endpoints go too


def test_a_wrong_member_id_matches_nothing(inventory, world):
    done = cr.remove_nodes(str(inventory), ["cp3"], force=True, member_ids={"cp3": "c"},
                           echo=lambda _l: None, **world.kw)
    assert len(world.etcd.members) == 3 and done[0].member is None


def test_bad_input_is_one_line(inventory, world):
    with pytest.raises(UserError, match="not in the inventory: nope"):
        cr.remove_nodes(str(inventory), ["nope"], **world.kw)
    with pytest.raises(UserError, match="every control-plane host"):
        cr.remove_nodes(str(inventory), ["cp1", "cp10", "cp3"], **world.kw)
    from bootstrap.cli import main

    r = CliRunner().invoke(main, ["cluster", "remove-node", "-i", str(inventory), "cp1",
                                  "--etcd-member-id", "cp1", "--yes"])
    assert r.exit_code == 2 and "expected NODE=ID" in r.output and "Traceback" not in r.output


def test_cluster_reset_runs_reset_everywhere(inventory, world):
    lines: list[str] = []
    out = cr.reset_cluster(str(inventory), echo=lines.append, connect=world.kw["connect"])
    assert sorted(out) == ["cp1", "cp10", "cp3", "w1"]
    assert all(v == "[reset] 12 changed" for v in out.values())


def test_cluster_reset_asks_first(inventory):
    from bootstrap.cli import main

    r = CliRunner().invoke(main, ["cluster", "reset", "-i", str(inventory)], input="n\n")
    assert r.exit_code != 0 and "Continue?" in r.output
