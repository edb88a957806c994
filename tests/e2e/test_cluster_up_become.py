"""cluster up as kubespray users run it: a non-root ansible_user with become (sudo), on a host
that refuses root logins; and a dry run that writes nothing and reports an unreachable host.

One sandbox host gets a `deploy` user with passwordless sudo and the sandbox key, then
PermitRootLogin no. The dry run (the inventory also names a host nobody answers for) must
leave every place it could write unchanged (inventory dir, the sandbox's known_hosts,
~/.ssh, the wheelhouse and bootstrap caches, TMPDIR: listed before and after), report the
host as unreachable and still plan the reachable one. The real run must converge the host
into a Ready node through deploy + sudo, with root-owned files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from e2e_names import sandbox_name
from etcd_helpers import cli, cli_env, freeze_wheelhouse, ok

from bootstrap.errors import RemoteError
from bootstrap.sandbox.lifecycle import paths

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(2400)]

NAME = sandbox_name("become")
USER = "deploy"
KUBECTL = "/usr/bin/kubectl"

SETUP = f"""set -e
id {USER} >/dev/null 2>&1 || useradd -m -s /bin/bash {USER}
usermod -p '*' {USER}
install -d -m 0700 -o {USER} -g {USER} /home/{USER}/.ssh
install -m 0600 -o {USER} -g {USER} /root/.ssh/authorized_keys /home/{USER}/.ssh/authorized_keys
echo '{USER} ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/{USER}
chmod 0440 /etc/sudoers.d/{USER}
"""
# Sorted before the sandbox's own drop-in: sshd keeps the first value it reads.
DENY_ROOT = ("echo 'PermitRootLogin no' > /etc/ssh/sshd_config.d/00-no-root.conf && "
             "systemctl reload ssh")


def listing(roots: list[Path], skip: set[Path]) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    for root in roots:
        if not root.exists():
            out[str(root)] = ("absent",)
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if Path(dirpath, d) not in skip]
            for name in dirnames + filenames:
                p = Path(dirpath, name)
                st = p.lstat()
                out[str(p)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def cluster(sandbox_factory, tmp_path_factory):
    inventory = sandbox_factory(NAME, 1)
    work = Path(tempfile.mkdtemp(prefix="bootstrap-e2e-become-", dir="/tmp"))
    try:
        host = f"{NAME}-1"
        ok(cli("sandbox", "ssh", NAME, "1", "--", SETUP, timeout=120))
        ok(cli("sandbox", "ssh", NAME, "1", "--", DENY_ROOT, timeout=120))
        wheels = tmp_path_factory.mktemp("wheelhouse")
        freeze_wheelhouse(wheels)
        inv = yaml.safe_load(inventory.read_text())
        inv["all"]["hosts"][host].update(ansible_user=USER, ansible_become=True)
        (work / "hosts.yaml").write_text(yaml.safe_dump(inv))
        # The same cluster plus a worker that is not there, for the dry run.
        inv["all"]["hosts"]["gone"] = {"ansible_host": "127.0.0.1", "ansible_port": 1,
                                       "ip": "10.255.255.1"}
        inv["all"]["children"]["kube_node"]["hosts"]["gone"] = {}
        dry_dir = work / "dry"
        dry_dir.mkdir()
        (dry_dir / "hosts.yaml").write_text(yaml.safe_dump(inv))
        yield {"host": host, "work": work, "dry": dry_dir / "hosts.yaml", "wheels": wheels,
               "inventory": work / "hosts.yaml"}
    finally:
        sandbox_factory.down(NAME)
        shutil.rmtree(work, ignore_errors=True)


def test_dry_run_writes_nothing_and_reports_the_unreachable_host(cluster, tmp_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    sandbox_dir = paths(NAME)["dir"]
    roots = [cluster["dry"].parent, sandbox_dir, Path.home() / ".ssh",
             Path.home() / ".cache" / "bootstrap", cluster["wheels"], tmpdir]
    skip = {sandbox_dir / "hosts"}  # the hosts' own root filesystems: they run
    before = listing(roots, skip)
    env = {**cli_env(), "TMPDIR": str(tmpdir)}
    proc = subprocess.run([sys.executable, "-m", "bootstrap", "cluster", "up", "-i",
                           str(cluster["dry"]), "--dry-run"], capture_output=True, text=True,
                          timeout=900, env=env, cwd=cluster["dry"].parent)
    out = proc.stdout
    assert proc.returncode == 1, f"{out[-3000:]}\n{proc.stderr[-2000:]}"
    assert "unreachable: host gone" in out and "dry run: continuing with the reachable" in out
    assert "generated in a temporary directory, now removed" in out
    assert "cluster up (dry run):" in out and "change(s) would be made" in out
    assert "1 host(s) unreachable, not checked: gone" in proc.stderr.strip().splitlines()[-1]
    assert f"[{cluster['host']}]" in out  # the reachable host was planned
    assert listing(roots, skip) == before


def test_a_non_root_user_with_sudo_converges_the_host(cluster):
    proc = cli("cluster", "up", "-i", str(cluster["inventory"]), timeout=2000)
    out = ok(proc)
    assert "Cluster is up:" in out, out[-3000:]
    admin = cluster["work"] / "artifacts" / "admin.conf"
    nodes = subprocess.run([KUBECTL, "--kubeconfig", str(admin), "get", "nodes", "-o", "json"],
                           capture_output=True, text=True, timeout=60)
    assert nodes.returncode == 0, nodes.stderr
    (node,) = json.loads(nodes.stdout)["items"]
    assert node["metadata"]["name"] == cluster["host"]
    assert any(c["type"] == "Ready" and c["status"] == "True"
               for c in node["status"]["conditions"])


def test_files_are_roots_and_root_could_not_log_in(cluster):
    from bootstrap.config.inventory import load_inventory
    from bootstrap.remote.ssh import SSHConnection

    inv = load_inventory(cluster["inventory"])
    host = inv.hosts[cluster["host"]]
    with SSHConnection(host) as conn:
        assert conn.become_user == "root"
        out = conn.run("stat -c '%U %a' /etc/kubernetes/pki/ca.key /opt/bootstrap/current/bin/"
                       "bootstrap").stdout.split("\n")
        assert out[0] == "root 600" and out[1].startswith("root ")
    import dataclasses

    as_root = SSHConnection(dataclasses.replace(host, user="root", become=False))
    with pytest.raises(RemoteError, match="authentication refused for user root"):
        as_root.open()
    as_root.close()
