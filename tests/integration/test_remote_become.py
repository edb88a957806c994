"""Become (sudo) and jump hosts against real sshds on 127.0.0.1.

A non-root login user with passwordless sudo gets every command and file
change done as root; one without sudo rights is refused in one line; a host
behind a jump host is reached through it (a jump host that forbids TCP
forwarding makes the connection fail, so the tunnel is really used).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from bootstrap.config._connection import JumpHost
from bootstrap.errors import RemoteError
from bootstrap.remote.local import LocalConnection
from bootstrap.remote.pool import connection_for
from bootstrap.remote.ssh import SSHConnection

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("sshd", path="/usr/sbin:/usr/bin")
    or not shutil.which("sudo"),
    reason="needs root, openssh-server and sudo",
)

SUDO_USER, PLAIN_USER = "bsbecome", "bsplain"


class Host:
    def __init__(self, name, address, port, user="root", key_file=None, *, become=False,
                 become_user=None, jump_host=None, connection="ssh"):
        self.name, self.address, self.port, self.user, self.key_file = (
            name, address, port, user, key_file)
        self.become, self.become_user, self.jump_host = become, become_user, jump_host
        self.connection, self.vars = connection, {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_sshd(d: Path, extra: str = "") -> tuple[subprocess.Popen, int]:
    port = _free_port()
    conf = d / f"sshd_config.{port}"
    conf.write_text(
        f"ListenAddress 127.0.0.1:{port}\nHostKey {d}/host_key\n"
        f"AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.{port}.pid\n"
        "UsePAM no\nStrictModes no\nPasswordAuthentication no\n"
        "PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n" + extra)
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"sshd exited: {proc.stderr.read().decode()}")
            time.sleep(0.05)
    pytest.fail("sshd did not listen")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def sshd():
    # Not under pytest's 0700 tmp dirs: sshd reads authorized_keys as the login user.
    d = Path(tempfile.mkdtemp(prefix="bootstrap-become-"))
    os.chmod(d, 0o755)
    made_users: list[str] = []
    procs: list[subprocess.Popen] = []
    sudoers = Path(f"/etc/sudoers.d/{SUDO_USER}-bootstrap-test")
    # sshd needs its privilege separation dir, which only its own unit's start makes: on a
    # machine booted without sshd running (as setup.sh installs it), /run has none.
    privsep = Path("/run/sshd")
    made_privsep = not privsep.exists()
    try:
        privsep.mkdir(mode=0o755, exist_ok=True)
        for name in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)],
                           check=True)
        (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
        os.chmod(d / "authorized_keys", 0o644)
        for user in (SUDO_USER, PLAIN_USER):
            subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/bin/sh", user],
                           check=True)
            made_users.append(user)
            # '*' (no password) rather than useradd's '!' (locked): sshd refuses locked users.
            subprocess.run(["usermod", "-p", "*", user], check=True)
        sudoers.write_text(f"{SUDO_USER} ALL=(ALL) NOPASSWD: ALL\n")
        os.chmod(sudoers, 0o440)
        main, port = _start_sshd(d)
        procs.append(main)
        nofwd, nofwd_port = _start_sshd(d, "AllowTcpForwarding no\n")
        procs.append(nofwd)
        yield {"dir": d, "port": port, "nofwd_port": nofwd_port, "key": str(d / "client_key")}
    finally:
        for proc in procs:
            _stop(proc)
        sudoers.unlink(missing_ok=True)
        for user in made_users:
            subprocess.run(["userdel", "-f", user], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)
        if made_privsep:
            shutil.rmtree(privsep, ignore_errors=True)


def _conn(sshd, tmp_path, **kw) -> SSHConnection:
    host = Host("h1", "127.0.0.1", kw.pop("port", sshd["port"]), key_file=sshd["key"], **kw)
    return SSHConnection(host, known_hosts=str(tmp_path / "known_hosts"))


def test_become_runs_every_command_as_root(sshd, tmp_path):
    with _conn(sshd, tmp_path, user=SUDO_USER, become=True) as c:
        assert c.become_user == "root"
        assert c.run("id -un").stdout.strip() == "root"  # the persistent shell
        assert c.run("id -un; cat", input="x\n").stdout == "root\nx\n"  # an exec channel
        assert c.run("echo $HOME").stdout.strip() == "/root"


def test_become_writes_and_reads_root_files(sshd, tmp_path):
    target = Path(tempfile.mkdtemp(prefix="bootstrap-become-t-"))
    os.chmod(target, 0o700)  # only root may enter
    try:
        with _conn(sshd, tmp_path, user=SUDO_USER, become=True) as c:
            path = str(target / "sub" / "key.pem")
            c.put(b"secret\x00\xff", path, mode=0o600)
            st = os.stat(path)
            assert (st.st_uid, oct(st.st_mode & 0o777)) == (0, "0o600")
            assert Path(path).read_bytes() == b"secret\x00\xff"
            assert c.get(path) == b"secret\x00\xff"
            with pytest.raises(FileNotFoundError):
                c.get(str(target / "missing"))
            c.put_file(path, str(target / "copy"), mode=0o644)
            assert Path(target / "copy").read_bytes() == b"secret\x00\xff"
        # Nothing staged is left behind in /tmp.
        assert not [p for p in Path("/tmp").glob(".bootstrap-*.tmp")
                    if p.owner() == SUDO_USER]
    finally:
        shutil.rmtree(target, ignore_errors=True)


def test_become_user_other_than_root(sshd, tmp_path):
    with _conn(sshd, tmp_path, user=SUDO_USER, become=True, become_user=PLAIN_USER) as c:
        assert c.run("id -un").stdout.strip() == PLAIN_USER


def test_without_become_a_non_root_user_stays_itself(sshd, tmp_path):
    with _conn(sshd, tmp_path, user=SUDO_USER) as c:
        assert c.become_user is None
        assert c.run("id -un").stdout.strip() == SUDO_USER
        with pytest.raises(RemoteError, match="cannot write"):
            c.put(b"x", "/etc/bootstrap-become-test")


def test_a_user_without_sudo_rights_is_refused_in_one_line(sshd, tmp_path):
    c = _conn(sshd, tmp_path, user=PLAIN_USER, become=True)
    with pytest.raises(RemoteError) as ei:
        c.open()
    line = ei.value.line()
    assert f"sudo to root refused for user {PLAIN_USER}" in line and "NOPASSWD" in line
    assert "\n" not in line
    c.close()


def test_jump_host_tunnels_the_connection(sshd, tmp_path):
    jump = JumpHost("127.0.0.1", sshd["port"], "root")
    with _conn(sshd, tmp_path, jump_host=jump) as c:
        assert c.run("echo $SSH_CONNECTION").stdout.split()[2] == "127.0.0.1"
        assert c.run("id -un").stdout.strip() == "root"
        c.put(b"via jump", str(tmp_path / "f"))
        assert c.get(str(tmp_path / "f")) == b"via jump"


def test_jump_host_that_refuses_forwarding_fails_naming_it(sshd, tmp_path):
    jump = JumpHost("127.0.0.1", sshd["nofwd_port"], "root")
    c = _conn(sshd, tmp_path, jump_host=jump)
    with pytest.raises(RemoteError) as ei:
        c.open()
    assert f"via root@127.0.0.1:{sshd['nofwd_port']}" in ei.value.line()
    c.close()


def test_jump_host_with_become(sshd, tmp_path):
    jump = JumpHost("127.0.0.1", sshd["port"], SUDO_USER)
    with _conn(sshd, tmp_path, user=SUDO_USER, become=True, jump_host=jump) as c:
        assert c.run("id -un").stdout.strip() == "root"


def test_local_connection_for_ansible_connection_local_and_its_become():
    conn = connection_for(Host("here", "ignored", 22, connection="local"))
    assert isinstance(conn, LocalConnection) and conn.become_user is None
    assert conn.open().run("id -un").stdout.strip() == pwd.getpwuid(os.geteuid()).pw_name
    # root becoming another user goes through sudo too.
    other = connection_for(Host("here", "x", 22, connection="local", become=True,
                                become_user="nobody"))
    assert other.open().run("id -un").stdout.strip() == "nobody"
    d = Path(tempfile.mkdtemp(prefix="bootstrap-become-l-"))  # pytest's tmp is 0700
    try:
        os.chmod(d, 0o777)
        other.put(b"hi", str(d / "f"), mode=0o640)
        assert pwd.getpwuid(os.stat(d / "f").st_uid).pw_name == "nobody"
        assert oct(os.stat(d / "f").st_mode & 0o777) == "0o640"
        assert other.get(str(d / "f")) == b"hi"
        with pytest.raises(RemoteError, match="cannot write"):
            other.put(b"x", "/etc/bootstrap-become-test")  # nobody may not write there
    finally:
        shutil.rmtree(d, ignore_errors=True)
