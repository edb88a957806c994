"""The shipped roles (prepare, agents) and the wheelhouse, against fake hosts."""

from __future__ import annotations

import io

from rich.console import Console
from test_engine import StatefulHost, inventory  # same dir: pytest puts it on sys.path

from bootstrap.engine import Play, run_play
from bootstrap.flows import wheelhouse
from bootstrap.remote import Result
from bootstrap.remote.fake import FakeConnection

ALL_INSTALLED = "".join(f"{p}\tinstalled\n" for p in (
    "iptables", "conntrack", "runc", "containernetworking-plugins", "python3", "python3-venv"))


def _run(play, inv, conns, **kw):
    return run_play(play, inv, conns, extra_vars={},
                    console=Console(file=io.StringIO(), width=200), **kw)


class AccountsHost(StatefulHost):
    """StatefulHost with /etc/passwd and /etc/group that groupadd/useradd change."""

    def __init__(self, name):
        super().__init__(name)
        self.groups: dict[str, int] = {"root": 0}
        self.users: dict[str, tuple[str, str]] = {}  # name -> (primary group, shell)

    def run(self, cmd, **kw):
        words = cmd.split()
        if cmd.startswith("getent group -- "):
            self.commands.append(cmd)
            g = words[-1]
            return Result(0, f"{g}:x:{self.groups[g]}:\n") if g in self.groups else Result(2)
        if cmd.startswith("getent passwd -- "):
            self.commands.append(cmd)
            u = words[3]
            if u not in self.users:
                return Result(2)
            group, shell = self.users[u]
            return Result(0, f"{u}:x:999:{self.groups[group]}:Kubernetes user:/home/{u}:{shell}\n"
                             f"{group}\n{group}\n")
        if words[0] == "groupadd":
            self.groups[words[-1]] = 900 + len(self.groups)
        if words[0] == "useradd":
            self.users[words[-1]] = (words[words.index("-g") + 1], words[words.index("-s") + 1])
        return super().run(cmd, **kw)


def _prepared_host(name):
    host = AccountsHost(name)
    host.respond(r"dpkg-query", Result(0, ALL_INSTALLED, ""))
    host.respond(r"/sys/module", Result(0, "", ""))  # all modules loaded
    host.respond(r"test -e /proc/sys/net/bridge", Result(0, "", ""))
    return host


def test_prepare_on_a_host_with_everything_installed_runs_no_apt():
    inv = inventory(1)
    host = _prepared_host("h1")
    recap = _run(Play("prepare", ["all"], ["prepare"]), inv, {"h1": host})
    assert not recap.failed, recap.failures
    assert not any("apt-get" in c for c in host.commands)
    conf = host.files["/etc/sysctl.d/99-bootstrap.conf"].decode()
    assert "net.ipv4.ip_forward = 1" in conf and "net.bridge.bridge-nf-call-iptables = 1" in conf
    assert any(c.startswith("sysctl -q -e -p") for c in host.commands)  # handler ran
    # kubespray's kube user: system account, no home, no login, primary group kube-cert.
    assert "groupadd -r -- kube-cert" in host.commands
    assert ("useradd -r -M -g kube-cert -c 'Kubernetes user' -s /sbin/nologin -- kube"
            in host.commands)
    assert host.owners["/etc/kubernetes"] == "kube"
    assert host.owners["/etc/kubernetes/manifests"] == "kube"
    assert host.owners.get("/etc/kubernetes/pki", "root") == "root"
    n = len(host.commands)
    again = _run(Play("prepare", ["all"], ["prepare"]), inv, {"h1": host})
    assert again.changed == 0 and not any(c.startswith("sysctl") for c in host.commands[n:])
    assert not any(c.split()[0] in ("useradd", "usermod", "groupadd") for c in host.commands[n:])


