"""`bootstrap upgrade plan|apply|node` between two real installs on a sandbox cluster.

One control-plane host and one worker from `cluster up` (this tree's version),
a second wheelhouse built from the same tree as the next minor version and
installed beside the running one on both hosts (roles/agents with
agents_switch_current: false), then, in order: the worker refuses to go
first; the fault hook makes the new API server fail its health check and the
upgrade rolls back; `upgrade apply` moves the control plane and the host's
node units; a second apply has nothing to do; `upgrade node` moves the
worker, whose running pod survives the kubelet's restart. The versions are
read where users read them: /version, kubeletVersion, kubeadm-config.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import yaml
from e2e_names import sandbox_name
from etcd_helpers import ok, sandbox_cluster

from bootstrap import __version__, component_version
from bootstrap.engine import Play, run_play
from bootstrap.flows import versions

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(2400)]

NAME = sandbox_name("hup")
KUBECTL = "/usr/bin/kubectl"
OLD = __version__
_v = versions.parse(OLD)
NEW = f"{_v.major}.{_v.minor + 1}.0"
NEW_BIN = versions.agents_bin(NEW)


def eventually(fn, timeout: float = 180, interval: float = 2.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


class Env:
    def __init__(self, cluster):
        self.c = cluster
        inv = cluster.inventory
        self.cp = inv.control_plane[0].name
        self.worker = next(h.name for h in inv.workers if h.name != self.cp)
        self.admin = cluster.path.parent / "artifacts" / "admin.conf"

    def sh(self, host: str, cmd: str, timeout: float = 900):
        return self.c.conns[host].run(cmd, check=False, timeout=timeout)

    def kubectl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([KUBECTL, "--kubeconfig", str(self.admin), *args],
                              capture_output=True, text=True, timeout=120)

    def json(self, *args: str) -> dict:
        return json.loads(ok(self.kubectl(*args, "-o", "json")))

    def kubelet_versions(self) -> dict[str, str]:
        return {n["metadata"]["name"]: n["status"]["nodeInfo"]["kubeletVersion"]
                for n in self.json("get", "nodes")["items"]}

    def server_version(self) -> str:
        return json.loads(ok(self.kubectl("get", "--raw", "/version")))["gitVersion"]

    def recorded(self) -> str:
        cm = self.json("-n", "kube-system", "get", "cm", "kubeadm-config")
        return yaml.safe_load(cm["data"]["ClusterConfiguration"])["kubernetesVersion"]


@pytest.fixture(scope="module")
def env(sandbox_factory, tmp_path_factory):
    from bootstrap.flows.wheelhouse_version import version_agents_vars

    with sandbox_cluster(sandbox_factory, NAME, 2, tmp_path_factory.mktemp("wheelhouse"),
                         control_plane=1) as cluster:
        e = Env(cluster)
        agent_vars = version_agents_vars(NEW, switch_current=False)
        recap = run_play(Play(name=f"install {NEW} beside {OLD}", hosts=[e.cp, e.worker],
                              roles=["agents"], vars=agent_vars),
                         cluster.inventory, cluster.conns)
        recap.raise_on_failure()
        yield e


def test_the_new_install_is_beside_the_old_one_and_nothing_switched(env):
    for host in (env.cp, env.worker):
        r = env.sh(host, f"readlink /opt/bootstrap/current; {NEW_BIN}/python -c "
                         "'import bootstrap; print(bootstrap.__version__)'")
        assert r.ok, r.stderr
        assert r.stdout.split() == [f"/opt/bootstrap/{OLD}", NEW]
    assert env.server_version() == component_version(OLD)
    assert set(env.kubelet_versions().values()) == {component_version(OLD)}
    assert env.recorded() == f"v{OLD}"
    # Every unit names its install, so the upgrade can move them one at a time.
    for host in (env.cp, env.worker):
        execs = env.sh(host, "grep -h ^ExecStart= /etc/systemd/system/kube*.service "
                             "/etc/systemd/system/bootstrap-dns.service").stdout.split()
        assert execs and all(e.startswith(f"ExecStart={versions.agents_bin(OLD)}/")
                             for e in execs if e.startswith("ExecStart=")), execs


def test_plan_names_every_component_and_what_changes(env):
    r = env.sh(env.cp, f"{NEW_BIN}/bootstrap upgrade plan {NEW}")
    assert r.ok, r.stdout + r.stderr
    out = r.stdout
    for comp in ("apiserver", "controller-manager", "scheduler", "kubelet", "kube-proxy", "dns"):
        assert comp in out
    assert f"/opt/bootstrap/{OLD}/bin -> {NEW_BIN}" in out
    assert "etcd:" in out and "healthy" in out
    assert f"bootstrap upgrade apply {NEW}" in out


def test_a_worker_may_not_go_before_the_control_plane(env):
    r = env.sh(env.worker, f"{NEW_BIN}/bootstrap upgrade node --yes")
    assert r.exit_code == 2, r.stdout + r.stderr
    assert f"upgrade apply {NEW}" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert env.sh(env.worker, "readlink /opt/bootstrap/current").stdout.strip() == \
        f"/opt/bootstrap/{OLD}"


def test_a_new_api_server_failing_its_health_check_is_rolled_back(env):
    r = env.sh(env.cp, f"BOOTSTRAP_UPGRADE_FAIL_HEALTH=kube-apiserver {NEW_BIN}/bootstrap "
                       f"upgrade apply {NEW} --yes --health-timeout 60")
    assert r.exit_code == 1, r.stdout + r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "kube-apiserver did not become healthy" in last
    assert f"rolled back kube-apiserver to {OLD}" in last
    # Back on the old install, serving, and nothing else moved.
    assert eventually(lambda: env.kubectl("get", "--raw", "/readyz").returncode == 0)
    assert env.server_version() == component_version(OLD)
    assert env.recorded() == f"v{OLD}"
    units = env.sh(env.cp, "grep -h ^ExecStart= /etc/systemd/system/kube-*.service "
                           "/etc/systemd/system/kubelet.service").stdout
    assert NEW_BIN not in units
    assert env.sh(env.cp, "readlink /opt/bootstrap/current").stdout.strip() == \
        f"/opt/bootstrap/{OLD}"


def test_apply_moves_the_control_plane_and_records_the_version(env):
    r = env.sh(env.cp, f"{NEW_BIN}/bootstrap upgrade apply {NEW} --yes")
    assert r.ok, r.stdout[-3000:] + r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[-1].startswith("[upgrade apply] ") and lines[-1].endswith(" changed")
    moved = [ln for ln in lines if "Moving " in ln]
    assert [ln.split("Moving ")[1].split()[0] for ln in moved][:3] == \
        ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]
    assert env.server_version() == component_version(NEW)
    assert env.recorded() == f"v{NEW}"
    assert env.sh(env.cp, "readlink /opt/bootstrap/current").stdout.strip() == \
        f"/opt/bootstrap/{NEW}"
    backup = env.sh(env.cp, "ls -d /etc/kubernetes/tmp/bootstrap-backup-*/etcd-snapshot.db "
                            "/etc/kubernetes/tmp/bootstrap-backup-*/kubernetes/admin.conf")
    assert backup.ok and backup.stdout.count("\n") >= 2, backup.stderr
    assert eventually(lambda: env.kubelet_versions()[env.cp] == component_version(NEW))
    # The old install is still there, beside the new one.
    assert env.sh(env.cp, f"test -x {versions.agents_bin(OLD)}/bootstrap-apiserver").ok


def test_a_second_apply_has_nothing_to_do(env):
    r = env.sh(env.cp, f"{NEW_BIN}/bootstrap upgrade apply {NEW} --yes")
    assert r.ok, r.stderr
    assert f"already at {NEW}: nothing to do" in r.stdout
    assert r.stdout.strip().splitlines()[-1] == "[upgrade apply] 0 changed (converged)"


def test_node_moves_the_worker_and_its_pod_keeps_running(env):
    overrides = json.dumps({"spec": {"nodeName": env.worker}})
    ok(env.kubectl("run", "sleeper", "--image=busybox:1.35", "--restart=Never",
                   "--overrides", overrides, "--", "sleep", "3600"))
    try:
        ok(env.kubectl("wait", "--for=condition=Ready", "pod/sleeper", "--timeout=180s"))
        before = env.json("get", "pod", "sleeper")["status"]["containerStatuses"][0]
        r = env.sh(env.worker, f"{NEW_BIN}/bootstrap upgrade node --yes")
        assert r.ok, r.stdout[-3000:] + r.stderr
        assert r.stdout.strip().splitlines()[-1].startswith("[upgrade node] ")
        assert eventually(lambda: env.kubelet_versions()[env.worker] == component_version(NEW))
        assert env.sh(env.worker, "readlink /opt/bootstrap/current").stdout.strip() == \
            f"/opt/bootstrap/{NEW}"
        assert env.sh(env.worker, f"test -x {versions.agents_bin(OLD)}/bootstrap-kubelet").ok
        after = env.json("get", "pod", "sleeper")["status"]["containerStatuses"][0]
        assert after["containerID"] == before["containerID"]
        assert after["restartCount"] == 0 and "running" in after["state"]
    finally:
        env.kubectl("delete", "pod", "sleeper", "--grace-period=0", "--wait=false")
    again = env.sh(env.worker, f"{NEW_BIN}/bootstrap upgrade node --yes")
    assert again.ok and again.stdout.strip().splitlines()[-1] == \
        "[upgrade node] 0 changed (converged)"
