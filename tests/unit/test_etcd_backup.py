"""etcd backups: snapshot names, retention, side files, the save command, the whole-cluster
restore plan and its run against fake hosts, and the role's backup timer."""

from __future__ import annotations

import hashlib
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from rich.console import Console
from test_engine import StatefulHost, inventory  # same dir: pytest puts it on sys.path

from bootstrap.cli import main
from bootstrap.engine import Play, run_play
from bootstrap.errors import UserError
from bootstrap.flows import etcd_admin, etcd_restore
from bootstrap.flows import etcd_backup as backup
from bootstrap.flows.plan import EtcdNode
from bootstrap.remote import Result
from bootstrap.remote.fake import FakeConnection

REPO = Path(__file__).resolve().parents[2]
NODES = [EtcdNode(f"h{i}", f"m{i}", f"10.0.0.{i}") for i in (1, 2, 3)]
T0 = datetime(2026, 12, 2, 4, 45, 12, tzinfo=UTC)


# ------------------------------------------------------------------ names, retention

def test_names_carry_a_utc_stamp_and_sort_by_age():
    local = T0.astimezone(__import__("datetime").timezone(timedelta(hours=5)))
    assert backup.snapshot_name(local) == "etcd-snapshot-20261202T044512Z.db"
    names = [backup.snapshot_name(T0 + timedelta(seconds=s)) for s in (61, 0, 3600)]
    assert sorted(names) == [backup.snapshot_name(T0 + timedelta(seconds=s))
                             for s in (0, 61, 3600)]
    assert all(backup.NAME_RE.match(n) for n in names)


def test_the_host_timer_names_snapshots_as_the_save_command():
    defaults = yaml.safe_load((REPO / "roles/etcd-backup/defaults/main.yml").read_text())
    assert defaults["etcd_backup_stamp_format"] == backup.STAMP_FORMAT
    assert defaults["etcd_backup_enabled"] is False  # off unless asked for


def _touch(d: Path, name: str, sides: bool = True) -> Path:
    p = d / name
    p.write_bytes(b"x")
    if sides:
        for s in backup.SIDE_FILES:
            Path(f"{p}{s}").write_text("x")
    return p


def test_retention_keeps_the_newest_n_and_their_side_files(tmp_path):
    names = [backup.snapshot_name(T0 + timedelta(minutes=m)) for m in range(5)]
    for n in names:
        _touch(tmp_path, n)
    foreign = [_touch(tmp_path, "etcd-snapshot-manual.db"), _touch(tmp_path, "notes.txt", False)]
    removed = backup.apply_retention(tmp_path, 2)
    assert [p.name for p in removed] == names[:3]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([*names[3:], *(f"{n}{s}" for n in names[3:] for s in backup.SIDE_FILES),
                           *(p.name for p in tmp_path.iterdir() if p.name.startswith(
                               ("etcd-snapshot-manual", "notes")))])
    assert all(p.exists() for p in foreign)  # never a name outside the pattern


def test_retention_zero_keeps_everything_and_a_missing_dir_is_empty(tmp_path):
    for m in range(3):
        _touch(tmp_path, backup.snapshot_name(T0 + timedelta(minutes=m)))
    assert backup.apply_retention(tmp_path, 0) == []
    assert len(backup.snapshots_in(tmp_path)) == 3
    assert backup.snapshots_in(tmp_path / "nope") == []
    with pytest.raises(UserError, match="--retention"):
        backup.check_retention(-1)


# ------------------------------------------------------------------ writing, checking

def test_write_snapshot_writes_side_files_private(tmp_path):
    dest = tmp_path / "b" / backup.snapshot_name(T0)
    status = {"hash": 7, "revision": 42, "totalKey": 9, "totalSize": 4096}
    saved = backup.write_snapshot(dest, b"SNAP", status, member="m1",
                                  endpoint="https://10.0.0.1:2379", taken_at=T0,
                                  verify=lambda p: {"hash": 7})
    digest = hashlib.sha256(b"SNAP").hexdigest()
    assert saved.sha256 == digest and dest.read_bytes() == b"SNAP"
    assert Path(f"{dest}.sha256").read_text() == f"{digest}  {dest.name}\n"
    meta = json.loads(Path(f"{dest}.json").read_text())
    assert meta["revision"] == 42 and meta["totalKey"] == 9 and meta["member"] == "m1"
    assert meta["takenAt"] == "2026-12-02T04:45:12Z"
    for p in (dest, Path(f"{dest}.sha256"), Path(f"{dest}.json")):
        assert p.stat().st_mode & 0o777 == 0o600
    assert backup.check_checksum(dest) == digest
    with pytest.raises(UserError, match="already exists"):
        backup.write_snapshot(dest, b"SNAP", status, member="m1", endpoint="", taken_at=T0,
                              verify=lambda p: None)


