"""kubespray's `serial` and `upgrade_cluster_setup`: --serial N or N% (Ansible's rounding),
the inventory's serial when the flag is not given (flag > inventory > 1), bad values one
line and exit 2, and the note cluster up prints for upgrade_cluster_setup."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from test_cluster_up_flow import Connector
from test_cluster_upgrade import NEW, OLD, World

from bootstrap.config.inventory import load_inventory
from bootstrap.config.kubespray_vars import effective_config
from bootstrap.config.serial import DEFAULT_SERIAL, Serial, parse_serial
from bootstrap.errors import UserError
from bootstrap.flows import cluster_up as cup
from bootstrap.flows import cluster_upgrade as cu

WORKERS = [f"w{i}" for i in range(1, 11)]
HOSTS = ["cp1", *WORKERS]
INI = "\n".join([
    "cp1 ansible_host=10.9.0.1 ip=10.9.0.1",
    *(f"{w} ansible_host=10.9.1.{i} ip=10.9.1.{i}" for i, w in enumerate(WORKERS, 1)),
    "", "[kube_control_plane]", "cp1", "", "[etcd]", "cp1", "", "[kube_node]", *WORKERS, ""])
BAD = [0, -1, "0", "-1", "abc", "150%", "0%", "101%", "", "2.5", 2.5, True, [1, "20%"],
       None, "20 %x", "%"]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # files are named relative to the working directory


# --- parsing and the batch arithmetic -------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (1, Serial(count=1)), (3, Serial(count=3)), ("3", Serial(count=3)),
    (" 4 ", Serial(count=4)), ("20%", Serial(percent=20)), ("100%", Serial(percent=100)),
    ("1%", Serial(percent=1)), (" 50% ", Serial(percent=50))])
def test_a_number_of_hosts_or_a_percentage(value, expected):
    assert parse_serial(value) == expected
    assert str(parse_serial(value)) == str(value).strip()


@pytest.mark.parametrize("value", BAD)
def test_bad_values_say_what_is_expected(value):
    with pytest.raises(ValueError, match="is not a number of hosts \\(1 or more\\) or a "
                                         "percentage of them \\(1% to 100%\\)"):
        parse_serial(value)


@pytest.mark.parametrize("serial, hosts, size", [
    ("20%", 10, 2), ("20%", 9, 1),  # 1.8: rounded down
    ("20%", 5, 1), ("20%", 4, 1), ("20%", 1, 1),  # 0.8: at least one host
    ("1%", 3, 1), ("50%", 3, 1), ("50%", 4, 2), ("34%", 3, 1), ("67%", 3, 2),
    ("100%", 7, 7), ("29%", 100, 29),  # integers: Ansible's floats give 28 here
    ("57%", 100, 57), (3, 2, 3), (1, 10, 1)])
def test_batch_size_rounds_down_with_at_least_one_host(serial, hosts, size):
    assert parse_serial(serial).batch_size(hosts) == size


# --- the inventory's serial -------------------------------------------------------

def write(root: Path, group: str | None = None, text: str = "") -> Path:
    (root / "inventory.ini").write_text(INI)
    if group:
        (root / "group_vars" / group).mkdir(parents=True, exist_ok=True)
        (root / "group_vars" / group / "vars.yml").write_text(text)
    art = root / "artifacts"
    art.mkdir(exist_ok=True)
    (art / "admin.conf").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "a",
        "clusters": [{"name": "c", "cluster": {"server": "https://10.9.0.1:6443"}}],
        "contexts": [{"name": "a", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {}}]}))
    assert root == Path.cwd()
    return Path("inventory.ini")  # relative: messages name files as the user gave them


@pytest.mark.parametrize("group", ["all", "k8s_cluster"])
@pytest.mark.parametrize("text, value", [("serial: 20%\n", "20%"), ("serial: 3\n", "3"),
                                         ("serial: '2'\n", "2")])
def test_serial_is_read_from_group_vars_with_its_origin(tmp_path, group, text, value):
    eff = effective_config(load_inventory(str(write(tmp_path, group, "x: 1\n" + text))))
    assert str(eff.upgrade_serial) == value
    setting = eff.sources["upgradeSerial"]
    assert setting.value == value
    assert setting.source == f"serial (group_vars/{group}/vars.yml:2)"


def test_without_serial_the_default_is_one_host(tmp_path):
    eff = effective_config(load_inventory(str(write(tmp_path))))
    assert eff.upgrade_serial == DEFAULT_SERIAL == Serial(count=1)
    assert eff.sources["upgradeSerial"].value == "1"
    assert eff.sources["upgradeSerial"].source == "default"


def test_serial_from_an_ini_group_vars_section(tmp_path):
    path = write(tmp_path)
    path.write_text(INI + "\n[all:vars]\nserial=30%\n")
    eff = effective_config(load_inventory(str(path)))
    assert eff.upgrade_serial == Serial(percent=30)


def test_inventory_check_shows_where_serial_came_from(tmp_path):
    from bootstrap.cli import main

    inv = write(tmp_path, "all", "serial: 20%\n")
    out = CliRunner().invoke(main, ["inventory", "check", "-i", str(inv)])
    assert out.exit_code == 0, out.output
    assert re.search(r"upgradeSerial +20% +serial \(group_vars/all/vars\.yml:1\)", out.output)


@pytest.mark.parametrize("value", ["0", "-1", "abc", "150%", "0%", "[1, 2]", "true", "2.5"])
def test_a_bad_inventory_serial_is_one_line_naming_the_file(tmp_path, value):
    inv = write(tmp_path, "all", f"serial: {value}\n")
    with pytest.raises(UserError) as ei:
        effective_config(load_inventory(str(inv)))
    line = ei.value.line()
    assert line.startswith("group_vars/all/vars.yml:1: serial: "), line
    assert "is not a number of hosts" in line and "kubespray's default" in line
    assert "\n" not in line and ei.value.exit_code == 2


def test_serial_must_be_the_same_on_every_cluster_host(tmp_path):
    inv = write(tmp_path, "all", "serial: 2\n")
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / "w3.yml").write_text("serial: 5\n")
    with pytest.raises(UserError, match="serial is 5 for host w3 but 2 for cp1"):
        effective_config(load_inventory(str(inv)))


# --- cluster upgrade: batches and precedence ----------------------------------------

class Hosts(World):
    def __init__(self, current=None):
        self.current = {h: OLD for h in HOSTS} | (current or {})
        self.fail = self.drain_fails = self.never_ready = None
        self.events, self.installed, self.conns, self.cordoned = [], [], {}, set()


def plan(inventory: Path, world: World | None = None, **kwargs) -> cu.UpgradeResult:
    lines: list[str] = []

    class Console:
        def print(self, line, **_):
            lines.append(line)

    world = world or Hosts()
    result = cu.cluster_upgrade(str(inventory), cu.UpgradeOptions(to=NEW, **kwargs),
                                console=Console(), connect=world.connect, api=world,
                                install=world.install)
    result.lines = lines  # type: ignore[attr-defined]
    return result


def batches(result) -> dict[str, int]:
    return {s.host: s.batch for s in result.plan if s.kind == "worker"}


def test_a_percentage_of_the_workers_makes_the_batches(tmp_path):
    result = plan(write(tmp_path), dry_run=True, serial="20%")
    assert result.batch_size == 2
    assert batches(result) == {w: i // 2 + 1 for i, w in enumerate(WORKERS)}
    text = "\n".join(result.lines)
    assert re.search(r"w10 +worker \(batch 5\) +0\.1\.0 -> 0\.2\.0", text)
    assert "workers: 2 at a time (--serial 20% of 10 workers)" in text


def test_the_percentage_is_of_the_workers_this_run_upgrades(tmp_path):
    # w1..w5 are done: 20% of the 5 left is 1 (a fraction rounds down, at least 1).
    world = Hosts(current={"cp1": NEW, **{w: NEW for w in WORKERS[:5]}})
    result = plan(write(tmp_path), world, dry_run=True, serial="20%")
    assert result.batch_size == 1
    assert batches(result) == {**{w: 0 for w in WORKERS[:5]},
                               **{w: i + 1 for i, w in enumerate(WORKERS[5:])}}
    text = "\n".join(result.lines)
    assert re.search(r"w1 +worker +0\.2\.0 +skip: already on 0\.2\.0", text)
    assert "workers: 1 at a time (--serial 20% of 5 workers)" in text
    # --limit too: 50% of the 3 chosen is 1.
    result = plan(write(tmp_path), Hosts(current={"cp1": NEW}), dry_run=True, serial="50%",
                  limit=frozenset({"w2", "w4", "w6"}))
    assert result.batch_size == 1 and result.planned == ["w2", "w4", "w6"]


def test_batches_run_together_in_order(tmp_path):
    world = Hosts(current={"cp1": NEW})
    result = plan(write(tmp_path, "all", "serial: 50%\n"), world)
    assert result.batch_size == 5 and result.upgraded == WORKERS
    drains = [e for e in world.events if e.startswith("drain")]
    # Every worker of batch 1 is drained before any of batch 2.
    assert set(drains[:5]) == {f"drain {w}" for w in WORKERS[:5]}
    assert set(drains[5:]) == {f"drain {w}" for w in WORKERS[5:]}


@pytest.mark.parametrize("flag, inventory, size, said", [
    (None, None, 1, "workers: 1 at a time (default)"),
    (None, "serial: 30%\n", 3,
     "workers: 3 at a time (serial: 30% of 10 workers, group_vars/all/vars.yml:1)"),
    (None, "serial: 4\n", 4, "workers: 4 at a time (serial: 4, group_vars/all/vars.yml:1)"),
    ("2", "serial: 30%\n", 2, "workers: 2 at a time (--serial 2)"),
    (5, "serial: 1\n", 5, "workers: 5 at a time (--serial 5)"),
    ("10%", "serial: 4\n", 1, "workers: 1 at a time (--serial 10% of 10 workers)"),
])
def test_the_flag_wins_over_the_inventory_which_wins_over_the_default(
        tmp_path, flag, inventory, size, said):
    inv = write(tmp_path, "all" if inventory else None, inventory or "")
    result = plan(inv, dry_run=True, serial=flag)
    assert result.batch_size == size
    assert said in result.lines


@pytest.mark.parametrize("value", [v for v in BAD if v is not None])  # None: not given
def test_a_bad_serial_option_is_refused_before_any_host(tmp_path, value):
    world = Hosts()
    with pytest.raises(UserError) as ei:
        plan(write(tmp_path), world, serial=value)
    line = ei.value.line()
    assert line.startswith("--serial ") and "is not a number of hosts" in line, line
    assert "e.g. --serial 2, or --serial 20% as kubespray's default" in line
    assert world.conns == {} and ei.value.exit_code == 2


@pytest.mark.parametrize("value", ["0", "-1", "abc", "150%", "0%", "2.5", ""])
def test_the_cli_says_a_bad_serial_in_one_line_and_exits_2(tmp_path, value):
    from bootstrap.cli import main

    out = CliRunner().invoke(main, ["cluster", "upgrade", "-i", str(write(tmp_path)),
                                    "--to", NEW, "--serial", value])
    assert out.exit_code == 2
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --serial "), out.output
    assert "Traceback" not in out.output and "Usage" not in out.output


def test_the_cli_passes_the_serial_through(tmp_path, monkeypatch):
    from bootstrap.cli import cluster_upgrade_cmd, main

    seen = []

    def fake(inventory, opts, **_):
        seen.append(opts.serial)
        return cu.UpgradeResult(NEW, [], planned=[])

    monkeypatch.setattr(cluster_upgrade_cmd, "cluster_upgrade", fake)
    inv = str(write(tmp_path))
    for args in (["--serial", "20%"], []):
        out = CliRunner().invoke(main, ["cluster", "upgrade", "-i", inv, "--to", NEW,
                                        "--dry-run", *args])
        assert out.exit_code == 0, out.output
    assert seen == ["20%", None]  # None: the inventory's serial, else 1


# --- upgrade_cluster_setup -----------------------------------------------------

NOTE = ("upgrade_cluster_setup (group_vars/k8s_cluster/vars.yml:1) is true: cluster up does "
        "not upgrade; upgrades are done by `bootstrap cluster upgrade -i {inv} --to VERSION`")


@pytest.mark.parametrize("value", ["true", "yes", "'true'", "True"])
def test_upgrade_cluster_setup_gets_one_note_from_cluster_up(tmp_path, value):
    inv = write(tmp_path, "k8s_cluster", f"upgrade_cluster_setup: {value}\n")
    result = cup.cluster_up(str(inv), tags="kube-config-dir", connect=Connector())
    assert not result.recap.failed
    notes = [w for w in result.warnings if "upgrade_cluster_setup" in w]
    assert notes == [NOTE.format(inv=load_inventory(str(inv)).path)]


@pytest.mark.parametrize("text", ["upgrade_cluster_setup: false\n", "x: 1\n"])
def test_no_note_without_upgrade_cluster_setup(tmp_path, text):
    inv = write(tmp_path, "k8s_cluster", text)
    result = cup.cluster_up(str(inv), tags="kube-config-dir", connect=Connector())
    assert not [w for w in result.warnings if "upgrade_cluster_setup" in w]


def test_cluster_up_prints_the_note_and_succeeds(tmp_path, monkeypatch):
    from bootstrap.cli import cluster_cmd, main

    real = cluster_cmd.cluster_up
    monkeypatch.setattr(cluster_cmd, "cluster_up",
                        lambda *a, **kw: real(*a, **{**kw, "tags": "kube-config-dir"},
                                              connect=Connector()))
    inv = write(tmp_path, "k8s_cluster", "upgrade_cluster_setup: true\n")
    out = CliRunner().invoke(main, ["cluster", "up", "-i", str(inv)])
    assert out.exit_code == 0, out.output
    lines = [ln for ln in out.output.splitlines() if "upgrade_cluster_setup" in ln]
    assert len(lines) == 1, out.output
    assert lines[0].startswith("warning: upgrade_cluster_setup (")
    assert lines[0].endswith(f"`bootstrap cluster upgrade -i {load_inventory(str(inv)).path} "
                             "--to VERSION`")
