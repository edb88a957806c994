"""`bootstrap cluster upgrade` of a stacked 3 control-plane + 2 worker sandbox cluster between
two real installs side by side (this tree's version and the next minor, built from the
same tree), with no request lost.

One cluster for the module. While two steady clients run on a worker (API reads and
writes through its haproxy, HTTP through a 3-replica Deployment's NodePort; see
upgrade_clients.py):

1. the upgrade runs with a fault injected on the second control-plane host (its new
   API server fails its health check): the first host is upgraded, the second rolls
   back by itself, the rollout stops naming it, and the cluster is healthy on mixed
   but valid versions;
2. the same command again continues: the upgraded host is skipped, the rest follow,
   each worker cordoned, drained through the Eviction API (a PodDisruptionBudget
   holds two of the three pods) and uncordoned when Ready.

Both clients count 0 failed requests over both runs. Run as root with
BOOTSTRAP_E2E_PREFIX set (sandbox names).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from e2e_names import sandbox_name
from etcd_helpers import cli, cli_env, freeze_wheelhouse, ok
from rich.console import Console
from upgrade_clients import Clients

from bootstrap import __version__
from bootstrap.config.inventory import load_inventory
from bootstrap.flows import versions
from bootstrap.flows.cluster_upgrade import UpgradeOptions, UpgradeStopped, cluster_upgrade
from bootstrap.flows.upgrade_host import FAIL_HEALTH_ENV
from bootstrap.remote.pool import close_all, connect_all

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(5400)]

NAME = sandbox_name("cu")
KUBECTL = "/usr/bin/kubectl"
_v = versions.parse(__version__)
OLD = __version__
NEW = f"{_v.major}.{_v.minor + 1}.0"
UNITS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet",
         "kube-proxy")

# The page names the pod; preStop keeps a terminating pod serving while the
# endpoints and every kube-proxy drop it (upstream's advice for zero-downtime
# drains); the readiness probe keeps a new pod out until it answers.
WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 30
      containers:
      - name: web
        image: busybox:1.35
        command: [sh, -c, 'echo "hello from $(hostname)" > /index.html; exec httpd -f -p 8080 -h /']
        ports: [{containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /, port: 8080}
          periodSeconds: 1
        lifecycle:
          preStop: {exec: {command: [sleep, "5"]}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: default}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: web}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


def kubectl(admin: Path, *args: str, timeout: float = 60, input: str | None = None
            ) -> subprocess.CompletedProcess:
    return subprocess.run([KUBECTL, "--kubeconfig", str(admin), *args], capture_output=True,
                          text=True, timeout=timeout, input=input)


def eventually(fn, timeout: float = 180, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def snapshot(inventory: Path, admin: Path) -> dict:
    """Per host: the install `current` names and the one each unit runs; per node:
    Ready, cordoned, the kubelet's version; per API server: /version and /readyz."""
    inv = load_inventory(inventory)
    hosts = [*inv.control_plane, *[w for w in inv.workers if w not in inv.control_plane]]
    conns = connect_all(hosts)
    out: dict = {"hosts": {}, "nodes": {}, "apiservers": {}}
    try:
        for h in hosts:
            c = conns[h.name]
            units = {}
            for unit in UNITS:
                text = c.run(f"cat /etc/systemd/system/{unit}.service", check=False).stdout
                if text:
                    active = c.run(f"systemctl is-active {unit}", check=False).stdout.strip()
                    units[unit] = (versions.unit_install(text), active)
            out["hosts"][h.name] = {
                "current": c.run("readlink /opt/bootstrap/current", check=False
                                 ).stdout.strip().rsplit("/", 1)[-1], "units": units}
        for h in inv.control_plane:
            server = f"https://{h.node_ip}:6443"
            version = kubectl(admin, "--server", server, "version", "-o", "json")
            readyz = kubectl(admin, "--server", server, "get", "--raw", "/readyz")
            out["apiservers"][h.name] = {
                "git": json.loads(version.stdout)["serverVersion"]["gitVersion"]
                if version.returncode == 0 else version.stderr.strip(),
                "readyz": readyz.stdout.strip()}
    finally:
        close_all(conns)
    listed = kubectl(admin, "get", "nodes", "-o", "json")
    for n in json.loads(listed.stdout)["items"] if listed.returncode == 0 else []:
        st = n.get("status") or {}
        out["nodes"][n["metadata"]["name"]] = {
            "ready": any(c["type"] == "Ready" and c["status"] == "True"
                         for c in st.get("conditions", [])),
            "cordoned": bool((n.get("spec") or {}).get("unschedulable")),
            "kubelet": (st.get("nodeInfo") or {}).get("kubeletVersion", "")}
    return out


