"""kubespray's `serial` and `upgrade_cluster_setup`: --serial N or N% (Ansible's rounding),
the inventory's serial when the flag is not given (flag > inventory > 1), bad values one
line and exit 2, and the note cluster up prints for upgrade_cluster_setup."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bootstrap.config.inventory import load_inventory
from bootstrap.config.kubespray_vars import effective_config
from bootstrap.config.serial import DEFAULT_SERIAL, Serial, parse_serial
from bootstrap.errors import UserError

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
