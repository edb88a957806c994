"""Local and fake connections, parallel helpers, error lines, ssh option parsing."""

from __future__ import annotations

import threading

import pytest

from bootstrap.errors import RemoteError, UserError
from bootstrap.remote import Connection, RemoteCommandError, RemoteTimeout, Result
from bootstrap.remote.fake import FakeConnection
from bootstrap.remote.local import LocalConnection
from bootstrap.remote.pool import parallel_map
from bootstrap.remote.ssh import SSHConnection, _ssh_options


def test_implementations_satisfy_the_protocol():
    assert isinstance(LocalConnection(), Connection)
    assert isinstance(FakeConnection("h"), Connection)


def test_local_run_check_input_env_timeout():
    c = LocalConnection("me")
    r = c.run("echo $A; echo e >&2; exit 4", check=False, env={"A": "va"})
    assert (r.exit_code, r.stdout, r.stderr, r.ok) == (4, "va\n", "e\n", False)
    assert c.run("cat", input=b"bytes").stdout == "bytes"
    with pytest.raises(RemoteCommandError) as ei:
        c.run("echo nope >&2; exit 9")
    assert isinstance(ei.value, RemoteError) and isinstance(ei.value, UserError)
    line = ei.value.line()
    assert line.startswith("host me:") and "exited 9" in line and "nope" in line
    with pytest.raises(RemoteTimeout, match="timed out after 0.2s"):
        c.run("sleep 5", timeout=0.2)


def test_local_put_get_is_atomic_and_sets_mode(tmp_path):
    c = LocalConnection()
    target = tmp_path / "a" / "b" / "f"
    c.put(b"x", str(target), 0o600)
    assert c.get(str(target)) == b"x" and (target.stat().st_mode & 0o777) == 0o600
    src = tmp_path / "src"
    src.write_bytes(b"data")
    c.put_file(str(src), str(tmp_path / "dst"), 0o640)
    assert (tmp_path / "dst").read_bytes() == b"data"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f"]


def test_fake_matches_patterns_records_and_stores_files():
    f = FakeConnection("h", {r"^systemctl is-active": Result(3, "inactive\n", "")})
    assert f.run("systemctl is-active etcd", check=False).exit_code == 3
    assert f.run("anything").ok
    f.respond(r"is-active", lambda cmd: Result(0, cmd.upper(), ""))
    assert f.run("systemctl is-active x").stdout == "SYSTEMCTL IS-ACTIVE X"
    with pytest.raises(RemoteCommandError):
        f.respond("boom", Result(1, "", "bad"))
        f.run("boom")
    f.put(b"1", "/etc/x", 0o600)
    assert f.get("/etc/x") == b"1" and f.modes["/etc/x"] == 0o600
    with pytest.raises(FileNotFoundError):
        f.get("/nope")
    assert f.commands[:2] == ["systemctl is-active etcd", "anything"]


def test_fake_respond_overrides_the_same_pattern():
    f = FakeConnection("h", {r"member list": Result(0, "old", ""), r"member": Result(0, "broad", "")})
    f.respond(r"member list", Result(0, "new", ""))
    assert f.run("etcdctl member list").stdout == "new"
    # Moved to the front: it wins over broader patterns registered after it originally.
    f.respond(r"member", Result(0, "broad2", ""))
    f.respond(r"member list", Result(0, "newer", ""))
    assert f.run("etcdctl member list").stdout == "newer"
    assert f.run("etcdctl member add x").stdout == "broad2"


def test_parallel_map_keeps_order_bounds_concurrency_and_raises_first_error():
    running, peak, lock = [0], [0], threading.Lock()
    gate = threading.Barrier(3)

    def work(i):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        if i < 3:
            gate.wait(timeout=10)  # proves 3 really run at once
        with lock:
            running[0] -= 1
        if i == 5:
            raise ValueError("five")
        return i * 2

    with pytest.raises(ValueError, match="five"):
        parallel_map(work, range(8), max_parallel=3)
    assert peak[0] == 3
    assert parallel_map(lambda x: x + 1, [3, 1, 2], 2) == [4, 2, 3]
    assert parallel_map(lambda x: x, [], 4) == []


def test_ssh_options_from_inventory_vars():
    opts = _ssh_options({"ansible_ssh_common_args":
                         "-o UserKnownHostsFile=/s/known_hosts -o StrictHostKeyChecking=yes -oPort=2"})
    assert opts == {"userknownhostsfile": "/s/known_hosts", "stricthostkeychecking": "yes", "port": "2"}

    class H:
        name, address, port, user, key_file = "h", "10.0.0.1", 22, "root", None
        vars = {"ansible_ssh_common_args": "-o UserKnownHostsFile=/s/kh -o StrictHostKeyChecking=yes"}

    c = SSHConnection(H())
    assert (c.known_hosts, c.policy) == ("/s/kh", "strict")
    c = SSHConnection(H(), known_hosts_policy="ignore", known_hosts="/x")
    assert (c.known_hosts, c.policy) == ("/x", "ignore")
    with pytest.raises(RemoteError, match="unknown known-hosts policy"):
        SSHConnection(H(), known_hosts_policy="maybe")


def test_refused_port_is_one_line_naming_the_host():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused

        class H:
            name, address, user, key_file = "ghost", "127.0.0.1", "root", None

        H.port = port
        with pytest.raises(RemoteError) as ei:
            SSHConnection(H(), connect_timeout=2, known_hosts_policy="ignore").open()
    line = ei.value.line()
    assert "host ghost" in line and "cannot connect" in line and "\n" not in line


def test_silent_port_is_one_line_and_no_traceback(capsys):
    import socket

    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()  # accepts, never speaks SSH

        class H:
            name, address, user, key_file = "mute", "127.0.0.1", "root", None

        H.port = srv.getsockname()[1]
        with pytest.raises(RemoteError) as ei:
            SSHConnection(H(), connect_timeout=0.5, known_hosts_policy="ignore").open()
    assert "host mute" in ei.value.line() and "no SSH greeting" in ei.value.line()
    assert "Traceback" not in capsys.readouterr().err
