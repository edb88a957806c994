"""Operations: facts in, commands out; a host already in the wanted state yields nothing."""

from __future__ import annotations

import hashlib

import pytest

from bootstrap.engine.ops import HostState, OpContext, OpError
from bootstrap.engine.ops.base import Command, Diff, Upload
from bootstrap.engine.ops.files import op_copy, op_file, op_template
from bootstrap.engine.ops.system import op_command, op_package, op_systemd
from bootstrap.engine.ops.wait import op_wait_for
from bootstrap.remote import Result
from bootstrap.remote.fake import FakeConnection


def ctx_for(conn, tmp_path=None, vars=None, diff=False, dry_run=False, state=None):
    return OpContext(host=conn.host, conn=conn, vars=vars or {}, state=state or HostState(),
                     search_path=[str(tmp_path)] if tmp_path else [], diff=diff, dry_run=dry_run)


def actions(op, ctx, args):
    """Drive an op like the runner does, answering every command with success."""
    gen = op(ctx, args)
    out, send = [], None
    while True:
        try:
            action = gen.send(send)
        except StopIteration:
            return out
        out.append(action)
        send = Result(0, "", "") if isinstance(action, Command) else None


def cmds(acts):
    return [a.cmd for a in acts if isinstance(a, Command)]


def stat(kind="directory", mode="755", owner="root", group="root", extra=""):
    return Result(0, f"{kind}|{mode}|{owner}|{group}|0|0\n{extra}", "")


MISSING = Result(0, "missing\n", "")


# -- file -----------------------------------------------------------------
def test_file_directory_missing_creates_with_mode_and_owner():
    conn = FakeConnection("h", {r"stat -c": MISSING})
    got = cmds(actions(op_file, ctx_for(conn), {"path": "/d", "state": "directory", "mode": "0700", "owner": "root"}))
    assert got == ["mkdir -p -- /d", "chmod 0700 -- /d", "chown root -- /d"]


def test_file_directory_converged_yields_nothing_one_fact_round_trip():
    conn = FakeConnection("h", {r"stat -c": stat(mode="700")})
    assert actions(op_file, ctx_for(conn), {"path": "/d", "state": "directory", "mode": "0700", "owner": "root"}) == []
    assert len(conn.commands) == 1


def test_file_directory_wrong_mode_and_group_fixed_only():
    conn = FakeConnection("h", {r"stat -c": stat(mode="755", group="adm")})
    got = cmds(actions(op_file, ctx_for(conn), {"path": "/d", "state": "directory", "mode": 0o700, "group": "root"}))
    assert got == ["chmod 0700 -- /d", "chown :root -- /d"]


def test_file_directory_over_a_file_is_an_error():
    conn = FakeConnection("h", {r"stat -c": stat(kind="regular file")})
    with pytest.raises(OpError, match="not a directory"):
        actions(op_file, ctx_for(conn), {"path": "/d", "state": "directory"})


def test_file_absent_and_link():
    conn = FakeConnection("h", {r"stat -c": stat(kind="regular file")})
    assert cmds(actions(op_file, ctx_for(conn), {"path": "/f", "state": "absent"})) == ["rm -rf -- /f"]
    conn = FakeConnection("h", {r"stat -c": MISSING})
    assert actions(op_file, ctx_for(conn), {"path": "/f", "state": "absent"}) == []
    assert cmds(actions(op_file, ctx_for(conn), {"path": "/cur", "src": "/opt/v1", "state": "link"})) == [
        "ln -sfn -- /opt/v1 /cur"]
    conn = FakeConnection("h", {r"stat -c": stat(kind="symbolic link", extra="L /opt/v1\n")})
    assert actions(op_file, ctx_for(conn), {"path": "/cur", "src": "/opt/v1", "state": "link"}) == []
    assert cmds(actions(op_file, ctx_for(conn), {"path": "/cur", "src": "/opt/v2", "state": "link"})) == [
        "ln -sfn -- /opt/v2 /cur"]


def test_file_bad_mode_and_unknown_arg():
    conn = FakeConnection("h", {r"stat -c": MISSING})
    with pytest.raises(OpError, match="bad file mode"):
        actions(op_file, ctx_for(conn), {"path": "/d", "state": "directory", "mode": "rwx"})
    with pytest.raises(OpError, match="unknown argument"):
        actions(op_file, ctx_for(conn), {"path": "/d", "colour": "red"})


# -- copy / template --------------------------------------------------------
def _file_stat(data: bytes, mode="644"):
    return stat(kind="regular file", mode=mode, extra=f"H {hashlib.sha256(data).hexdigest()}\n")


def test_copy_content_new_file_uploads_with_default_mode():
    conn = FakeConnection("h", {r"stat -c": MISSING})
    acts = actions(op_copy, ctx_for(conn), {"content": "a=1\n", "dest": "/etc/x.conf"})
    assert [type(a) for a in acts] == [Upload]
    assert acts[0].data == b"a=1\n" and acts[0].mode == 0o644


