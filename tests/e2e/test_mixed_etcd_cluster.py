"""cluster up with mixed etcd placement: one control-plane host with a member, two workers
that are members too (kubespray's inventory example has two control-plane members and one
on a worker; this is the smallest odd layout with both kinds).

The API server must be given every member, all three members must be healthy, and every
node Ready.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from e2e_names import sandbox_name
from etcd_helpers import cli, etcdctl, freeze_wheelhouse, ok

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(2400)]

NAME = sandbox_name("mixd")
KUBECTL = "/usr/bin/kubectl"


@pytest.fixture(scope="module")
def cluster(sandbox_factory, tmp_path_factory):
    inventory = sandbox_factory(NAME, 3, control_plane=1)
    work = Path(tempfile.mkdtemp(prefix="bootstrap-e2e-mixed-", dir="/tmp"))
    try:
        freeze_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))
        inv = yaml.safe_load(inventory.read_text())
        hosts = list(inv["all"]["hosts"])
        inv["all"]["children"]["etcd"] = {"hosts": {h: {} for h in hosts}}
        path = work / "hosts.yaml"
        path.write_text(yaml.safe_dump(inv))
        up = cli("cluster", "up", "-i", str(path), timeout=2000)
        yield {"up": up, "inventory": path, "hosts": hosts, "work": work}
    finally:
        sandbox_factory.down(NAME)
        shutil.rmtree(work, ignore_errors=True)


def ssh(host_index: int, cmd: str) -> str:
    return ok(cli("sandbox", "ssh", NAME, str(host_index), "--", cmd, timeout=120))


def test_every_node_is_ready(cluster):
    out = ok(cluster["up"])
    assert "Cluster is up:" in out, out[-3000:]
    admin = cluster["work"] / "artifacts" / "admin.conf"
    r = subprocess.run([KUBECTL, "--kubeconfig", str(admin), "get", "nodes", "-o", "json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    ready = {n["metadata"]["name"]: any(c["type"] == "Ready" and c["status"] == "True"
                                        for c in n["status"]["conditions"])
             for n in json.loads(r.stdout)["items"]}
    assert ready == {h: True for h in cluster["hosts"]}


def test_the_api_server_is_given_every_member(cluster):
    from bootstrap.config.inventory import load_inventory

    inv = load_inventory(cluster["inventory"])
    assert inv.topology == "mixed"
    unit = ssh(1, "systemctl cat kube-apiserver")
    found = re.search(r"--etcd-servers=([^\s'\"\\]+)", unit)
    assert found, unit
    assert found.group(1).split(",") == [m.client_url for m in inv.etcd_members], unit


def test_all_three_members_are_healthy_including_the_workers(cluster):
    from bootstrap.config.inventory import load_inventory

    eps = [m.client_url for m in load_inventory(cluster["inventory"]).etcd_members]
    health = json.loads(ssh(2, etcdctl("endpoint health -w json", eps)))
    assert len(health) == 3 and all(h["health"] for h in health), health
