"""cluster upgrade orchestration over fake connections and a fake API: order, drain around
workers, a failed host stopping the rollout, resume with --limit, dry run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bootstrap.errors import UserError
from bootstrap.flows import cluster_upgrade as cu
from bootstrap.flows.drain import DrainError, DrainResult
from bootstrap.remote import Result
from bootstrap.remote.fake import FakeConnection

INVENTORY = """
all:
  hosts:
    cp1: {ansible_host: 10.9.0.1, ip: 10.9.0.1}
    cp2: {ansible_host: 10.9.0.2, ip: 10.9.0.2}
    cp3: {ansible_host: 10.9.0.3, ip: 10.9.0.3}
    w1: {ansible_host: 10.9.0.4, ip: 10.9.0.4}
    w2: {ansible_host: 10.9.0.5, ip: 10.9.0.5}
  children:
    kube_control_plane: {hosts: {cp1: {}, cp2: {}, cp3: {}}}
    kube_node: {hosts: {w1: {}, w2: {}}}
    etcd: {hosts: {cp1: {}, cp2: {}, cp3: {}}}
    k8s_cluster: {children: {kube_control_plane: {}, kube_node: {}}}
"""
OLD, NEW = "0.1.0", "0.2.0"
ALL = ["cp1", "cp2", "cp3", "w1", "w2"]


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


class World:
    """Hosts whose /opt/bootstrap/current moves when their upgrade command succeeds,
    and an API whose Nodes report the kubelet each host runs."""

    def __init__(self, current: dict[str, str] | None = None, fail: str | None = None,
                 drain_fails: str | None = None, never_ready: str | None = None):
        self.current = {h: OLD for h in ALL} | (current or {})
        self.fail, self.drain_fails, self.never_ready = fail, drain_fails, never_ready
        self.events: list[str] = []
        self.installed: list[str] = []
        self.conns: dict[str, FakeConnection] = {}
        self.cordoned: set[str] = set()

    def connect(self, hosts):
        for h in hosts:
            conn = FakeConnection(h.name)
            conn.respond(r"^readlink /opt/bootstrap/current$",
                         lambda cmd, n=h.name: Result(0, f"/opt/bootstrap/{self.current[n]}\n")
                         if self.current[n] else Result(1, "", "readlink: not a link"))
            conn.respond(r"bootstrap upgrade (apply|node)",
                         lambda cmd, n=h.name: self.upgrade(n, cmd))
            self.conns[h.name] = conn
        return dict(self.conns)

    def upgrade(self, host: str, cmd: str) -> Result:
        verb = re.search(r"upgrade (apply|node)", cmd).group(1)
        assert cmd.startswith(f"/opt/bootstrap/{NEW}/bin/bootstrap ")
        self.events.append(f"{verb} {host}")
        if host == self.fail:
            return Result(1, "[upgrade] moving kube-apiserver\n",
                          f"warning: kube-apiserver not healthy\nerror: upgrade to {NEW} "
                          "failed: kube-apiserver did not become healthy; rolled back to "
                          f"{OLD}\n")
        self.current[host] = NEW
        return Result(0, f"[upgrade {verb}] 4 changed\n")

    def install(self, inventory, conns, hosts, target, config_path, console) -> None:
        assert target == NEW
        self.installed = list(hosts)

    # the fake ClusterAPI
    admin = Path("/nonexistent/admin.conf")

    def node(self, name: str) -> dict:
        version = OLD if name == self.never_ready else self.current[name]
        return {"metadata": {"name": name}, "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"kubeletVersion": f"v1.32.0-bootstrap.{version}"}}}

    def drain(self, name, opts, log):
        self.events.append(f"drain {name}")
        if name == self.drain_fails:
            raise DrainError("unable to drain node 'w1': cannot delete Pods declare no "
                             "controller (use --force to override): default/bare")
        self.cordoned.add(name)
        return DrainResult(name, cordoned=True)

    def uncordon(self, name, log) -> bool:
        self.events.append(f"uncordon {name}")
        self.cordoned.discard(name)
        return True


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def run(inventory, world: World, **kwargs) -> cu.UpgradeResult:
    lines: list[str] = []
    clock = Clock()
    opts = cu.UpgradeOptions(to=kwargs.pop("to", NEW), **kwargs)

    class Console:
        def print(self, line, **_):
            lines.append(line)

    result = cu.cluster_upgrade(str(inventory), opts, console=Console(),
                                connect=world.connect, api=world, install=world.install,
                                clock=clock, sleep=clock.sleep)
    result.lines = lines  # type: ignore[attr-defined]
    return result


def test_control_plane_one_at_a_time_first_applies_then_workers_drained(inventory):
    world = World()
    result = run(inventory, world)
    assert world.installed == ALL
    assert world.events == ["apply cp1", "node cp2", "node cp3",
                            "drain w1", "node w1", "uncordon w1",
                            "drain w2", "node w2", "uncordon w2"]
    assert result.upgraded == ALL and set(world.current.values()) == {NEW}
    assert set(result.host_times) == set(ALL)
    assert not world.cordoned


def test_a_second_run_changes_nothing(inventory):
    world = World(current={h: NEW for h in ALL})
    result = run(inventory, world)
    assert result.upgraded == [] and result.planned == [] and world.events == []
    assert world.installed == []  # nothing installed when nothing is to do
    assert any("skip: already on 0.2.0" in line for line in result.lines)


def test_a_failed_host_stops_the_rollout_and_names_it(inventory):
    world = World(fail="cp2")
    with pytest.raises(cu.UpgradeStopped) as exc:
        run(inventory, world)
    msg = exc.value.line()
    assert "upgrade to 0.2.0 stopped at cp2" in msg
    assert "kube-apiserver did not become healthy; rolled back to 0.1.0" in msg
    assert "not upgraded: cp2, cp3, w1, w2" in msg and "upgraded in this run: cp1" in msg
    assert exc.value.exit_code == 1
    # Nothing after cp2 was touched; cp1 is on the new version, the rest on the old one.
    assert world.events == ["apply cp1", "node cp2"]
    assert world.current == {"cp1": NEW, "cp2": OLD, "cp3": OLD, "w1": OLD, "w2": OLD}

    # Continue: upgraded hosts are skipped (cp1 now runs nothing), the rest follow.
    world.fail = None
    world.events.clear()
    result = run(inventory, world)
    assert result.skipped == ["cp1"] and result.upgraded == ["cp2", "cp3", "w1", "w2"]
    assert world.events[0] == "node cp2"


def test_limit_continues_a_stopped_upgrade_but_keeps_the_control_plane_first(inventory):
    world = World(current={"cp1": NEW})
    with pytest.raises(UserError, match="the control plane is upgraded before the nodes: "
                                        "cp2, cp3 are not on 0.2.0 yet"):
        run(inventory, world, limit=frozenset({"w1"}))
    assert world.events == []
    with pytest.raises(UserError, match="first control-plane host cp1 runs `upgrade apply`"):
        run(inventory, World(), limit=frozenset({"cp2"}))
    result = run(inventory, world, limit=frozenset({"cp2", "cp3", "w2"}))
    assert result.upgraded == ["cp2", "cp3", "w2"]
    assert world.current["w1"] == OLD and world.installed == ["cp2", "cp3", "w2"]


def test_dry_run_prints_the_plan_and_runs_only_reads(inventory):
    world = World(current={"cp1": NEW})
    result = run(inventory, world, dry_run=True, serial=2)
    assert world.events == [] and world.installed == []
    for conn in world.conns.values():
        assert conn.commands == ["readlink /opt/bootstrap/current"]
    text = "\n".join(result.lines)
    assert "cp1" in text and "skip: already on 0.2.0" in text
    assert re.search(r"cp2 +control plane +0\.1\.0 -> 0\.2\.0 +upgrade node, wait until "
                     r"Ready", text)
    assert re.search(r"w2 +worker \(batch 1\) +0\.1\.0 -> 0\.2\.0 +cordon, drain, upgrade "
                     r"node, uncordon when Ready", text)
    assert result.planned == ["cp2", "cp3", "w1", "w2"]


def test_a_drain_that_fails_stops_before_the_worker_is_touched(inventory):
    world = World(current={h: NEW for h in ("cp1", "cp2", "cp3")}, drain_fails="w1")
    with pytest.raises(cu.UpgradeStopped) as exc:
        run(inventory, world)
    assert "stopped at w1: drain failed: unable to drain node 'w1'" in exc.value.line()
    assert "(use --force to override)" in exc.value.line()
    assert world.events == ["drain w1", "uncordon w1"]
    assert world.current["w1"] == OLD and world.current["w2"] == OLD


def test_serial_runs_a_batch_of_workers_together_and_reports_each_failure(inventory):
    world = World(current={h: NEW for h in ("cp1", "cp2", "cp3")}, fail="w2")
    with pytest.raises(cu.UpgradeStopped) as exc:
        run(inventory, world, serial=2)
    # Both workers of the batch ran; w1 made it, w2 rolled back and got its node back.
    assert world.current["w1"] == NEW and world.current["w2"] == OLD
    assert "stopped at w2" in exc.value.line()
    assert "uncordon w2" in world.events and not world.cordoned


def test_a_node_that_never_comes_back_ready_stops_the_rollout(inventory):
    world = World(never_ready="cp1")
    with pytest.raises(cu.UpgradeStopped, match="stopped at cp1: its node is not Ready on "
                                                "0.2.0 after 30s"):
        run(inventory, world, node_timeout=30)
    assert world.events == ["apply cp1"]


def test_bad_input_is_one_line(inventory):
    with pytest.raises(UserError, match="--to 'latest' is not a version"):
        run(inventory, World(), to="latest")
    with pytest.raises(UserError, match="--limit names unknown host"):
        run(inventory, World(), limit=frozenset({"nope"}))
    with pytest.raises(UserError, match="no bootstrap install on w2"):
        world = World()
        world.current["w2"] = ""
        run(inventory, world)
    (inventory.parent / "artifacts" / "admin.conf").unlink()
    with pytest.raises(UserError, match="no admin kubeconfig"):
        run(inventory, World())


def test_cli_is_registered_and_refuses_bad_input(inventory):
    from bootstrap.cli import main

    runner = CliRunner()
    out = runner.invoke(main, ["cluster", "upgrade", "--help"])
    assert out.exit_code == 0 and "--serial" in out.output and "--drain-timeout" in out.output
    out = runner.invoke(main, ["cluster", "upgrade", "-i", str(inventory), "--to", "v1.x"])
    assert out.exit_code == 2
    assert "is not a version" in out.output and "Traceback" not in out.output
    out = runner.invoke(main, ["cluster", "upgrade", "-i", str(inventory), "--to", NEW,
                               "--serial", "0"])
    assert out.exit_code == 2