def test_a_transfer_that_changed_the_bytes_leaves_nothing(tmp_path):
    dest = tmp_path / backup.snapshot_name(T0)
    with pytest.raises(UserError, match="changed in transfer"):
        backup.write_snapshot(dest, b"SNAP", {"hash": 7}, member="m1", endpoint="",
                              taken_at=T0, verify=lambda p: {"hash": 8})
    assert list(tmp_path.iterdir()) == []


def test_checksum_mismatch_is_refused(tmp_path):
    snap = tmp_path / "s.db"
    snap.write_bytes(b"damaged")
    Path(f"{snap}.sha256").write_text(f"{hashlib.sha256(b'original').hexdigest()}  s.db\n")
    with pytest.raises(UserError, match="integrity check"):
        backup.check_checksum(snap)
    with pytest.raises(UserError, match="no such snapshot"):
        backup.check_checksum(tmp_path / "missing.db")


# ------------------------------------------------------------------ the save command

INVENTORY = """
all:
  hosts:
    h1: {ansible_host: 10.0.0.1, ip: 10.0.0.1, etcd_member_name: m1}
    h2: {ansible_host: 10.0.0.2, ip: 10.0.0.2, etcd_member_name: m2}
    h3: {ansible_host: 10.0.0.3, ip: 10.0.0.3, etcd_member_name: m3}
  children:
    kube_control_plane: {hosts: {h1: {}, h2: {}, h3: {}}}
    kube_node: {hosts: {h1: {}, h2: {}, h3: {}}}
    etcd: {hosts: {h1: {}, h2: {}, h3: {}}}
"""


def _health(down=()):
    return json.dumps([{"endpoint": n.client_url, "health": n.name not in down}
                       for n in NODES])


def _member(host: str, revision=lambda: 42, down=()) -> FakeConnection:
    c = FakeConnection(host)
    c.respond(r"endpoint health", Result(0, _health(down), ""))
    c.respond(r"endpoint status", lambda cmd: Result(0, json.dumps([
        {"Endpoint": n.client_url, "Status": {"header": {"revision": revision()}}}
        for n in NODES if n.client_url in cmd]), ""))
    c.respond(r"snapshot status", Result(0, '{"hash":5,"revision":42,"totalKey":9,'
                                            '"totalSize":8192}', ""))
    c.files["/var/tmp/bootstrap-etcd-snapshot.db"] = b"SNAPSHOT"
    return c


@pytest.fixture
def inv_file(tmp_path, monkeypatch):
    p = tmp_path / "inv" / "hosts.yaml"
    p.parent.mkdir()
    p.write_text(INVENTORY)
    # The fake bytes are no etcd database; the real etcdctl would rightly refuse them.
    monkeypatch.setattr(backup, "verify_local", lambda path: {"hash": 5})
    return p


def test_save_into_the_artifacts_dir_with_retention(inv_file):
    conns = {h: _member(h) for h in ("h1", "h2", "h3")}
    clock = iter(T0 + timedelta(seconds=s) for s in range(10))
    saved = [etcd_admin.snapshot_save(str(inv_file), retention=2, connect=lambda hs: conns,
                                      now=lambda: next(clock)) for _ in range(3)]
    folder = inv_file.parent / "artifacts" / "backups"
    assert saved[0].path.parent == folder and saved[0].member == "m1"
    assert saved[2].removed == [saved[0].path]
    assert [p.name for p in backup.snapshots_in(folder)] == [s.path.name for s in saved[1:]]
    assert saved[2].status["revision"] == 42


def test_save_takes_the_first_healthy_member(inv_file, tmp_path):
    conns = {"h1": _member("h1", down=("m1",)), "h2": _member("h2"), "h3": _member("h3")}
    saved = etcd_admin.snapshot_save(str(inv_file), directory=str(tmp_path / "d"),
                                     connect=lambda hs: conns, now=lambda: T0)
    assert saved.member == "m2"
    assert not any("snapshot save" in c for c in conns["h1"].commands)