def test_prepare_installs_only_what_is_missing_and_skips_bridge_keys_without_module():
    host = AccountsHost("h1")
    host.respond(r"dpkg-query", Result(1, ALL_INSTALLED.replace("runc\tinstalled", "runc\tnot-installed"), ""))
    host.respond(r"/sys/module", Result(0, "br_netfilter\n", ""))
    host.respond(r"test -e /proc/sys/net/bridge", Result(1, "", ""))
    host.respond(r"^modprobe", Result(1, "", "not permitted"))
    recap = _run(Play("prepare", ["all"], ["prepare"]), inventory(1), {"h1": host})
    assert not recap.failed, recap.failures
    [apt] = [c for c in host.commands if "apt-get install" in c]
    assert " runc " in f" {apt.split('--no-install-recommends')[1].split('||')[0]} "
    assert "modprobe br_netfilter" in host.commands
    assert "bridge" not in host.files["/etc/sysctl.d/99-bootstrap.conf"].decode()


def test_agents_role_skips_a_host_that_has_this_wheel_set(tmp_path):
    wh = tmp_path / "wh"
    wh.mkdir()
    (wh / "bootstrap-0.1.0-py3-none-any.whl").write_bytes(b"w")
    (wh / "pip-25.0-py3-none-any.whl").write_bytes(b"p")
    av = {"agents_version": "0.1.0", "agents_wheelhouse_local": str(wh), "agents_wheelset": "abc",
          "agents_pip_wheel": "pip-25.0-py3-none-any.whl"}
    fresh = StatefulHost("h1")
    fresh.respond(r"^test -e", Result(1, "", ""))
    fresh.respond(r"\[ -e", Result(0, "creates=0\n", ""))
    recap = _run(Play("agents", ["all"], ["agents"], vars=av), inventory(1), {"h1": fresh})
    assert not recap.failed, recap.failures
    assert "/var/lib/bootstrap/wheelhouse/0.1.0/bootstrap-0.1.0-py3-none-any.whl" in fresh.files
    [install] = [c for c in fresh.commands if "pip install" in c or "/pip install" in c.replace("\n", " ")]
    assert "--no-index" in install and "/opt/bootstrap/0.1.0/.installed-abc" in install
    assert any(c.startswith("ln -sfn -- /opt/bootstrap/0.1.0 /opt/bootstrap/current") for c in fresh.commands)

    done = FakeConnection("h1")
    done.respond(r"^test -e", Result(0, "", ""))
    done.respond(r"\[ -e", Result(0, "creates=1\n", ""))
    done.respond(r"stat -c", Result(0, "symbolic link|777|root|root|0|0\nL /opt/bootstrap/0.1.0\n", ""))
    recap = _run(Play("agents", ["all"], ["agents"], vars=av), inventory(1), {"h1": done})
    assert recap.changed == 0 and done.puts == []


def test_wheelhouse_digest_follows_wheels_and_source(tmp_path, monkeypatch):
    wh = tmp_path / "wh"
    wh.mkdir()
    (wh / "bootstrap-0.1.0-py3-none-any.whl").write_bytes(b"one")
    (wh / "pip-25.0-py3-none-any.whl").write_bytes(b"pip")
    monkeypatch.setenv("BOOTSTRAP_WHEELHOUSE", str(wh))
    first = wheelhouse.agents_vars()
    assert first["agents_pip_wheel"] == "pip-25.0-py3-none-any.whl"
    assert "bootstrap-0.1.0-py3-none-any.whl" in (wh / "SHA256SUMS").read_text()
    assert wheelhouse.agents_vars()["agents_wheelset"] == first["agents_wheelset"]
    (wh / "bootstrap-0.1.0-py3-none-any.whl").write_bytes(b"two")
    assert wheelhouse.agents_vars()["agents_wheelset"] != first["agents_wheelset"]

    tree = tmp_path / "src"
    (tree / "bootstrap").mkdir(parents=True)
    (tree / "pyproject.toml").write_text("[project]\n")
    (tree / "bootstrap" / "a.py").write_text("x = 1\n")
    d1 = wheelhouse.source_digest(tree)
    (tree / "bootstrap" / "__pycache__").mkdir()
    (tree / "bootstrap" / "__pycache__" / "a.pyc").write_bytes(b"junk")
    assert wheelhouse.source_digest(tree) == d1
    (tree / "bootstrap" / "a.py").write_text("x = 2\n")
    assert wheelhouse.source_digest(tree) != d1
