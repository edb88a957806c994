"""The remote layer applies the inventory's connection settings: become (sudo), jump hosts,
ansible_connection=local. Real sshd and sudo: tests/integration/test_remote_become.py."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from bootstrap.config.inventory import load_inventory
from bootstrap.remote.local import LocalConnection
from bootstrap.remote.pool import connection_for
from bootstrap.remote.ssh import SSHConnection

DATA = Path(__file__).parent / "data" / "kubespray"


def test_kubespray_bastion_become_inventory_becomes_connections():
    inv = load_inventory(DATA / "bastion-become" / "inventory.ini")
    cp1 = connection_for(inv.hosts["cp1"])
    assert isinstance(cp1, SSHConnection)
    assert (cp1.user, cp1.become_user) == ("ubuntu", "root")
    assert cp1.key_file == os.path.expanduser("~/.ssh/cluster_ed25519")
    # Every host behind the bastion goes through it; node-c names its own jump host.
    assert cp1.jump.spec() == "jump@198.51.100.7:2022"
    assert "via jump@198.51.100.7:2022" in cp1._where()
    assert connection_for(inv.hosts["node-c"]).jump.spec() == "ops@203.0.113.5:2200"
    assert cp1._sudo() == "sudo -n -H -u root -- "


class H:
    def __init__(self, **kw):
        self.name, self.address, self.port, self.user, self.key_file = "h", "10.0.0.1", 22, \
            "root", None
        self.vars, self.connection, self.become, self.become_user, self.jump_host = \
            {}, "ssh", False, None, None
        self.__dict__.update(kw)


@pytest.mark.parametrize("kw, want", [
    ({}, None),
    ({"become": True}, None),  # root already: no sudo
    ({"user": "deploy"}, None),  # ansible_become: false
    ({"user": "deploy", "become": True}, "root"),
    ({"user": "deploy", "become": True, "become_user": "etcd"}, "etcd"),
    ({"become": True, "become_user": "etcd"}, "etcd"),
])
def test_become_user_is_applied_only_when_it_changes_the_user(kw, want):
    conn = SSHConnection(H(**kw))
    assert conn.become_user == want
    assert conn._sudo() == ("" if want is None else f"sudo -n -H -u {want} -- ")


def test_ansible_connection_local_runs_here_without_ssh(tmp_path):
    conn = connection_for(H(connection="local"))
    assert isinstance(conn, LocalConnection)
    conn.open().put(b"x", str(tmp_path / "a" / "f"), mode=0o600)
    assert conn.get(str(tmp_path / "a" / "f")) == b"x"


def test_local_become_goes_through_sudo_n(tmp_path, monkeypatch):
    # A stand-in sudo that logs its arguments and runs the command after "--".
    log = tmp_path / "sudo.log"
    fake = tmp_path / "bin" / "sudo"
    fake.parent.mkdir()
    fake.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        printf "%s\\n" "$*" >> {log}
        while [ "$1" != "--" ]; do shift; done; shift
        exec "$@"
    """))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    conn = LocalConnection("here", become_user="someone-else")
    assert conn.open().run("echo hi").stdout == "hi\n"
    conn.put(b"data", str(tmp_path / "out" / "f"), mode=0o640)
    assert (tmp_path / "out" / "f").read_bytes() == b"data"
    assert oct((tmp_path / "out" / "f").stat().st_mode & 0o777) == "0o640"
    assert conn.get(str(tmp_path / "out" / "f")) == b"data"
    with pytest.raises(FileNotFoundError):
        conn.get(str(tmp_path / "missing"))
    calls = log.read_text().splitlines()
    assert calls and all(c.startswith("-n -H -u someone-else -- sh -c ") for c in calls)


def test_local_become_refused_is_one_line(tmp_path, monkeypatch):
    fake = tmp_path / "sudo"
    fake.write_text("#!/bin/sh\necho 'sudo: a password is required' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    from bootstrap.errors import RemoteError

    with pytest.raises(RemoteError) as ei:
        LocalConnection("here", become_user="someone-else").open()
    assert "sudo to someone-else refused: sudo: a password is required" in ei.value.line()
