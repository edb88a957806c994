"""SSHConnection against a real sshd on 127.0.0.1 (temp config, key, port)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest

from bootstrap.errors import RemoteError
from bootstrap.remote import RemoteCommandError, RemoteTimeout
from bootstrap.remote.pool import close_all, connect_all, parallel_map
from bootstrap.remote.ssh import SSHConnection

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("sshd", path="/usr/sbin:/usr/bin"),
    reason="needs root and openssh-server",
)


class _Host:
    def __init__(self, name, address, port, user="root", key_file=None):
        self.name, self.address, self.port, self.user, self.key_file = (
            name, address, port, user, key_file)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    d = tmp_path_factory.mktemp("sshd")
    _keygen(d / "host_key")
    _keygen(d / "client_key")
    _keygen(d / "other_key")
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    port = _free_port()
    (d / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1:{port}\nHostKey {d}/host_key\n"
        f"AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\n"
        "UsePAM no\nStrictModes no\nPasswordAuthentication no\nPermitRootLogin prohibit-password\n"
        "MaxSessions 50\nMaxStartups 50\nSubsystem sftp internal-sftp\n"
    )
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation dir
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(d / "sshd_config")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"sshd exited: {proc.stderr.read().decode()}")
                time.sleep(0.05)
        yield {"port": port, "dir": d, "key": str(d / "client_key"),
               "other_key": str(d / "other_key")}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def conn(sshd, tmp_path):
    c = SSHConnection(_Host("h1", "127.0.0.1", sshd["port"], key_file=sshd["key"]),
                      known_hosts=str(tmp_path / "known_hosts"))
    try:
        yield c
    finally:
        c.close()


def test_run_stdout_stderr_exit_code_input_env(conn):
    r = conn.run("echo out; echo err >&2; exit 3", check=False)
    assert (r.exit_code, r.stdout, r.stderr, r.ok) == (3, "out\n", "err\n", False)
    assert conn.run("cat", input="fed\n").stdout == "fed\n"
    assert conn.run('echo "$A-$B"', env={"A": "x y", "B": "'q'"}).stdout == "x y-'q'\n"
    # sh -c semantics whatever the login shell is
    assert conn.run("echo $0").stdout.strip() == "sh"


def test_check_raises_one_line_naming_host(conn):
    with pytest.raises(RemoteCommandError) as ei:
        conn.run("echo boom >&2; exit 7")
    assert "host h1" in ei.value.line() and "exited 7" in ei.value.line()
    assert "boom" in ei.value.line() and "\n" not in ei.value.line()


def test_timeout(conn):
    with pytest.raises(RemoteTimeout) as ei:
        conn.run("sleep 30", timeout=0.5)
    assert "host h1" in ei.value.line()
    # the connection stays usable
    assert conn.run("echo still").stdout == "still\n"


def test_large_output_on_both_streams(conn):
    r = conn.run("head -c 3000000 /dev/zero | tr '\\0' a; head -c 3000000 /dev/zero | tr '\\0' b >&2")
    assert len(r.stdout) == 3000000 and len(r.stderr) == 3000000


def test_put_get_atomic_mode_and_parent_dirs(conn, tmp_path):
    target = tmp_path / "deep" / "er" / "f.txt"
    conn.put(b"one", str(target), 0o600)
    assert target.read_bytes() == b"one" and (target.stat().st_mode & 0o777) == 0o600
    conn.put(b"two", str(target), 0o640)
    assert conn.get(str(target)) == b"two" and (target.stat().st_mode & 0o777) == 0o640
    assert os.listdir(target.parent) == ["f.txt"]  # no temp files left
    src = tmp_path / "local.bin"
    src.write_bytes(os.urandom(200000))
    conn.put_file(str(src), str(tmp_path / "copy.bin"), 0o644)
    assert (tmp_path / "copy.bin").read_bytes() == src.read_bytes()
    with pytest.raises(FileNotFoundError):
        conn.get(str(tmp_path / "missing"))


def test_one_transport_many_threads(conn):
    outs = parallel_map(lambda i: conn.run(f"echo {i}").stdout.strip(), range(20), 8)
    assert outs == [str(i) for i in range(20)]


def test_accept_new_records_key_then_mismatch_is_refused(sshd, tmp_path):
    kh = tmp_path / "known_hosts"
    host = _Host("h1", "127.0.0.1", sshd["port"], key_file=sshd["key"])
    with SSHConnection(host, known_hosts=str(kh)) as c:
        c.run("true")
    assert f"[127.0.0.1]:{sshd['port']} ssh-ed25519" in kh.read_text()
    with SSHConnection(host, known_hosts_policy="strict", known_hosts=str(kh)) as c:
        c.run("true")
    # Same address, different key: what a rebuilt (or spoofed) host looks like.
    _keygen(tmp_path / "fake")
    fake = (tmp_path / "fake.pub").read_text().split()
    kh.write_text(f"[127.0.0.1]:{sshd['port']} {fake[0]} {fake[1]}\n")
    with pytest.raises(RemoteError) as ei:
        SSHConnection(host, known_hosts=str(kh)).open()
    line = ei.value.line()
    assert "host h1" in line and "host key mismatch" in line and str(kh) in line
    # ignore skips the check entirely
    with SSHConnection(host, known_hosts_policy="ignore", known_hosts=str(kh)) as c:
        c.run("true")


def test_strict_refuses_unknown_host(sshd, tmp_path):
    host = _Host("h1", "127.0.0.1", sshd["port"], key_file=sshd["key"])
    with pytest.raises(RemoteError) as ei:
        SSHConnection(host, known_hosts_policy="strict", known_hosts=str(tmp_path / "kh")).open()
    assert "host h1" in ei.value.line() and "not in known_hosts" in ei.value.line()


def test_refused_auth_is_one_line(sshd, tmp_path):
    host = _Host("h1", "127.0.0.1", sshd["port"], key_file=sshd["other_key"])
    with pytest.raises(RemoteError) as ei:
        SSHConnection(host, known_hosts=str(tmp_path / "kh")).open()
    assert "host h1" in ei.value.line() and "authentication refused" in ei.value.line()


def test_connection_refused_and_connect_all(sshd, tmp_path):
    good = _Host("good", "127.0.0.1", sshd["port"], key_file=sshd["key"])
    bad = _Host("bad", "127.0.0.1", _free_port(), key_file=sshd["key"])
    conns = connect_all([good], known_hosts=str(tmp_path / "kh"))
    try:
        assert conns["good"].run("echo ok").stdout == "ok\n"
    finally:
        close_all(conns)
    with pytest.raises(RemoteError) as ei:
        connect_all([good, bad], known_hosts=str(tmp_path / "kh"))
    line = ei.value.line()
    assert "host bad" in line and "cannot connect" in line and "host good" not in line


def test_persistent_shell_keeps_sh_c_semantics(conn):
    assert conn.run("exit 5", check=False).exit_code == 5
    r = conn.run("echo 'unbalanced", check=False)
    assert r.exit_code == 2 and r.stderr  # a syntax error stays in the child sh
    conn.run("cd /tmp; X=1")
    assert conn.run('pwd; echo "x=$X"').stdout != "/tmp\nx=1\n"
    assert conn.run("printf 'no newline'").stdout == "no newline"
    # a daemon keeping stdout open does not hold up the command
    assert conn.run("sleep 5 & echo started", timeout=3).stdout == "started\n"
    assert conn.run("read x; echo got:$x", check=False).stdout == "got:\n"  # stdin is empty


def test_exec_channel_mode_matches(sshd, tmp_path):
    host = _Host("h1", "127.0.0.1", sshd["port"], key_file=sshd["key"])
    with SSHConnection(host, known_hosts=str(tmp_path / "kh"), persistent_shell=False) as c:
        r = c.run("echo out; echo err >&2; exit 3", check=False)
        assert (r.exit_code, r.stdout, r.stderr) == (3, "out\n", "err\n")
        with pytest.raises(RemoteTimeout):
            c.run("sleep 30", timeout=0.5)


def test_shell_killed_mid_command_is_an_error_not_a_rerun(conn, tmp_path):
    marker = tmp_path / "runs"
    # $PPID of the command's sh is the persistent shell: the command kills it.
    with pytest.raises(RemoteError) as ei:
        conn.run(f"echo x >> {marker}; kill -9 $PPID; sleep 1")
    assert "host h1" in ei.value.line() and "lost connection" in ei.value.line()
    assert marker.read_text() == "x\n"  # ran once, not retried
    assert conn.run("echo fresh").stdout == "fresh\n"  # a new shell takes over
