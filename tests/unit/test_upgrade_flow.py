"""upgrade apply/node phase logic on a simulated host (FakeConnection) and API (FakeClient).

The simulated host answers what the flow and the engine ask (unit files,
/opt/bootstrap/current, systemctl, /proc/<pid>/cmdline) and "restarts" a
unit by starting its ExecStart install; health answers per install, so a
new install can be made to fail for real, not only through the test hook.
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest
import yaml

from bootstrap.api.fake import FakeClient
from bootstrap.errors import UserError
from bootstrap.flows import upgrade as U
from bootstrap.flows.kubeapi import KubeAPI
from bootstrap.flows.upgrade_host import FAIL_HEALTH_ENV, STATE_FILE, Host, unit_flags
from bootstrap.flows.workflow import run_workflow
from bootstrap.remote.fake import FakeConnection
from bootstrap.remote.result import Result

UNIT_DIR = "/etc/systemd/system"
PORTS = {"6443": "kube-apiserver", "10257": "kube-controller-manager",
         "10259": "kube-scheduler", "10248": "kubelet", "10256": "kube-proxy",
         "8080": "bootstrap-dns"}
BINARIES = {"kube-apiserver": "bootstrap-apiserver",
            "kube-controller-manager": "bootstrap-controller-manager",
            "kube-scheduler": "bootstrap-scheduler", "kubelet": "bootstrap-kubelet",
            "kube-proxy": "bootstrap-kube-proxy", "bootstrap-dns": "bootstrap-dns"}
CP = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
NODE = ("kubelet", "kube-proxy")


def unit(name: str, bin_dir: str = "/opt/bootstrap/current/bin") -> str:
    flags = {"kube-apiserver": ["--advertise-address=10.0.0.1", "--secure-port=6443",
                                "--etcd-servers=https://127.0.0.1:2379",
                                "--etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt",
                                "--etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt",
                                "--etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key"],
             "kube-controller-manager": ["--secure-port=10257"],
             "kube-scheduler": ["--secure-port=10259"],
             "bootstrap-dns": ["--health-address=10.0.0.1:8080"]}.get(name, [])
    lines = "".join(f" \\\n  {f}" for f in flags)
    return (f"# Managed by bootstrap.\n[Service]\nExecStart={bin_dir}/{BINARIES[name]}{lines}\n"
            "Restart=always\n")


class SimHost:
    def __init__(self, units=CP + NODE, installs=("0.1.0", "0.2.0"), current="0.1.0"):
        self.installs = set(installs)
        self.current = f"/opt/bootstrap/{current}"
        self.files = {f"{UNIT_DIR}/{u}.service": unit(u).encode() for u in units}
        self.running = {u: current for u in units}   # unit -> install its process runs
        self.pids = {u: 100 + i for i, u in enumerate(units)}
        self.restarts: list[str] = []
        self.bad: set[tuple[str, str]] = set()       # (unit, install) that never gets healthy
        self.etcd_healthy = True
        self.conn = FakeConnection("cp-1", files=self.files)
        self.files = self.conn.files
        self.unmatched: list[str] = []
        self.conn.respond(r".", self._run)

    # what the host answers ---------------------------------------------------
    def _install_of(self, u: str) -> str:
        text = self.files[f"{UNIT_DIR}/{u}.service"].decode()
        m = re.search(r"/opt/bootstrap/([^/]+)/bin/", text)
        name = m.group(1)
        return self.current.rsplit("/", 1)[1] if name == "current" else name

    def _run(self, cmd: str) -> Result:
        if m := re.match(r"readlink /opt/bootstrap/current$", cmd):
            return Result(0, self.current + "\n", "")
        if m := re.match(r"cat (\S+)$", cmd):
            data = self.files.get(m.group(1))
            return Result(0, data.decode(), "") if data is not None else Result(1, "", "no file")
        if m := re.match(r"systemctl show -p MainPID --value (\S+)$", cmd):
            return Result(0, f"{self.pids.get(m.group(1), 0)}\n", "")
        if m := re.match(r"tr .* < /proc/(\d+)/cmdline$", cmd):
            u = next(u for u, p in self.pids.items() if p == int(m.group(1)))
            inst = self.running[u]
            return Result(0, f"/opt/bootstrap/{inst}/bin/python "
                             f"/opt/bootstrap/{inst}/bin/{BINARIES[u]} --x ", "")
        if m := re.match(r"test -x /opt/bootstrap/([^/]+)/bin/bootstrap$", cmd):
            return Result(0 if m.group(1) in self.installs else 1, "", "")
        if "endpoint health" in cmd:
            return Result(0, json.dumps([{"endpoint": "https://127.0.0.1:2379",
                                          "health": self.etcd_healthy}]), "")
        if m := re.match(r"systemctl show -p LoadState .* -- (\S+)\.service$", cmd):
            return Result(0, "LoadState=loaded\nUnitFileState=enabled\nActiveState=active\n"
                             "NeedDaemonReload=no\n", "")
        if m := re.match(r"systemctl restart -- (\S+)\.service$", cmd):
            u = m.group(1)
            self.running[u] = self._install_of(u)
            self.pids[u] += 1000
            self.restarts.append(u)
            return Result(0, "", "")
        if m := re.match(r"ln -sfn -- (\S+) /opt/bootstrap/current$", cmd):
            self.current = m.group(1)
            return Result(0, "", "")
        if m := re.match(r"p=(\S+); if s=\$\(stat", cmd):
            path = m.group(1).strip("'")
            if path == "/opt/bootstrap/current":
                return Result(0, f"symbolic link|777|root|root|0|0\nL {self.current}\n", "")
            if path in self.files:
                sha = hashlib.sha256(self.files[path]).hexdigest()
                return Result(0, f"regular file|644|root|root|0|0\nH {sha}\n", "")
            return Result(0, "missing\n", "")
        if re.match(r"(mkdir|systemctl daemon-reload|test -d|.*snapshot save|.*tar )", cmd):
            return Result(0, "", "")
        self.unmatched.append(cmd)
        return Result(0, "", "")

    def probe(self, url: str, ca):
        port = re.search(r":(\d+)/", url).group(1)
        u = PORTS[port]
        if (u, self.running[u]) in self.bad:
            return False, "HTTP 500"
        return True, "HTTP 200"

    def state(self) -> dict | None:
        data = self.files.get(STATE_FILE)
        return json.loads(data) if data else None


class VersionedFake(FakeClient):
    def __init__(self, git_version: str):
        super().__init__()
        self.git_version = git_version

    async def request(self, method, path, **kw):
        return {"gitVersion": self.git_version}


def cluster_api(recorded="v0.1.0", apiserver="v1.32.0-bootstrap.0.1.0", kubelets=None):
    fake = VersionedFake(apiserver)
    config = yaml.safe_dump({"apiVersion": "bootstrap.dev/v1alpha1", "kind": "ClusterConfiguration",
                             "clusterName": "kubernetes", "kubernetesVersion": recorded})
    fake.seed({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
               "data": {"ClusterConfiguration": config}})
    for name, v in (kubelets or {"cp-1": "v1.32.0-bootstrap.0.1.0"}).items():
        fake.seed({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                   "status": {"nodeInfo": {"kubeletVersion": v}}})
    return fake, KubeAPI(lambda: fake, "fake API")


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


def run(command, sim, api, lines, env=None, toolkit="0.2.0", **params):
    clock = Clock()
    host = Host(sim.conn, probe=sim.probe, clock=clock, sleep=clock.sleep, env=env or {})
    make = U.apply_workflow if command == "apply" else U.node_workflow
    wf = make(lines.append, connection=sim.conn, api=api, host=host, toolkit=toolkit)
    return run_workflow(wf, {"yes": True, **params})


@pytest.fixture
def cfg_recorded():
    def recorded(fake):
        cm = fake.objects("configmaps", "kube-system")[0]
        return yaml.safe_load(cm["data"]["ClusterConfiguration"])["kubernetesVersion"]
    return recorded


def test_apply_moves_units_one_by_one_then_records_and_links(cfg_recorded):
    sim = SimHost()
    fake, api = cluster_api()
    lines: list[str] = []
    run("apply", sim, api, lines, to="0.2.0")
    assert sim.restarts == [*CP, *NODE]               # one at a time, control plane first
    assert all(v == "0.2.0" for v in sim.running.values())
    for u in (*CP, *NODE):
        text = sim.files[f"{UNIT_DIR}/{u}.service"].decode()
        assert f"ExecStart=/opt/bootstrap/0.2.0/bin/{BINARIES[u]}" in text
        assert unit_flags(text) == unit_flags(unit(u))  # nothing else in the unit moved
    assert sim.current == "/opt/bootstrap/0.2.0"
    assert cfg_recorded(fake) == "v0.2.0"
    st = sim.state()
    assert st["status"] == "done" and st["previous"]["kube-apiserver"] == "0.1.0"
    assert st["backup"].startswith("/etc/kubernetes/tmp/bootstrap-backup-")
    assert any("snapshot save" in c for c in sim.conn.commands)
    assert re.match(r"\[upgrade apply\] \d+ changed$", lines[-1]) and " 0 changed" not in lines[-1]
    assert sim.unmatched == []


def test_second_apply_has_nothing_to_do():
    sim = SimHost()
    fake, api = cluster_api()
    run("apply", sim, api, [], to="0.2.0")
    sim.restarts.clear()
    lines: list[str] = []
    run("apply", sim, api, lines, to="0.2.0")
    assert sim.restarts == []
    assert any("already at 0.2.0: nothing to do" in ln for ln in lines)
    assert lines[-1] == "[upgrade apply] 0 changed (converged)"


def test_rollback_of_the_failing_unit_and_those_already_moved():
    sim = SimHost()
    sim.bad.add(("kube-scheduler", "0.2.0"))          # the new scheduler never gets healthy
    fake, api = cluster_api()
    with pytest.raises(U.UpgradeFailed) as err:
        run("apply", sim, api, [], to="0.2.0", health_timeout=5)
    line = err.value.line()
    assert "kube-scheduler did not become healthy within 5s" in line
    assert "rolled back kube-scheduler to 0.1.0, kube-controller-manager to 0.1.0, " \
           "kube-apiserver to 0.1.0" in line
    assert err.value.exit_code != 0
    assert all(v == "0.1.0" for v in sim.running.values())
    assert sim.current == "/opt/bootstrap/0.1.0"     # the link never moved
    assert "kubelet" not in sim.restarts              # nodes were not touched
    assert sim.state()["status"] == "rolled-back"


def test_the_fault_hook_fails_the_new_api_server():
    sim = SimHost()
    _, api = cluster_api()
    with pytest.raises(U.UpgradeFailed) as err:
        run("apply", sim, api, [], env={FAIL_HEALTH_ENV: "kube-apiserver"}, to="0.2.0")
    assert "kube-apiserver did not become healthy" in err.value.line()
    assert f"failed on purpose ({FAIL_HEALTH_ENV}=kube-apiserver)" in err.value.line()
    assert sim.restarts == ["kube-apiserver", "kube-apiserver"]  # moved, then moved back
    assert sim.running["kube-apiserver"] == "0.1.0"


def test_an_interrupted_apply_resumes_where_it_stopped():
    sim = SimHost()
    _, api = cluster_api()
    # The first run dies after the API server moved (the scheduler step raises).
    orig = sim.probe

    def dying(url, ca):
        if ":10257/" in url:
            raise KeyboardInterrupt
        return orig(url, ca)

    sim.probe = dying
    with pytest.raises(KeyboardInterrupt):
        run("apply", sim, api, [], to="0.2.0")
    st = sim.state()
    assert st["status"] == "in-progress" and st["switched"] == ["kube-apiserver"]
    backup = st["backup"]
    sim.probe = orig
    sim.restarts.clear()
    lines: list[str] = []
    run("apply", sim, api, lines, to="0.2.0")
    assert "kube-apiserver" not in sim.restarts
    assert sim.restarts[0] == "kube-controller-manager" or \
        sim.running["kube-controller-manager"] == "0.2.0"
    assert sim.state()["backup"] == backup             # not taken twice
    assert sim.state()["previous"]["kube-apiserver"] == "0.1.0"
    assert any("Using the backup of this upgrade" in ln for ln in lines)
    assert all(v == "0.2.0" for v in sim.running.values())


def test_preflight_refusals_are_one_line_and_change_nothing():
    sim = SimHost(installs=("0.1.0",))
    _, api = cluster_api()
    with pytest.raises(UserError, match="0.2.0 is not installed on this host"):
        run("apply", sim, api, [], to="0.2.0")
    sim = SimHost(installs=("0.1.0", "0.3.0"))
    with pytest.raises(UserError, match="skips a minor version.*--force"):
        run("apply", sim, api, [], to="0.3.0", toolkit="0.3.0")
    assert sim.restarts == [] and sim.state() is None
    sim = SimHost()
    sim.etcd_healthy = False
    with pytest.raises(UserError, match="etcd is not healthy"):
        run("apply", sim, api, [], to="0.2.0")
    with pytest.raises(UserError, match="not a version"):
        run("apply", SimHost(), api, [], to="latest")
    with pytest.raises(UserError, match="runs no control-plane units"):
        run("apply", SimHost(units=NODE), api, [], to="0.2.0")


def test_force_allows_a_skipped_minor():
    sim = SimHost(installs=("0.1.0", "0.3.0"))
    _, api = cluster_api()
    lines: list[str] = []
    # A toolkit of an older minor than the target is refused even with --force.
    with pytest.raises(UserError, match=r"can only upgrade to 0\.2\.x"):
        run("apply", sim, api, lines, to="0.3.0", force=True)
    run("apply", sim, api, lines, to="0.3.0", force=True, toolkit="0.3.0")
    assert any("skips a minor version" in ln and "WARNING" in ln for ln in lines)
    assert sim.running["kube-apiserver"] == "0.3.0"


def test_node_refuses_before_the_control_plane_and_against_an_older_api_server():
    sim = SimHost(units=NODE)
    _, api = cluster_api(recorded="v0.1.0")
    with pytest.raises(UserError, match="upgrade apply 0.2.0"):
        run("node", sim, api, [], to="0.2.0")
    _, api = cluster_api(recorded="v0.2.0", apiserver="v1.32.0-bootstrap.0.1.0")
    with pytest.raises(UserError, match="no node may be newer than the API server"):
        run("node", sim, api, [], to="0.2.0")
    assert sim.restarts == []


def test_node_upgrades_kubelet_and_proxy_only():
    sim = SimHost(units=NODE)
    _, api = cluster_api(recorded="v0.2.0", apiserver="v1.32.0-bootstrap.0.2.0")
    lines: list[str] = []
    run("node", sim, api, lines, to="0.2.0")
    assert sim.restarts == list(NODE)
    assert sim.current == "/opt/bootstrap/0.2.0"
    assert any("No control-plane units on this host" in ln for ln in lines)
    assert re.match(r"\[upgrade node\] \d+ changed$", lines[-1])
    lines.clear()
    run("node", sim, api, lines, to="0.2.0")
    assert lines[-1] == "[upgrade node] 0 changed (converged)"


def test_dry_run_changes_nothing():
    sim = SimHost()
    fake, api = cluster_api()
    lines: list[str] = []
    run("apply", sim, api, lines, to="0.2.0", dry_run=True)
    assert sim.restarts == [] and sim.state() is None
    assert sim.current == "/opt/bootstrap/0.1.0"
    assert any("[dryrun] Would move kube-apiserver" in ln for ln in lines)
    assert "would change" in lines[-1]


def plan_text(sim, api, toolkit="0.2.0", target="0.2.0"):
    from bootstrap.flows.upgrade_plan import make_plan, render

    clock = Clock()
    host = Host(sim.conn, probe=sim.probe, clock=clock, sleep=clock.sleep, env={})
    ctx = U.UpgradeContext({"to": target}, lambda _l: None, "plan", connection=sim.conn,
                           api=api, host=host, toolkit=toolkit)
    return render(make_plan(ctx), "apply")


def test_plan_lists_components_versions_etcd_and_the_command():
    sim = SimHost()
    _, api = cluster_api()
    out = plan_text(sim, api)
    assert "apiserver           0.1.0    0.1.0    0.2.0   move /opt/bootstrap/0.1.0/bin -> " \
           "/opt/bootstrap/0.2.0/bin, restart" in out
    assert "dns                 -        -        0.2.0   not on this host" in out
    assert "etcd:" in out and "healthy" in out and "kubelet of cp-1:" in out
    assert "\tbootstrap upgrade apply 0.2.0" in out
    assert sim.restarts == [] and sim.state() is None  # reads only
    run("apply", sim, api, [], to="0.2.0")
    assert "up to date" in plan_text(sim, api) and "nothing to do" in plan_text(sim, api)


def test_plan_says_what_blocks():
    sim = SimHost(installs=("0.1.0",))
    sim.etcd_healthy = False
    _, api = cluster_api()
    out = plan_text(sim, api, toolkit="0.3.0", target="0.3.0")
    assert "BLOCKED: /opt/bootstrap/0.3.0 is not installed" in out
    assert "needs --force: upgrade 0.1.0 -> 0.3.0 skips a minor version" in out
    assert "needs --force: etcd is not healthy" in out
    assert "You can now apply" not in out


def test_a_missing_target_is_installed_from_a_given_wheelhouse(tmp_path):
    (tmp_path / "bootstrap-0.2.0-py3-none-any.whl").write_bytes(b"w")
    (tmp_path / "pip-24.0-py3-none-any.whl").write_bytes(b"p")
    (tmp_path / "SHA256SUMS").write_text("x  bootstrap-0.2.0-py3-none-any.whl\n")
    digest = hashlib.sha256((tmp_path / "SHA256SUMS").read_bytes()).hexdigest()[:16]
    sim = SimHost(installs=("0.1.0",))
    _, api = cluster_api()
    lines: list[str] = []
    run("apply", sim, api, lines, to="0.2.0", wheelhouse=str(tmp_path), dry_run=True)
    assert any(f"Installing 0.2.0 from {tmp_path}" in ln for ln in lines)
    # roles/agents ran for 0.2.0 (its marker names this wheel set) and left `current` alone.
    assert any(f"/opt/bootstrap/0.2.0/.installed-{digest}" in c for c in sim.conn.commands)
    assert not any("ln -sfn" in c for c in sim.conn.commands)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no bootstrap-0.2.0 wheel in the wheelhouse"):
        run("apply", SimHost(installs=("0.1.0",)), api, [], to="0.2.0", wheelhouse=str(empty))


def test_an_interrupted_upgrade_to_another_version_is_finished_first():
    sim = SimHost(installs=("0.1.0", "0.2.0", "0.2.1"))
    _, api = cluster_api()
    sim.files[STATE_FILE] = json.dumps({"target": "0.2.1", "command": "apply",
                                        "status": "in-progress"}).encode()
    with pytest.raises(UserError, match=r"an upgrade to 0\.2\.1 was interrupted.*"
                                        r"`bootstrap upgrade apply 0\.2\.1`"):
        run("apply", sim, api, [], to="0.2.0")
    assert sim.restarts == []
    run("apply", sim, api, [], to="0.2.0", force=True)
    assert sim.state()["target"] == "0.2.0" and sim.state()["status"] == "done"