def test_save_cli_bad_input_is_one_line(inv_file, tmp_path):
    runner = CliRunner()
    for args, needle in [
        (["--retention", "-1"], "--retention must be 0"),
        ([str(tmp_path / "x.db"), "--dir", str(tmp_path)], "not both"),
        ([str(tmp_path)], "is a directory"),
    ]:
        r = runner.invoke(main, ["etcd", "snapshot", "save", "-i", str(inv_file), *args],
                          standalone_mode=True)
        assert r.exit_code == 2, r.output
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], r.output


def test_restore_refuses_a_damaged_snapshot_before_connecting(inv_file, tmp_path):
    snap = tmp_path / "s.db"
    snap.write_bytes(b"damaged")
    Path(f"{snap}.sha256").write_text("0" * 64 + "  s.db\n")

    def connect(hosts):
        raise AssertionError("no host may be touched")
    with pytest.raises(UserError, match="integrity check"):
        etcd_admin.snapshot_restore(str(inv_file), str(snap), connect=connect)


def test_restore_cli_refuses_a_damaged_snapshot_without_asking(inv_file, tmp_path):
    snap = tmp_path / "s.db"
    snap.write_bytes(b"damaged")
    Path(f"{snap}.sha256").write_text("0" * 64 + "  s.db\n")
    r = CliRunner().invoke(main, ["etcd", "snapshot", "restore", str(snap), "-i", str(inv_file)],
                           input="y\n")
    assert r.exit_code == 2 and "Continue?" not in r.output, r.output
    assert r.output.strip().splitlines() == [next(
        line for line in r.output.splitlines() if "integrity check" in line)]


def test_restore_cli_asks_and_a_no_touches_no_host(inv_file, tmp_path, monkeypatch):
    snap = tmp_path / "s.db"
    snap.write_bytes(b"fine")
    monkeypatch.setattr(etcd_admin, "connect_all", lambda hosts: pytest.fail("connected"))
    r = CliRunner().invoke(main, ["etcd", "snapshot", "restore", str(snap), "-i", str(inv_file)],
                           input="n\n")
    assert "Continue?" in r.output and r.exit_code == 1 and "Aborted" in r.output


# ------------------------------------------------------------------ the restore plan

def test_restore_plan_order_and_one_token_for_every_member():
    steps = etcd_restore.plan(NODES, ["h1", "h2", "h3"], data_dir="/var/lib/etcd",
                              token="k-etcd-restore-1", stamp="1")
    assert [s.name.split()[0] for s in steps] == [
        "checking", "stopping", "stopping", "restoring", "starting", "starting"]
    check, stop_cp, stop_etcd, restore, start_etcd, start_cp = steps
    assert "kube-apiserver" in stop_cp.commands["h1"][0] and stop_etcd.commands["h1"] == [
        "systemctl stop etcd"]
    assert start_etcd.wait == etcd_restore.WAIT_ETCD and start_cp.wait == etcd_restore.WAIT_API
    for n in NODES:
        cmd = next(c for c in restore.commands[n.host] if "snapshot restore" in c)
        assert f"--name={n.name}" in cmd and f"--initial-advertise-peer-urls={n.peer_url}" in cmd
        assert "--initial-cluster-token=k-etcd-restore-1" in cmd
        assert "m1=https://10.0.0.1:2380,m2=https://10.0.0.2:2380,m3=https://10.0.0.3:2380" \
            in cmd
    assert any("snapshot restore" in c and "--data-dir=" + etcd_restore.CHECK_DIR in c
               for c in check.commands["h1"])


def test_restore_plan_external_topology_stops_api_servers_on_their_own_hosts():
    steps = etcd_restore.plan(NODES, ["cp1", "cp2"], data_dir="/var/lib/etcd", token="t",
                              stamp="s")
    by_name = {s.name: s for s in steps}
    stop_cp = next(s for s in steps if "API servers" in s.name and "stopping" in s.name)
    assert sorted(stop_cp.commands) == ["cp1", "cp2"]
    for s in by_name.values():
        if "etcd" in s.name or "member" in s.name:
            assert sorted(s.commands) == ["h1", "h2", "h3"]


def test_bump_target_and_the_write_block():
    assert etcd_restore.bump_target(5000, 1200) == 5000 + etcd_restore.BUMP_MARGIN
    assert etcd_restore.bump_target(None, 1200) == 1200 + etcd_restore.BUMP_UNKNOWN
    block = etcd_restore.curl_block(NODES[0])
    assert 'url = "https://10.0.0.1:2379/v3/kv/put"' in block
    assert "healthcheck-client.key" in block
    assert "awk -v n=17 " in etcd_restore.bump_command(17)


