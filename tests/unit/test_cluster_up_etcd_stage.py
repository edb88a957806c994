"""The etcd stage's decisions: new cluster, converge, or add members one at a time."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

# The same host stand-in as the placement tests: the stage plans through plan.etcd_nodes.
from test_etcd_plan import H

from bootstrap.config.model import ClusterConfig, Etcd, ExternalEtcd
from bootstrap.engine.model import HostStats, Recap
from bootstrap.errors import UserError
from bootstrap.flows import etcd_stage
from bootstrap.remote import Result
from bootstrap.remote.fake import FakeConnection


class Inv:
    def __init__(self, n):
        self.control_plane = [H(f"h{i}", f"10.0.0.{i}") for i in range(1, n + 1)]
        self.workers = list(self.control_plane)
        self.etcd = list(self.control_plane)
        self.hosts = {h.name: h for h in self.control_plane}
        self.path = "inv.yaml"


@dataclass
class Ctx:
    inventory: Inv
    connections: dict
    config: ClusterConfig = field(default_factory=ClusterConfig)
    cluster_vars: dict = field(default_factory=lambda: {"etcd_data_dir": "/var/lib/etcd"})
    dry_run: bool = False
    limit: set | None = None
    console: object = None
    plays: list = field(default_factory=list)  # the members' plays
    backups: list = field(default_factory=list)  # the backup timer's play

    def hosts(self, names):
        return [n for n in names if self.limit is None or n in self.limit]

    def play(self, name, hosts, roles, *, serial=None, vars=None):
        target = self.backups if roles == ["etcd-backup"] else self.plays
        target.append({"name": name, "hosts": hosts, "roles": roles, "serial": serial,
                           "vars": vars})
        return Recap(per_host={h: HostStats(ok=1) for h in hosts})


def conns(n, with_data=(), arch="x86_64"):
    out = {}
    for i in range(1, n + 1):
        host = f"h{i}"
        marker = "has-data" if host in with_data else "no-data"
        out[host] = FakeConnection(host, responses={r"uname -m": Result(0, f"{arch}\n{marker}\n")})
    return out


def test_new_cluster_starts_every_member_at_once():
    ctx = Ctx(Inv(3), conns(3))
    etcd_stage.run(ctx)
    assert len(ctx.plays) == 1
    p = ctx.plays[0]
    assert p["hosts"] == ["h1", "h2", "h3"] and p["serial"] is None
    assert p["vars"]["etcd_initial_cluster_state"] == "new"
    assert p["vars"]["etcd_bootstrap_hosts"] == ["h1", "h2", "h3"]
    assert p["vars"]["etcd_initial_cluster"].count("https://") == 3
    assert p["vars"]["etcd_nodes"]["h2"]["client_url"] == "https://10.0.0.2:2379"
    assert p["vars"]["etcd_unsupported_archs"] == {"h1": "", "h2": "", "h3": ""}
    assert p["vars"]["etcd_cluster_token"] == "kubernetes-etcd"


def test_running_cluster_converges_one_member_at_a_time_without_bootstrap_file():
    ctx = Ctx(Inv(3), conns(3, with_data=("h1", "h2", "h3")))
    etcd_stage.run(ctx)
    assert len(ctx.plays) == 1
    assert ctx.plays[0]["serial"] == 1
    assert ctx.plays[0]["vars"]["etcd_bootstrap_hosts"] == []


def test_arm64_hosts_get_unsupported_arch():
    ctx = Ctx(Inv(1), conns(1, arch="aarch64"))
    etcd_stage.run(ctx)
    assert ctx.plays[0]["vars"]["etcd_unsupported_archs"] == {"h1": "arm64"}


def test_new_hosts_join_one_at_a_time_through_the_role():
    ctx = Ctx(Inv(5), conns(5, with_data=("h1", "h2", "h3")))
    etcd_stage.run(ctx)
    assert [p["name"] for p in ctx.plays] == ["etcd", "etcd (join)"]
    join = ctx.plays[1]
    assert join["hosts"] == ["h4", "h5"] and join["serial"] == 1
    v = join["vars"]
    assert v["etcd_initial_cluster_state"] == "existing"
    assert v["etcd_bootstrap_hosts"] == v["etcd_joining_hosts"] == ["h4", "h5"]
    assert v["etcd_member_endpoints"] == [f"https://10.0.0.{i}:2379" for i in (1, 2, 3)]
    # The stage itself never changes membership; the role's etcd_member task does.
    assert not any("member add" in cmd for c in ctx.connections.values() for cmd in c.commands)


def test_limit_joins_only_the_named_new_host():
    ctx = Ctx(Inv(5), conns(5, with_data=("h1", "h2", "h3")), limit={"h5"})
    etcd_stage.run(ctx)
    assert [p["hosts"] for p in ctx.plays if p["hosts"]] == [["h5"]]


def test_external_etcd_in_config_skips_stage():
    cfg = ClusterConfig(etcd=Etcd(local=None, external=ExternalEtcd(("https://e:2379",), "a", "b", "c")))
    ctx = Ctx(Inv(3), conns(3), config=cfg)
    etcd_stage.run(ctx)
    assert ctx.plays == []


def test_missing_connection_is_a_user_error():
    c = conns(3)
    del c["h2"]
    with pytest.raises(UserError, match="h2"):
        etcd_stage.run(Ctx(Inv(3), c))


def test_new_cluster_with_partial_limit_is_refused():
    ctx = Ctx(Inv(3), conns(3), limit={"h1"})
    with pytest.raises(UserError, match="leaves out h2, h3"):
        etcd_stage.run(ctx)
    assert ctx.plays == []


def test_limit_on_running_cluster_converges_only_named_member():
    ctx = Ctx(Inv(3), conns(3, with_data=("h1", "h2", "h3")), limit={"h2"})
    etcd_stage.run(ctx)
    assert [p["hosts"] for p in ctx.plays] == [["h2"]]


def test_the_backup_timer_play_comes_after_the_members_on_every_etcd_host():
    ctx = Ctx(Inv(3), conns(3))
    etcd_stage.run(ctx)
    assert [(p["name"], p["hosts"]) for p in ctx.backups] == [
        ("etcd backups", ["h1", "h2", "h3"])]
    assert ctx.backups[0]["vars"]["etcd_nodes"]["h2"]["client_url"] == "https://10.0.0.2:2379"
    limited = Ctx(Inv(3), conns(3, with_data=("h1", "h2", "h3")), limit={"h2"})
    etcd_stage.run(limited)
    assert [p["hosts"] for p in limited.backups] == [["h2"]]