def test_copy_same_hash_yields_nothing_and_only_mode_if_differs():
    data = b"a=1\n"
    conn = FakeConnection("h", {r"stat -c": _file_stat(data)})
    assert actions(op_copy, ctx_for(conn), {"content": "a=1\n", "dest": "/x", "mode": "0644"}) == []
    conn = FakeConnection("h", {r"stat -c": _file_stat(data, mode="600")})
    assert cmds(actions(op_copy, ctx_for(conn), {"content": "a=1\n", "dest": "/x", "mode": "0644"})) == [
        "chmod 0644 -- /x"]


def test_copy_changed_content_keeps_existing_mode_and_diffs():
    conn = FakeConnection("h", {r"stat -c": _file_stat(b"old\n", mode="600")}, files={"/x": b"old\n"})
    acts = actions(op_copy, ctx_for(conn, diff=True), {"content": "new\n", "dest": "/x"})
    diff = [a for a in acts if isinstance(a, Diff)][0].text
    assert "-old" in diff and "+new" in diff
    up = [a for a in acts if isinstance(a, Upload)][0]
    assert up.mode == 0o600


def test_copy_replaces_a_symlink_instead_of_following_it():
    state = HostState()
    conn = FakeConnection("h", {r"stat -c": stat(kind="symbolic link", mode="777", extra="L /dev/null\n")})
    acts = actions(op_copy, ctx_for(conn, state=state),
                   {"content": "[Unit]\n", "dest": "/etc/systemd/system/etcd.service"})
    assert [type(a) for a in acts] == [Upload] and acts[0].mode == 0o644
    assert state.unit_files_changed


def test_copy_src_from_role_files_dir(tmp_path):
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "a.txt").write_bytes(b"payload")
    conn = FakeConnection("h", {r"stat -c": MISSING})
    acts = actions(op_copy, ctx_for(conn, tmp_path), {"src": "a.txt", "dest": "/a", "mode": "0600"})
    assert acts[0].data == b"payload" and acts[0].mode == 0o600
    with pytest.raises(OpError, match="not found"):
        actions(op_copy, ctx_for(conn, tmp_path), {"src": "nope.txt", "dest": "/a"})


def test_copy_tree_uploads_only_differing_files(tmp_path):
    src = tmp_path / "wh"
    src.mkdir()
    (src / "a.whl").write_bytes(b"A")
    (src / "b.whl").write_bytes(b"B")
    listing = f"{hashlib.sha256(b'A').hexdigest()}  ./a.whl\n{hashlib.sha256(b'old').hexdigest()}  ./b.whl\n"
    conn = FakeConnection("h", {r"sha256sum \{\}": Result(0, listing, "")})
    acts = actions(op_copy, ctx_for(conn), {"src": str(src) + "/", "dest": "/w"})
    assert [(a.dest, a.src) for a in acts if isinstance(a, Upload)] == [("/w/b.whl", str(src / "b.whl"))]
    listing = f"{hashlib.sha256(b'A').hexdigest()}  ./a.whl\n{hashlib.sha256(b'B').hexdigest()}  ./b.whl\n"
    conn = FakeConnection("h", {r"sha256sum \{\}": Result(0, listing, "")})
    assert actions(op_copy, ctx_for(conn), {"src": str(src), "dest": "/w"}) == []
    assert len(conn.commands) == 1


def test_template_renders_with_vars_and_marks_unit_files(tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "u.service.j2").write_text("[Service]\nExecStart={{ bin }} --x\n")
    state = HostState()
    conn = FakeConnection("h", {r"stat -c": MISSING})
    acts = actions(op_template, ctx_for(conn, tmp_path, vars={"bin": "/usr/bin/etcd"}, state=state),
                   {"src": "u.service.j2", "dest": "/etc/systemd/system/u.service"})
    assert acts[0].data == b"[Service]\nExecStart=/usr/bin/etcd --x\n"
    assert state.unit_files_changed


def test_template_undefined_variable_is_an_error(tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "t.j2").write_text("{{ nope }}")
    conn = FakeConnection("h", {r"stat -c": MISSING})
    with pytest.raises(Exception, match="nope"):
        actions(op_template, ctx_for(conn, tmp_path), {"src": "t.j2", "dest": "/t"})


# -- systemd ----------------------------------------------------------------
def unit(load="loaded", file="enabled", active="active", reload="no"):
    return Result(0, f"LoadState={load}\nUnitFileState={file}\nActiveState={active}\nNeedDaemonReload={reload}\n", "")


def test_systemd_converged_yields_nothing():
    conn = FakeConnection("h", {r"systemctl show": unit()})
    args = {"name": "etcd", "enabled": True, "state": "started", "daemon_reload": True, "masked": False}
    assert actions(op_systemd, ctx_for(conn), args) == []


def test_systemd_fresh_unit_reloads_unmasks_enables_starts():
    conn = FakeConnection("h", {r"systemctl show": unit(file="masked", active="inactive", reload="yes")})
    args = {"name": "etcd", "enabled": True, "state": "started", "daemon_reload": True, "masked": False}
    assert cmds(actions(op_systemd, ctx_for(conn), args)) == [
        "systemctl unmask -- etcd.service", "systemctl daemon-reload",
        "systemctl enable -- etcd.service", "systemctl start -- etcd.service"]


