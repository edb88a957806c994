"""cluster up orchestration over fake connections: stages, tags, limit, dry run."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootstrap.errors import UserError
from bootstrap.flows import cluster_up as cu
from bootstrap.flows.workflow import select_by_tags
from bootstrap.remote import Result
from bootstrap.remote.fake import FakeConnection

INVENTORY = """
all:
  hosts:
    cp1: {ansible_host: 10.9.0.1, ip: 10.9.0.1}
    cp2: {ansible_host: 10.9.0.2, ip: 10.9.0.2}
    cp3: {ansible_host: 10.9.0.3, ip: 10.9.0.3}
    w1: {ansible_host: 10.9.0.4, ip: 10.9.0.4}
  children:
    kube_control_plane: {hosts: {cp1: {}, cp2: {}, cp3: {}}}
    kube_node: {hosts: {cp1: {}, cp2: {}, cp3: {}, w1: {}}}
    etcd: {hosts: {cp1: {}, cp2: {}, cp3: {}}}
    k8s_cluster: {children: {kube_control_plane: {}, kube_node: {}}}
"""


@pytest.fixture
def inventory(tmp_path) -> Path:
    path = tmp_path / "hosts.yaml"
    path.write_text(INVENTORY)
    return path


class Connector:
    def __init__(self, etcd_has_data: bool = False):
        self.conns: dict[str, FakeConnection] = {}
        self.marker = "has-data" if etcd_has_data else "no-data"

    def __call__(self, hosts):
        probe = {r"uname -m": Result(0, f"x86_64\n{self.marker}\n")}
        self.conns = {h.name: FakeConnection(h.name, responses=probe) for h in hosts}
        return dict(self.conns)


def test_phase_order_follows_a_person_doing_it_by_hand():
    assert [p.name for p in cu.up_phases()] == [
        "prepare", "pki", "agents", "etcd", "containerd", "loadbalancer", "control-plane",
        "nodes", "kube-proxy", "dns", "wait"]


def test_tags_select_whole_phases_or_tasks_inside_roles():
    wf = cu.up_workflow()
    assert select_by_tags(wf, {"etcd", "pki"}) == {"pki": None, "etcd": None}
    # A task tag runs the phase holding it, filtered to those tasks.
    assert select_by_tags(wf, {"sysctl"}) == {"prepare": {"sysctl"}}
    assert list(select_by_tags(wf, None)) == [p.name for p in cu.up_phases()]
    # A tag several roles carry selects every phase holding them.
    assert set(select_by_tags(wf, {"kubeadm"})) == {"control-plane", "nodes"}


def test_unknown_tag_is_an_error_naming_the_known_tags(inventory):
    connect = Connector()
    with pytest.raises(UserError) as ei:
        cu.cluster_up(str(inventory), tags="sysctl,nope", connect=connect)
    assert "'nope'" in ei.value.line() and "known tags: agents, containerd" in ei.value.line()
    assert ei.value.exit_code == 2 and connect.conns == {}


def test_unknown_limit_host_is_a_user_error(inventory):
    with pytest.raises(UserError, match="nope"):
        cu.cluster_up(str(inventory), limit="cp1,nope", connect=Connector())


def test_dry_run_writes_nothing_on_hosts_or_beside_the_inventory(inventory):
    connect = Connector()
    result = cu.cluster_up(str(inventory), tags="pki,etcd", dry_run=True, connect=connect)
    assert result.recap.dry_run and not result.recap.failed
    assert result.recap.changed > 0  # everything is still to do
    assert all(not c.puts for c in connect.conns.values())
    assert not any("systemctl restart" in cmd or "systemctl start" in cmd
                   for c in connect.conns.values() for cmd in c.commands)
    assert not (inventory.parent / "artifacts").exists()  # tests/unit/test_cluster_up_dry_run.py
    assert set(result.recap.per_host) == {"cp1", "cp2", "cp3", "w1"}


def test_real_run_makes_the_pki_in_the_artifacts_dir(inventory):
    result = cu.cluster_up(str(inventory), tags="pki", connect=Connector())
    assert not result.recap.failed and result.pki_created > 0
    pki = inventory.parent / "artifacts" / "pki"
    assert (pki / "etcd" / "ca.key").is_file()
    assert (pki / "nodes" / "cp2" / "etcd" / "peer.crt").is_file()
    assert oct((inventory.parent / "artifacts").stat().st_mode & 0o777) == "0o700"
    assert set(result.recap.per_host) == {"cp1", "cp2", "cp3", "w1"}


def test_limit_keeps_plays_on_the_named_hosts_but_probes_all_etcd(inventory):
    connect = Connector(etcd_has_data=True)
    result = cu.cluster_up(str(inventory), tags="pki,etcd", dry_run=True, limit="cp2",
                           connect=connect)
    assert set(result.recap.per_host) == {"cp2"}
    # Membership needs every member's state, so all etcd hosts are connected.
    assert set(connect.conns) == {"cp1", "cp2", "cp3"}
    assert all(any("uname -m" in cmd for cmd in connect.conns[h].commands)
               for h in ("cp1", "cp2", "cp3"))


def test_even_etcd_group_is_refused_before_touching_hosts(tmp_path):
    path = tmp_path / "hosts.yaml"
    path.write_text(INVENTORY.replace("etcd: {hosts: {cp1: {}, cp2: {}, cp3: {}}}",
                                      "etcd: {hosts: {cp1: {}, cp2: {}}}"))
    connect = Connector()
    with pytest.raises(UserError, match="odd number"):
        cu.cluster_up(str(path), tags="etcd", dry_run=True, connect=connect)
    assert connect.conns == {}


def test_cluster_vars_come_from_the_cluster_config():
    from bootstrap.config.model import ClusterConfig, Etcd, LocalEtcd

    cfg = ClusterConfig(cluster_name="prod", etcd=Etcd(local=LocalEtcd(
        data_dir="/data/etcd", extra_args={"quota-backend-bytes": "8589934592"})))
    out = cu.cluster_vars(cfg)
    assert out["etcd_data_dir"] == "/data/etcd"
    assert out["etcd_extra_args"] == {"quota-backend-bytes": "8589934592"}
    assert out["cluster_name"] == "prod"


INVENTORY_1_TO_3 = """
all:
  hosts:
    cp1: {ansible_host: 10.9.0.1, ip: 10.9.0.1}
    cp2: {ansible_host: 10.9.0.2, ip: 10.9.0.2}
    cp3: {ansible_host: 10.9.0.3, ip: 10.9.0.3}
  children:
    kube_control_plane: {hosts: {cp1: {}, cp2: {}, cp3: {}}}
    kube_node: {hosts: {cp1: {}, cp2: {}, cp3: {}}}
    etcd: {hosts: {cp1: {}, cp2: {}, cp3: {}}}
    k8s_cluster: {children: {kube_control_plane: {}, kube_node: {}}}