class Cluster:
    """Fake etcd + control-plane hosts sharing one revision counter and an event log."""

    def __init__(self, control_plane=("h1", "h2", "h3"), old_revision=5000,
                 trial_fails=False):
        self.rev = old_revision
        self.log: list[tuple[str, str]] = []
        self.conns = {}
        for host in sorted({*(n.host for n in NODES), *control_plane}):
            c = FakeConnection(host)
            c.respond(r"endpoint health", Result(0, _health(), ""))
            c.respond(r"endpoint status", lambda cmd: Result(0, json.dumps([
                {"Endpoint": n.client_url, "Status": {"header": {"revision": self.rev}}}
                for n in NODES if n.client_url in cmd]), ""))
            c.respond(r"snapshot status", Result(0, '{"hash":1,"revision":1200}', ""))
            c.respond(r"snapshot restore .*restore-check",
                      Result(1, "", "snapshot file integrity check failed") if trial_fails
                      else Result(0))
            c.respond(r"snapshot restore .*--data-dir=/var/lib/etcd.restore",
                      self._rec("restore", host, lambda: setattr(self, "rev", 1200)))
            c.respond(r"^systemctl stop kube-apiserver", self._rec("stop-cp", host))
            c.respond(r"^systemctl stop etcd", self._rec("stop-etcd", host))
            c.respond(r"^systemctl start --no-block etcd", self._rec("start-etcd", host))
            c.respond(r"^systemctl start kube-apiserver", self._rec("start-cp", host))
            c.respond(r"^awk -v n=(\d+)", self._bump(host))
            c.respond(r"compact \d+", self._rec("compact", host))
            c.respond(r"readyz", Result(0, "ok", ""))
            c.respond(r"^systemctl is-active", Result(
                3, "active\nactive\nactive\n" if host in control_plane else
                "inactive\ninactive\ninactive\n", ""))
            self.conns[host] = c

    def _rec(self, what, host, then=lambda: None):
        def fn(cmd):
            self.log.append((what, host))
            then()
            return Result(0)
        return fn

    def _bump(self, host):
        def fn(cmd):
            self.log.append(("bump", host))
            self.rev += int(re.match(r"awk -v n=(\d+)", cmd).group(1))
            return Result(0)
        return fn


def _run(cluster, control_plane=("h1", "h2", "h3")):
    return etcd_restore.run(cluster.conns, NODES, list(control_plane), b"SNAP",
                            data_dir="/var/lib/etcd", token="t", stamp="s", api_port=6443)


def test_restore_run_order_bumps_the_revision_past_the_old_one():
    c = Cluster()
    out = _run(c)
    kinds = [k for k, _ in c.log]
    assert kinds == (["stop-cp"] * 3 + ["stop-etcd"] * 3 + ["restore"] * 3 + ["start-etcd"] * 3
                     + ["bump", "compact"] + ["start-cp"] * 3)
    assert out.snapshot_revision == 1200
    assert out.revision > 5000 and out.revision == c.rev
    assert all(conn.files[etcd_restore.REMOTE_SNAPSHOT] == b"SNAP"
               for h, conn in c.conns.items())
    # The bump key is deleted, its curl config removed.
    assert any(f"del {etcd_restore.BUMP_KEY}" in cmd for cmd in c.conns["h1"].commands)
    assert any(cmd == f"rm -f {etcd_restore.BUMP_FILE}" for cmd in c.conns["h1"].commands)


def test_restore_run_external_topology_touches_control_plane_hosts_only_for_units():
    c = Cluster(control_plane=("cp1", "cp2"))
    _run(c, control_plane=("cp1", "cp2"))
    assert {h for k, h in c.log if k in ("stop-cp", "start-cp")} == {"cp1", "cp2"}
    assert {h for k, h in c.log if k in ("stop-etcd", "restore")} == {"h1", "h2", "h3"}
    assert etcd_restore.REMOTE_SNAPSHOT not in c.conns["cp1"].files


def test_restore_run_a_snapshot_failing_the_trial_restore_stops_nothing():
    c = Cluster(trial_fails=True)
    with pytest.raises(UserError, match="integrity check.*nothing was stopped"):
        _run(c)
    assert c.log == []
    cleanup = f"rm -rf {etcd_restore.REMOTE_SNAPSHOT} {etcd_restore.CHECK_DIR}"
    assert all(any(cmd == cleanup for cmd in conn.commands)
               for h, conn in c.conns.items() if h.startswith("h"))