class Rollout:
    pass


def _healthy_soon(inventory: Path, admin: Path, timeout: float = 180) -> dict:
    """The snapshot once every node is Ready and every API server ready (a rolled-back
    unit may still be settling when the command returns)."""
    state: dict = {}

    def check() -> bool:
        state.update(snapshot(inventory, admin))
        return all(n["ready"] for n in state["nodes"].values()) and all(
            a["readyz"] == "ok" for a in state["apiservers"].values())
    eventually(check, timeout=timeout, interval=3)
    return state


@pytest.fixture(scope="module")
def rollout(sandbox_factory, tmp_path_factory):
    inventory = sandbox_factory(NAME, 5)
    freeze_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))
    # The in-process run below installs the same base wheels as the CLI runs.
    saved = os.environ.get("BOOTSTRAP_WHEELHOUSE")
    os.environ["BOOTSTRAP_WHEELHOUSE"] = cli_env()["BOOTSTRAP_WHEELHOUSE"]
    r = Rollout()
    try:
        up = cli("cluster", "up", "-i", str(inventory), timeout=2400)
        if up.returncode != 0 and "cannot open a channel" in up.stderr:
            # A machine this loaded can make a fresh host's sshd miss the channel
            # timeout; cluster up is idempotent, so the second run picks up from there.
            up = cli("cluster", "up", "-i", str(inventory), timeout=2400)
        ok(up)
        admin = inventory.parent / "artifacts" / "admin.conf"
        inv = load_inventory(inventory)
        r.inventory, r.admin = inventory, admin
        r.cps = [h.name for h in inv.control_plane]
        r.workers = [h.name for h in inv.workers if h.name not in r.cps]
        ok(kubectl(admin, "apply", "-f", "-", input=WEB))
        ok(kubectl(admin, "rollout", "status", "deployment/web", "--timeout=300s",
                   timeout=330))
        svc = json.loads(ok(kubectl(admin, "get", "svc", "web", "-o", "json")))
        r.dry = cli("cluster", "upgrade", "-i", str(inventory), "--to", NEW, "--dry-run")
        r.before = snapshot(inventory, admin)
        client_host = inv.hosts[r.workers[-1]]
        clients = Clients(inventory, client_host.name,
                          f"{client_host.node_ip}:{svc['spec']['ports'][0]['nodePort']}", admin)
        clients.start()
        try:
            buf = io.StringIO()
            console = Console(file=buf, width=200)
            started = time.monotonic()
            try:
                cluster_upgrade(str(inventory), UpgradeOptions(
                    to=NEW, health_timeout=45,
                    host_env={r.cps[1]: {FAIL_HEALTH_ENV: "kube-apiserver"}}), console=console)
                r.fault_error = None
            except UpgradeStopped as exc:
                r.fault_error = exc.line()
            r.fault_seconds = time.monotonic() - started
            r.fault_lines = buf.getvalue().splitlines()
            r.mixed = _healthy_soon(inventory, admin)
            started = time.monotonic()
            r.resume = cli("cluster", "upgrade", "-i", str(inventory), "--to", NEW,
                           timeout=3600)
            r.resume_seconds = time.monotonic() - started
        finally:
            r.counts = clients.stop()
        r.after = _healthy_soon(inventory, admin)
        r.again = cli("cluster", "upgrade", "-i", str(inventory), "--to", NEW)
        kubectl(admin, "rollout", "status", "deployment/web", "--timeout=120s", timeout=150)
        r.pods = json.loads(ok(kubectl(admin, "get", "pods", "-l", "app=web", "-o", "json")))
        yield r
    finally:
        if saved is None:
            os.environ.pop("BOOTSTRAP_WHEELHOUSE", None)
        else:
            os.environ["BOOTSTRAP_WHEELHOUSE"] = saved
        sandbox_factory.down(NAME)


def test_dry_run_prints_the_plan_and_changes_nothing(rollout):
    out = ok(rollout.dry)
    assert f"cluster upgrade to {NEW}:" in out
    first, *others = rollout.cps
    assert f"{first}" in out and f"upgrade apply {NEW}" in out
    for w in rollout.workers:
        assert any(w in line and "cordon, drain, upgrade node" in line
                   for line in out.splitlines()), out
    assert "cluster upgrade (dry run): 5 host(s) would be upgraded, nothing changed" in out
    assert all(h["current"] == OLD for h in rollout.before["hosts"].values())


