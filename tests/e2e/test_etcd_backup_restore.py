"""etcd backups of a whole cluster, on one stacked sandbox cluster (3 control-plane hosts).

Built once with `cluster up` (API server, kubelets, DNS: everything), with the
inventory switching the scheduled backups on. In order: `etcd snapshot save`
with retention, bad input refused in one line, the backup timer on every etcd
host, then a whole-cluster restore: a ConfigMap written before the snapshot is
back, one written after is gone, every node is Ready again through its own
heartbeat, and the kubelets (never restarted) pick up a pod created after the
restore.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from e2e_names import sandbox_name
from etcd_helpers import cli, freeze_wheelhouse, ok

from bootstrap.flows.etcd_backup import NAME_RE

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(2400)]

NAME = sandbox_name("bkst")
KUBECTL = "/usr/bin/kubectl"
HOST_DIR = "/var/backups/etcd"


class Up:
    def __init__(self, inventory: Path):
        self.inventory = inventory
        self.admin = inventory.parent / "artifacts" / "admin.conf"
        self.hosts = [f"{NAME}-{i}" for i in (1, 2, 3)]

    def kubectl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([KUBECTL, "--kubeconfig", str(self.admin), *args],
                              capture_output=True, text=True, timeout=timeout)

    def ssh(self, host: str, cmd: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return cli("sandbox", "ssh", NAME, host.rsplit("-", 1)[1], "--", cmd, timeout=timeout)

    def etcd(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return cli("etcd", *args, "-i", str(self.inventory), timeout=timeout)


@pytest.fixture(scope="module")
def up(sandbox_factory, tmp_path_factory):
    sandbox_inv = sandbox_factory(NAME, 3)
    try:
        freeze_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))
        inv = yaml.safe_load(sandbox_inv.read_text())
        inv["all"].setdefault("vars", {}).update({
            "etcd_backup_enabled": True, "etcd_backup_schedule": "*-*-* 03:00:00",
            "etcd_backup_retention_count": 2})
        # Same directory: the artifacts (PKI, kubeconfigs) stay beside the sandbox's.
        path = sandbox_inv.parent / "backup-cluster.yaml"
        path.write_text(yaml.safe_dump(inv))
        ok(cli("cluster", "up", "-i", str(path), timeout=1800))
        yield Up(path)
    finally:
        sandbox_factory.down(NAME)


def one_line_error(proc: subprocess.CompletedProcess, needle: str) -> None:
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def ready_nodes(up: Up) -> dict[str, dict]:
    out = up.kubectl("get", "nodes", "-o", "json")
    if out.returncode != 0:
        return {}
    res = {}
    for n in json.loads(out.stdout)["items"]:
        cond = next((c for c in n["status"].get("conditions", []) if c["type"] == "Ready"), {})
        if cond.get("status") == "True":
            res[n["metadata"]["name"]] = cond
    return res


def member_cluster_id(up: Up) -> int:
    pki = "/etc/kubernetes/pki/etcd"
    r = up.ssh(up.hosts[0], f"ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 "
                            f"--cacert={pki}/ca.crt --cert={pki}/healthcheck-client.crt "
                            f"--key={pki}/healthcheck-client.key -w json endpoint status")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)[0]["Status"]["header"]["cluster_id"]


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def eventually(fn, timeout: float = 180, interval: float = 2.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def test_save_keeps_the_newest_n_with_checksum_and_status(up, tmp_path):
    saves = []
    for _ in range(3):
        saves.append(ok(up.etcd("snapshot", "save", "--dir", str(tmp_path), "--retention", "2")))
        time.sleep(1.1)  # names carry a UTC stamp to the second
    kept = sorted(p.name for p in tmp_path.glob("etcd-snapshot-*.db"))
    assert len(kept) == 2 and all(NAME_RE.match(k) for k in kept), kept
    assert "retention: removed" in saves[2]
    for name in kept:
        snap = tmp_path / name
        digest, fname = (tmp_path / f"{name}.sha256").read_text().split()
        assert fname == name and digest == hashlib.sha256(snap.read_bytes()).hexdigest()
        meta = json.loads((tmp_path / f"{name}.json").read_text())
        assert meta["revision"] > 0 and meta["totalKey"] > 0 and meta["totalSize"] > 0
        assert meta["member"] in up.hosts and snap.stat().st_mode & 0o777 == 0o600
    assert "sha256sum: " not in ok(subprocess.run(["sha256sum", "-c", f"{kept[-1]}.sha256"],
                                                  cwd=tmp_path, capture_output=True, text=True))
    # No --dir: the inventory's artifacts dir.
    out = ok(up.etcd("snapshot", "save"))
    default = up.inventory.parent / "artifacts" / "backups"
    assert str(default / "etcd-snapshot-") in out and len(list(default.glob("*.db"))) == 1


def test_bad_input_is_one_line(up, tmp_path):
    one_line_error(up.etcd("snapshot", "save", "--retention", "-1"), "--retention")
    one_line_error(up.etcd("snapshot", "save", str(tmp_path / "x.db"), "--dir", str(tmp_path)),
                   "not both")
    one_line_error(up.etcd("snapshot", "restore", str(tmp_path / "missing.db"), "--yes"),
                   "does not exist")


def test_damaged_snapshots_are_refused_before_anything_stops(up, tmp_path):
    ok(up.etcd("snapshot", "save", "--dir", str(tmp_path)))
    snap = next(tmp_path.glob("etcd-snapshot-*.db"))
    data = bytearray(snap.read_bytes())
    data[len(data) // 2] ^= 0xFF
    snap.write_bytes(bytes(data))
    # Its .sha256 no longer matches: refused on this machine.
    one_line_error(up.etcd("snapshot", "restore", str(snap), "--yes"), "integrity")
    # Without a .sha256 the members' trial restore catches it (etcd's own checksum).
    bare = tmp_path / "bare.db"
    bare.write_bytes(bytes(data))
    one_line_error(up.etcd("snapshot", "restore", str(bare), "--yes"), "integrity")
    # Nothing was stopped.
    assert up.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
    for host in up.hosts:
        r = up.ssh(host, "systemctl is-active etcd kube-apiserver; ls /var/tmp")
        assert r.stdout.split()[:2] == ["active", "active"], r.stdout
        assert "bootstrap-etcd-restore" not in r.stdout


def test_backup_timer_on_every_etcd_host(up):
    for host in up.hosts:
        r = up.ssh(host, "systemctl is-enabled etcd-backup.timer; systemctl is-active "
                         "etcd-backup.timer; systemctl list-timers --all --no-pager etcd-backup.timer")
        assert r.returncode == 0, r.stdout + r.stderr
        enabled, active = r.stdout.split()[:2]
        assert (enabled, active) == ("enabled", "active")
        assert "etcd-backup.timer" in r.stdout and "etcd-backup.service" in r.stdout
    host = up.hosts[1]
    # Started by hand three times: one file each, the newest two kept (retention 2).
    for _ in range(3):
        r = up.ssh(host, "systemctl start etcd-backup.service && sleep 1.1")
        assert r.returncode == 0, r.stdout + r.stderr
    listing = up.ssh(host, f"ls -1 {HOST_DIR}").stdout.split()
    snaps = [f for f in listing if NAME_RE.match(f)]
    assert len(snaps) == 2, listing
    assert sorted(listing) == sorted([*snaps, *(f"{s}.sha256" for s in snaps),
                                      *(f"{s}.json" for s in snaps)])
    # A snapshot holds every Secret: only root reads it.
    modes = up.ssh(host, f"stat -c %a {HOST_DIR} {HOST_DIR}/{snaps[-1]} "
                         f"{HOST_DIR}/{snaps[-1]}.sha256").stdout.split()
    assert modes == ["700", "600", "600"], modes
    check = up.ssh(host, f"cd {HOST_DIR} && sha256sum -c {snaps[-1]}.sha256 && "
                         f"ETCDCTL_API=3 etcdctl -w json snapshot status {snaps[-1]}")
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(check.stdout.splitlines()[-1])["totalKey"] > 0
    journal = up.ssh(host, "journalctl -u etcd-backup.service --no-pager -o cat | tail -3")
    assert f"saved {HOST_DIR}/{snaps[-1]}" in journal.stdout
    # Installed once: a second run over the backup tasks changes nothing.
    out = ok(cli("cluster", "up", "-i", str(up.inventory), "--tags", "etcd-backup",
                 timeout=600))
    assert "nothing changed" in out, out[-3000:]


def test_restore_of_the_whole_cluster(up, tmp_path):
    k = up.kubectl
    ok(k("create", "configmap", "before-snapshot", "--from-literal=kept=yes"))
    out = ok(up.etcd("snapshot", "save", "--dir", str(tmp_path)))
    snap = next(tmp_path.glob("etcd-snapshot-*.db"))
    assert str(snap) in out
    ok(k("create", "configmap", "after-snapshot", "--from-literal=lost=yes"))
    ok(k("delete", "configmap", "before-snapshot"))
    cluster_id = member_cluster_id(up)
    restored_at = datetime.now(UTC)

    out = ok(up.etcd("snapshot", "restore", str(snap), "--yes", timeout=1200))
    assert "restore: done" in out and "API servers ready" in out, out

    assert json.loads(ok(k("get", "configmap", "before-snapshot", "-o", "json")))["data"] == \
        {"kept": "yes"}
    gone = k("get", "configmap", "after-snapshot")
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    # Every member restored, the old data kept beside it.
    for host in up.hosts:
        r = up.ssh(host, "ls -d /var/lib/etcd.backup-*; stat -c %a /var/lib/etcd; "
                         "systemctl is-active etcd kube-apiserver kube-controller-manager "
                         "kube-scheduler kubelet")
        assert r.returncode == 0, r.stdout + r.stderr
        words = r.stdout.split()
        assert len([w for w in words if w.startswith("/var/lib/etcd.backup-")]) == 1
        assert "700" in words and words[-5:] == ["active"] * 5
    assert "healthy" in ok(up.etcd("status"))
    # A new cluster token makes a new cluster ID: no old member can ever rejoin it.
    assert member_cluster_id(up) != cluster_id

    # The kubelets kept running: their Leases are renewed again and every node is Ready.
    def renewed_after_restore():
        out = k("get", "leases", "-n", "kube-node-lease", "-o", "json")
        if out.returncode != 0:
            return None
        renewed = {item["metadata"]["name"] for item in json.loads(out.stdout)["items"]
                   if _time(item["spec"]["renewTime"]) > restored_at}
        return renewed if renewed == set(up.hosts) and set(ready_nodes(up)) == renewed \
            else None
    assert eventually(renewed_after_restore, timeout=240), ready_nodes(up)
    got = ok(k("get", "nodes"))
    assert got.count(" Ready ") == 3, got

    # A pod created now runs: the kubelets' informers listed again after the restore
    # (their old resourceVersions are below the restored cluster's compacted revision).
    overrides = {"spec": {"nodeName": up.hosts[2], "tolerations": [{"operator": "Exists"}]}}
    ok(k("run", "after-restore", "--image=busybox:1.35", "--restart=Never",
         "--overrides", json.dumps(overrides), "--", "sleep", "3600"))
    try:
        ok(k("wait", "--for=condition=Ready", "pod/after-restore", "--timeout=180s",
             timeout=200))
    finally:
        k("delete", "pod", "after-restore", "--grace-period=0", "--wait=false")