"""


class GrowingConnector:
    """cp1 runs a 1-member etcd (has data, member list names it); cp2, cp3 are new."""

    def __init__(self):
        self.conns: dict[str, FakeConnection] = {}

    def __call__(self, hosts):
        members = '{"members": [{"ID": 1, "name": "cp1", "peerURLs": ["https://10.9.0.1:2380"],' \
                  ' "clientURLs": ["https://10.9.0.1:2379"]}]}'
        for h in hosts:
            data = "has-data" if h.name == "cp1" else "no-data"
            self.conns[h.name] = FakeConnection(h.name, responses={
                r"uname -m": Result(0, f"x86_64\n{data}\n"),
                r"member list": Result(0, members),
                r"endpoint health": Result(0, '[{"endpoint": "https://10.9.0.1:2379",'
                                              ' "health": true}]'),
            })
        return dict(self.conns)


def test_tags_sysctl_on_a_growing_etcd_cluster_adds_no_member(tmp_path):
    """The issue's case: `--tags sysctl` while the etcd group grows 1 -> 3 must not
    run `member add` (which would leave a member that never starts)."""
    path = tmp_path / "hosts.yaml"
    path.write_text(INVENTORY_1_TO_3)
    connect = GrowingConnector()
    result = cu.cluster_up(str(path), tags="sysctl", connect=connect)
    assert result.ran == ["prepare"]
    cmds = [c for conn in connect.conns.values() for c in conn.commands]
    assert not any("member add" in c or "member list" in c for c in cmds)
    assert any("sysctl" in c or "/proc/sys/net/bridge" in c for c in cmds)


def test_growing_etcd_cluster_adds_members_through_the_engine_in_dry_run(tmp_path):
    path = tmp_path / "hosts.yaml"
    path.write_text(INVENTORY_1_TO_3)
    connect = GrowingConnector()
    result = cu.cluster_up(str(path), tags="etcd", dry_run=True, connect=connect)
    cmds = {h: c.commands for h, c in connect.conns.items()}
    # The member list is read (a fact), the add is only counted, never run.
    assert any("member list" in c for c in cmds["cp2"])
    assert not any("member add" in c for cs in cmds.values() for c in cs)
    assert result.recap.per_host["cp2"].changed > 0


@pytest.mark.parametrize("args, needle", [
    (["--tags", "nope"], "no phase or task is tagged 'nope'"),
    (["--skip-phases", "nope"], "unknown phase 'nope'"),
    (["--limit", "cp1,ghost"], "unknown host(s): ghost"),
])
def test_bad_cluster_up_flags_are_one_line_exit_2(inventory, args, needle):
    from click.testing import CliRunner

    from bootstrap.cli import main

    res = CliRunner().invoke(main, ["cluster", "up", "-i", str(inventory), *args])
    assert res.exit_code == 2 and needle in res.output and res.output.count("\n") == 1, res.output