def test_the_fault_rolls_the_second_host_back_and_stops_the_rollout(rollout):
    first, second, third = rollout.cps
    err = rollout.fault_error
    assert err is not None, "\n".join(rollout.fault_lines[-40:])
    assert f"stopped at {second}" in err and "rolled back" in err, err
    assert f"upgraded in this run: {first}" in err
    hosts = rollout.mixed["hosts"]
    assert hosts[first]["current"] == NEW
    assert all(u == (NEW, "active") for u in hosts[first]["units"].values()), hosts[first]
    for name in (second, third, *rollout.workers):
        assert hosts[name]["current"] == OLD, (name, hosts[name])
        assert all(u == (OLD, "active") for u in hosts[name]["units"].values()), hosts[name]
    # Nothing after the failed host was touched: no worker was cordoned.
    assert not any(n["cordoned"] for n in rollout.mixed["nodes"].values())


def test_the_stopped_cluster_is_healthy_on_mixed_valid_versions(rollout):
    first, second, third = rollout.cps
    mixed = rollout.mixed
    assert all(n["ready"] for n in mixed["nodes"].values()), mixed["nodes"]
    assert {a["readyz"] for a in mixed["apiservers"].values()} == {"ok"}, mixed["apiservers"]
    # The control plane is ahead of (or level with) every kubelet: a valid skew.
    assert mixed["apiservers"][first]["git"].endswith(f"-bootstrap.{NEW}")
    assert mixed["apiservers"][second]["git"].endswith(f"-bootstrap.{OLD}")
    assert mixed["nodes"][rollout.workers[0]]["kubelet"].endswith(f"-bootstrap.{OLD}")


def test_the_second_run_continues_and_upgrades_every_host(rollout):
    out = ok(rollout.resume)
    first = rollout.cps[0]
    assert any(first in line and f"skip: already on {NEW}" in line
               for line in out.splitlines()), out[-3000:]
    assert f"cluster upgrade: 4 host(s) upgraded to {NEW}" in out, out[-3000:]
    for w in rollout.workers:
        assert f"[{w}] node/{w} cordoned" in out and f"[{w}] node/{w} uncordoned" in out
        assert f"[{w}] node/{w} drained" in out
    after = rollout.after
    for name, h in after["hosts"].items():
        assert h["current"] == NEW, (name, h)
        assert all(u == (NEW, "active") for u in h["units"].values()), (name, h)
    for name, n in after["nodes"].items():
        assert n["ready"] and not n["cordoned"], (name, n)
        assert n["kubelet"].endswith(f"-bootstrap.{NEW}"), (name, n)
    assert all(a["git"].endswith(f"-bootstrap.{NEW}") for a in after["apiservers"].values())
    # The workload is whole again (on the workers; the control plane is tainted).
    pods = [p for p in rollout.pods["items"] if not p["metadata"].get("deletionTimestamp")]
    assert len(pods) == 3 and all(p["status"].get("phase") == "Running" for p in pods)


def test_a_third_run_has_nothing_to_do(rollout):
    out = ok(rollout.again)
    assert f"cluster upgrade: every host is on {NEW} (0 changed)" in out, out[-2000:]


def test_no_request_failed_during_the_upgrade_and_the_rollback(rollout):
    counts = rollout.counts
    api, web = counts["api"], counts["http"]
    print(f"\nclients over {counts['seconds']}s (fault run {rollout.fault_seconds:.0f}s, "
          f"resume {rollout.resume_seconds:.0f}s): api ok={api['ok']} failed={api['failed']} "
          f"keep-alive re-sends={api['retries']}; http ok={web['ok']} failed={web['failed']}")
    assert api["ok"] > 100 and web["ok"] > 100, counts
    assert api["failed"] == 0, api["errors"]
    assert web["failed"] == 0, web["errors"]


def test_wrong_target_and_unknown_host_are_one_line(rollout):
    bad = cli("cluster", "upgrade", "-i", str(rollout.inventory), "--to", "next")
    assert bad.returncode == 2 and "is not a version" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    unknown = cli("cluster", "upgrade", "-i", str(rollout.inventory), "--to", NEW,
                  "--limit", "nosuchhost")
    assert unknown.returncode == 2 and "unknown host" in unknown.stderr