def test_systemd_daemon_reload_after_unit_file_written_this_run():
    state = HostState(unit_files_changed=True)
    conn = FakeConnection("h", {r"systemctl show": unit()})
    assert cmds(actions(op_systemd, ctx_for(conn, state=state), {"name": "x.service", "daemon_reload": True})) == [
        "systemctl daemon-reload"]
    assert not state.unit_files_changed


def test_systemd_restarted_always_stopped_only_if_running_mask():
    conn = FakeConnection("h", {r"systemctl show": unit()})
    assert cmds(actions(op_systemd, ctx_for(conn), {"name": "etcd", "state": "restarted"})) == [
        "systemctl restart -- etcd.service"]
    assert cmds(actions(op_systemd, ctx_for(conn), {"name": "etcd", "state": "stopped", "enabled": False})) == [
        "systemctl disable -- etcd.service", "systemctl stop -- etcd.service"]
    assert cmds(actions(op_systemd, ctx_for(conn), {"name": "etcd", "masked": True})) == [
        "systemctl stop -- etcd.service", "systemctl mask -- etcd.service"]
    conn = FakeConnection("h", {r"systemctl show": unit(file="static", active="inactive")})
    assert actions(op_systemd, ctx_for(conn), {"name": "etcd", "state": "stopped", "enabled": True}) == []


# -- package ------------------------------------------------------------------
def test_package_present_yields_no_apt_command():
    out = "iptables\tinstalled\nrunc\tinstalled\n"
    conn = FakeConnection("h", {r"dpkg-query": Result(0, out, "")})
    assert actions(op_package, ctx_for(conn), {"name": ["iptables", "runc"]}) == []


def test_package_missing_installs_only_missing():
    out = "iptables\tinstalled\nrunc\tnot-installed\n"
    conn = FakeConnection("h", {r"dpkg-query": Result(1, out, "")})
    got = cmds(actions(op_package, ctx_for(conn), {"name": "iptables,runc,haproxy"}))
    assert len(got) == 1 and "apt-get install" in got[0]
    assert "runc haproxy" in got[0] and "iptables" not in got[0]


# -- command ------------------------------------------------------------------
def test_command_runs_and_registers_output():
    ctx = ctx_for(FakeConnection("h"))
    gen = op_command(ctx, {"cmd": "echo hi"})
    action = next(gen)
    assert action.cmd == "echo hi" and action.changes
    with pytest.raises(StopIteration):
        gen.send(Result(0, "hi\n", ""))
    assert ctx.out["stdout"] == "hi" and ctx.out["rc"] == 0


def test_command_creates_and_removes_skip():
    conn = FakeConnection("h", {r"\[ -e": Result(0, "creates=1\n", "")})
    assert actions(op_command, ctx_for(conn), {"cmd": "make", "creates": "/done"}) == []
    conn = FakeConnection("h", {r"\[ -e": Result(0, "creates=0\n", "")})
    assert cmds(actions(op_command, ctx_for(conn), {"cmd": "make", "creates": "/done", "chdir": "/src"})) == [
        "cd /src && make"]
    conn = FakeConnection("h", {r"\[ -e": Result(0, "removes=0\n", "")})
    assert actions(op_command, ctx_for(conn), {"cmd": "rm /x", "removes": "/x"}) == []


def test_command_changed_when_and_failed_when_conditions():
    ctx = ctx_for(FakeConnection("h"))
    [action] = actions(op_command, ctx, {"cmd": "x", "changed_when": "'loaded' in stdout", "failed_when": "rc > 1"})
    assert action.changed_if(Result(0, "loaded br_netfilter", "")) is True
    assert action.changed_if(Result(0, "", "")) is False
    assert action.failed_if(Result(1, "", "")) is False and action.failed_if(Result(2, "", "")) is True
    [action] = actions(op_command, ctx, {"cmd": "x", "changed_when": False})
    assert action.changes is False


# -- wait_for -------------------------------------------------------------------
def test_wait_for_is_one_command_that_changes_nothing():
    [action] = actions(op_wait_for, ctx_for(FakeConnection("h")),
                       {"url": "https://10.0.0.1:2379/health", "ca": "/ca", "cert": "/c", "key": "/k",
                        "timeout": 30})
    assert action.changes is False and action.cmd.startswith("/usr/bin/python3 -c")
    assert '"status": [200]' in action.cmd and action.timeout >= 30
    with pytest.raises(OpError):
        actions(op_wait_for, ctx_for(FakeConnection("h")), {"timeout": 3})


def test_wait_for_script_really_polls_a_port(tmp_path):
    """The generated script runs under a real python3 against a real listener."""
    import socket

    from bootstrap.remote.local import LocalConnection

    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        [action] = actions(op_wait_for, ctx_for(FakeConnection("h")), {"port": port, "timeout": 10})
        assert LocalConnection().run(action.cmd, check=False).ok
    [action] = actions(op_wait_for, ctx_for(FakeConnection("h")), {"port": port, "timeout": 0.5})
    res = LocalConnection().run(action.cmd, check=False)
    assert not res.ok and "timed out" in res.stderr