def test_restore_run_reads_the_old_revision_once_the_api_servers_are_down():
    c = Cluster(old_revision=5000)
    c.conns["h1"].respond(r"^systemctl stop kube-apiserver", lambda cmd: (
        c.log.append(("stop-cp", "h1")), setattr(c, "rev", 7000), Result(0))[-1])
    out = _run(c)
    assert out.revision > 7000 + etcd_restore.BUMP_MARGIN - 10


def test_restore_run_leaves_units_that_did_not_run_alone():
    c = Cluster()
    c.conns["h2"].respond(r"^systemctl is-active", Result(3, "inactive\nactive\nactive\n"))
    c.conns["h3"].respond(r"^systemctl is-active", Result(3, "inactive\n" * 3))
    out = _run(c)
    stops = {h: [x for x in conn.commands if x.startswith("systemctl st") and "kube" in x]
             for h, conn in c.conns.items()}
    assert stops["h2"] == ["systemctl stop kube-controller-manager kube-scheduler",
                           "systemctl start kube-controller-manager kube-scheduler"]
    assert stops["h3"] == []
    assert out.api_hosts == ["h1"]
    assert not any("readyz" in x for x in c.conns["h2"].commands)


def test_restore_run_needs_every_host():
    c = Cluster()
    del c.conns["h2"]
    with pytest.raises(UserError, match="not connected: h2"):
        _run(c)


# ------------------------------------------------------------------ the role's timer

def _role_run(host, vars_):
    inv = inventory(1, kube_control_plane=["h1"], etcd=["h1"])
    play = Play("etcd backups", ["h1"], ["etcd-backup"], vars={
        "etcd_nodes": {"h1": NODES[0].as_var()}, **vars_})
    recap = run_play(play, inv, {"h1": host}, extra_vars={},
                     console=Console(file=io.StringIO(), width=200))
    recap.raise_on_failure()
    return recap


def test_backup_timer_rendered_when_enabled():
    host = StatefulHost("h1")
    host.respond(r"systemctl show", Result(0, "LoadState=not-found\nUnitFileState=\n"
                                              "ActiveState=inactive\n", ""))
    _role_run(host, {"etcd_backup_enabled": True, "etcd_backup_schedule": "*-*-* 03:00:00",
                     "etcd_backup_retention_count": 4})
    timer = host.files["/etc/systemd/system/etcd-backup.timer"].decode()
    assert "OnCalendar=*-*-* 03:00:00" in timer and "WantedBy=timers.target" in timer
    service = host.files["/etc/systemd/system/etcd-backup.service"].decode()
    assert "Type=oneshot" in service and "ExecStart=/usr/local/sbin/bootstrap-etcd-backup" in \
        service
    script = host.files["/usr/local/sbin/bootstrap-etcd-backup"].decode()
    assert "keep=4" in script and "--endpoints=https://10.0.0.1:2379" in script
    assert "date -u +%Y%m%dT%H%M%SZ" in script
    assert host.modes["/usr/local/sbin/bootstrap-etcd-backup"] == 0o755
    assert "systemctl enable -- etcd-backup.timer" in host.commands
    assert "systemctl start -- etcd-backup.timer" in host.commands


def test_backup_timer_off_by_default_changes_nothing_on_a_clean_host():
    host = StatefulHost("h1")
    host.respond(r"systemctl show", Result(0, "LoadState=not-found\nUnitFileState=\n"
                                              "ActiveState=inactive\n", ""))
    recap = _role_run(host, {})
    assert recap.changed == 0
    assert not host.files


def test_a_damaged_snapshot_that_panics_etcdctl_is_one_line(tmp_path, monkeypatch):
    # bbolt panics on some damaged pages: etcdctl's stderr is a Go stack trace,
    # which must not reach the user as a multi-line error.
    import subprocess

    stack = ("panic: page 3 already freed\n\ngoroutine 7 [running]:\n"
             "go.etcd.io/bbolt.(*freelist).free(...)\n\tgo.etcd.io/bbolt/freelist.go:175 +0x2ba\n"
             "created by go.etcd.io/bbolt.(*Tx).Check\n\tgo.etcd.io/bbolt/tx.go:413 +0x85\n")
    monkeypatch.setattr(backup.shutil, "which", lambda name: "/usr/bin/etcdctl")
    monkeypatch.setattr(backup.subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a, 2, "", stack))
    snap = tmp_path / "bad.db"
    snap.write_bytes(b"x")
    with pytest.raises(UserError) as ei:
        backup.verify_local(snap)
    line = ei.value.line()
    assert "\n" not in line and "integrity" in line and "panic: page 3 already freed" in line, line
