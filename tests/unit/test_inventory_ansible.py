"""Our inventory reader against Ansible's own, on the same files.

Ansible is the definition of what a kubespray inventory means, so its
``ansible-inventory`` (installed with the test extras, via molecule) is an
oracle independent of the code under test: every resolved variable and every
group's host list must match.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bootstrap.config.inventory import load_inventory

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data" / "inventories"
BIN = Path(sys.executable).parent
ANSIBLE_INVENTORY = shutil.which("ansible-inventory", path=str(BIN)) or \
    shutil.which("ansible-inventory")

pytestmark = pytest.mark.skipif(ANSIBLE_INVENTORY is None,
                                reason="ansible-core (test extra, via molecule) not installed")

# Ansible's group host order (own hosts first, then descendants'), as Python sees it.
_GROUPS_SNIPPET = """
import json, sys
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
im = InventoryManager(loader=DataLoader(), sources=sys.argv[1:])
im._inventory._groups_dict_cache = {}  # filled while parsing, before the final reconcile
print(json.dumps(im.get_groups_dict()))
"""


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
               ANSIBLE_HOME=str(tmp_path / "ansible-home"),
               ANSIBLE_INVENTORY_UNPARSED_FAILED="true", ANSIBLE_NOCOLOR="1")
    return env


def ansible_view(path: Path | list[Path], tmp_path: Path) -> tuple[dict, dict]:
    """(hostvars, groups) as Ansible resolves one or several inventory sources."""
    env = _env(tmp_path)
    paths = [str(p) for p in (path if isinstance(path, list) else [path])]
    listed = subprocess.run([ANSIBLE_INVENTORY, *(a for p in paths for a in ("-i", p)),
                             "--list"], env=env,
                            capture_output=True, text=True, timeout=120, check=True)
    groups = subprocess.run([sys.executable, "-c", _GROUPS_SNIPPET, *paths], env=env,
                            capture_output=True, text=True, timeout=120, check=True)
    return json.loads(listed.stdout)["_meta"]["hostvars"], json.loads(groups.stdout)


CASES = [
    REPO / "inventories" / "sandbox-stacked" / "hosts.yaml",
    REPO / "inventories" / "sandbox-external" / "inventory.ini",
    REPO / "inventories" / "single-node" / "hosts.yaml",
    REPO / "inventories" / "production-like" / "inventory.ini",
    DATA / "ok-precedence" / "inventory.ini",
]


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_same_vars_and_groups_as_ansible(path, tmp_path):
    inv = load_inventory(path)
    hostvars, groups = ansible_view(path, tmp_path)
    for name in inv.hosts:
        assert inv.vars_for(name) == hostvars.get(name, {}), name
    for group, members in groups.items():
        expected = [h for h in members if h in inv.hosts]
        assert inv.groups[group] == expected, group


def test_yaml_nesting_and_vars_directories_match_ansible(tmp_path):
    root = tmp_path / "inv"
    (root / "group_vars" / "all" / "sub").mkdir(parents=True)
    (root / "host_vars").mkdir()
    (root / "hosts.yml").write_text(
        "all:\n"
        "  vars: {v: all-inline, u: all-inline}\n"
        "  hosts:\n"
        "    n1: {ansible_host: 10.0.0.1, h: inline}\n"
        "  children:\n"
        "    k8s_cluster:\n"
        "      vars: {v: k8s-inline}\n"
        "      children:\n"
        "        kube_control_plane:\n"
        "          vars: {v: cp-inline}\n"
        "          hosts:\n"
        "            n1:\n"
        "            'n[2:3]:2200': {p: ranged}\n"
        "        kube_node:\n"
        "          hosts: {w1: {ansible_host: 10.0.1.1}}\n"
        "    etcd:\n"
        "      children:\n"
        "        kube_control_plane:\n"
        "    calico_rr:\n"
        "      hosts: {}\n")
    (root / "group_vars" / "all" / "a.yml").write_text("u: all-file\nw: a\n")
    (root / "group_vars" / "all" / "sub" / "b.yaml").write_text("w: sub-b\n")
    (root / "group_vars" / "all" / "c.txt").write_text("w: skipped\n")
    (root / "group_vars" / "k8s_cluster.json").write_text('{"v": "k8s-file"}')
    (root / "group_vars" / "kube_node").write_text("v: node-file\n")
    (root / "host_vars" / "n2.yml").write_text("h: host-file\n")
    inv = load_inventory(root / "hosts.yml")
    hostvars, groups = ansible_view(root / "hosts.yml", tmp_path)
    assert set(inv.hosts) == {"n1", "n2", "n3", "w1"}
    for name in inv.hosts:
        assert inv.vars_for(name) == hostvars[name], name
    for group, members in groups.items():
        assert inv.groups[group] == members, group
