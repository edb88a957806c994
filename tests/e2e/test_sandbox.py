"""Sandbox hosts end to end: real namespaces, systemd as PID 1, sshd, teardown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import paramiko
import pytest
import yaml
from e2e_names import sandbox_name

from bootstrap import sandbox
from bootstrap.errors import UserError
from bootstrap.sandbox import cgroups, names, state
from bootstrap.sandbox import host as sbx_host

pytestmark = [pytest.mark.slow, pytest.mark.root]

BOOTSTRAP = [sys.executable, "-m", "bootstrap"]


def _hosts(name: str) -> dict[str, state.HostState]:
    s = state.load(name)
    assert s is not None, f"no state for sandbox {name}"
    return s.hosts


def _ssh(name: str, host: str, cmd: str) -> tuple[int, str, str]:
    p = sandbox.paths(name)
    h = _hosts(name)[host]
    client = paramiko.SSHClient()
    try:
        client.load_host_keys(str(p["known_hosts"]))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(h.ip, username="root", key_filename=str(p["key"]), timeout=10,
                       allow_agent=False, look_for_keys=False)
        _, out, err = client.exec_command(cmd, timeout=60)
        rc = out.channel.recv_exit_status()
        return rc, out.read().decode(), err.read().decode()
    finally:
        client.close()


def _snapshot(name: str) -> dict:
    s = state.load(name)
    assert s is not None
    return {
        # Namespace inodes are reused after the namespaces die: only processes
        # that started before this snapshot can be the sandbox's leftovers.
        "ticks": int(float(Path("/proc/uptime").read_text().split()[0]) * os.sysconf("SC_CLK_TCK")),
        "veths": [h.veth for h in s.hosts.values()],
        "inodes": {i for h in s.hosts.values() for i in h.ns_inodes},
        "bridge": s.bridge,
        "dir": str(sandbox.paths(name)["dir"]),
    }


def assert_nothing_left(name: str, snap: dict) -> None:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"bs.{name}." not in netns
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    for link in [snap["bridge"], *snap["veths"]]:
        assert f" {link}:" not in links and f" {link}@" not in links, link
    mounts = Path("/proc/mounts").read_text()
    assert snap["dir"] not in mounts
    assert cgroups.leftovers(names.cgroup_relpath(name)) == []
    marker = f"/{names.cgroup_relpath(name)}/"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cg = Path(f"/proc/{pid}/cgroup").read_text()
            ns = {os.stat(f"/proc/{pid}/ns/{k}").st_ino for k in ("mnt", "pid", "net", "uts")}
        except OSError:
            continue  # exited meanwhile
        assert marker not in cg, f"process {pid} still in the sandbox's cgroups"
        start = sbx_host.proc_start_time(int(pid))
        if start is not None and start < snap["ticks"]:
            assert not (ns & snap["inodes"]), f"process {pid} still in a sandbox namespace"
    assert not Path(snap["dir"]).exists()
    fwd = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True).stdout
    assert snap["bridge"] not in fwd


def _wait_dead(h: state.HostState) -> None:
    # SIGKILL is asynchronous; wait (no timing assert) until PID 1 is gone.
    for _ in range(600):
        if not sbx_host.alive(h.init_pid, h.init_start):
            return
        time.sleep(0.05)
    raise AssertionError(f"{h.name}: PID 1 survived SIGKILL")


@pytest.fixture(scope="module")
def three(sandbox_factory):
    name = sandbox_name("sbxe")
    inv = sandbox_factory(name, 3)
    yield name, inv
    sandbox_factory.down(name)


def test_inventory_layout(three):
    name, inv = three
    data = yaml.safe_load(inv.read_text())["all"]
    hosts = data["hosts"]
    assert list(hosts) == [f"{name}-1", f"{name}-2", f"{name}-3"]
    for h in hosts.values():
        assert h["ansible_host"] == h["ip"]
        assert h["ansible_user"] == "root"
        assert h["ansible_ssh_private_key_file"] == str(sandbox.paths(name)["key"])
    ch = data["children"]
    assert list(ch["kube_control_plane"]["hosts"]) == list(hosts)
    assert list(ch["etcd"]["hosts"]) == list(hosts)
    assert list(ch["kube_node"]["hosts"]) == list(hosts)
    assert set(ch["k8s_cluster"]["children"]) == {"kube_control_plane", "kube_node"}


def test_hosts_are_distinct_machines(three):
    name, _ = three
    seen = {"hostname": set(), "machine-id": set(), "ip": set(), "hostkey": set()}
    for host, h in _hosts(name).items():
        rc, out, err = _ssh(name, host, "hostname; cat /etc/machine-id; ip -4 -o addr show dev eth0;"
                                        " cat /etc/ssh/ssh_host_ed25519_key.pub")
        assert rc == 0, err
        hostname, mid, addr, key = out.splitlines()[:4]
        assert hostname == host
        assert h.ip in addr
        seen["hostname"].add(hostname)
        seen["machine-id"].add(mid)
        seen["ip"].add(h.ip)
        seen["hostkey"].add(key.split()[1])
    assert all(len(v) == 3 for v in seen.values()), seen


def test_systemd_is_pid1_and_running(three):
    name, _ = three
    for host in _hosts(name):
        rc, out, _ = _ssh(name, host, "cat /proc/1/comm; systemctl is-system-running;"
                                      " systemctl list-units --failed --plain --no-legend")
        lines = out.splitlines()
        assert lines[0] == "systemd"
        assert lines[1] in ("running", "degraded"), out
        if lines[1] == "degraded":
            print(f"{host} degraded; failed units: {lines[2:]}")


def test_cgroup_namespace_over_own_subtree(three):
    name, _ = three
    for host, h in _hosts(name).items():
        _, inside, _ = _ssh(name, host, "cat /proc/1/cgroup")
        outside = Path(f"/proc/{h.init_pid}/cgroup").read_text()
        sub = names.cgroup_relpath(name, host)
        for line in inside.splitlines():
            # The host's systemd sees its subtree as the root: /init.scope or /.
            assert line.split(":", 2)[2] in ("/", "/init.scope"), line
        for line in outside.splitlines():
            assert line.split(":", 2)[2].startswith(f"/{sub}"), line


def test_sandbox_ssh_cli(three):
    name, _ = three
    proc = subprocess.run([*BOOTSTRAP, "sandbox", "ssh", name, f"{name}-2", "--", "hostname"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{name}-2"
    proc = subprocess.run([*BOOTSTRAP, "sandbox", "ssh", name, "3", "--", "exit", "7"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 7


def test_root_shell_is_debians_not_the_machines(three):
    # The machine's /root/.bashrc (pyenv) must not run in host SSH sessions.
    name, _ = three
    rc, out, err = _ssh(name, f"{name}-1", "echo $PATH; type python3; test -e ~/.bashrc")
    assert rc == 0, err
    path, python = out.splitlines()[:2]
    assert "/usr/sbin" in path.split(":") and "pyenv" not in path
    assert python == "python3 is /usr/bin/python3"


def test_hosts_reach_each_other_but_nothing_else(three):
    name, _ = three
    hosts = _hosts(name)
    first = f"{name}-1"
    for other, h in hosts.items():
        if other != first:
            rc, out, err = _ssh(name, first, f"ping -c1 -W5 {h.ip} && ping -c1 -W5 {other}")
            assert rc == 0, out + err
    rc, out, _ = _ssh(name, first, "ip route show default; ip route get 192.0.2.1 || echo unreachable")
    assert "default" not in out
    assert "unreachable" in out


def test_writes_stay_in_the_host(three):
    name, _ = three
    marker = f"/etc/sbx-marker-{uuid.uuid4().hex}"
    rc, _, err = _ssh(name, f"{name}-1", f"echo hi > {marker} && cat {marker}")
    assert rc == 0, err
    assert not Path(marker).exists()
    rc, _, _ = _ssh(name, f"{name}-2", f"test -e {marker}")
    assert rc != 0


def test_list_shows_running(three):
    name, _ = three
    proc = subprocess.run([*BOOTSTRAP, "sandbox", "list"], capture_output=True, text=True)
    assert proc.returncode == 0
    row = next(line for line in proc.stdout.splitlines() if line.startswith(name + " "))
    assert row.split()[1:] == ["3", state.load(name).subnet, "running"]


def test_up_again_is_a_noop(three):
    name, inv = three
    before = {h: (s.init_pid, s.init_start) for h, s in _hosts(name).items()}
    proc = subprocess.run([*BOOTSTRAP, "sandbox", "up", "--name", name, "--hosts", "3"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(inv)
    assert "already up" in proc.stderr
    assert {h: (s.init_pid, s.init_start) for h, s in _hosts(name).items()} == before
    proc = subprocess.run([*BOOTSTRAP, "sandbox", "up", "--name", name, "--hosts", "2"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "exists" in proc.stderr and "Traceback" not in proc.stderr


def test_failed_boot_is_reported_and_cleaned(sandbox_factory, monkeypatch):
    name = sandbox_name("sbxf")
    monkeypatch.setattr(sbx_host, "init_script", lambda *_a: "echo boot-broken >&2; exit 3\n")
    sandbox_factory.made.append(name)
    with pytest.raises(UserError) as err:
        sandbox.up(name, 2)
    assert "boot-broken" in err.value.line()
    assert not sandbox.paths(name)["dir"].exists()
    assert cgroups.leftovers(names.cgroup_relpath(name)) == []
    assert not [n for n in os.listdir("/run/netns") if n.startswith(f"bs.{name}.")]


def test_down_leaves_nothing_and_is_repeatable(sandbox_factory):
    name = sandbox_name("sbxd")
    sandbox_factory(name, 2)
    # A process that entered a host's namespaces from the machine must go too.
    init = _hosts(name)[f"{name}-1"].init_pid
    stray = subprocess.Popen(["nsenter", "-t", str(init), "-n", "-m", "--", "sleep", "600"])
    try:
        snap = _snapshot(name)
        proc = subprocess.run([*BOOTSTRAP, "sandbox", "down", "--name", name],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert stray.wait(timeout=30) == -signal.SIGKILL
        assert_nothing_left(name, snap)
        proc = subprocess.run([*BOOTSTRAP, "sandbox", "down", "--name", name],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait()
        sandbox_factory.down(name)


def test_crash_then_up_repairs_and_down_cleans(sandbox_factory):
    name = sandbox_name("sbxc")
    inv = sandbox_factory(name, 1, etcd_hosts=1)
    data = yaml.safe_load(inv.read_text())["all"]["children"]
    assert list(data["etcd"]["hosts"]) == [f"{name}-etcd1"]
    assert list(data["kube_control_plane"]["hosts"]) == [f"{name}-1"]
    # Crash: SIGKILL one host's PID 1 and every launcher.
    hosts = _hosts(name)
    os.kill(hosts[f"{name}-1"].init_pid, signal.SIGKILL)
    for h in hosts.values():
        os.kill(h.launcher_pid, signal.SIGKILL)
    _wait_dead(hosts[f"{name}-1"])
    info = {i.name: i for i in sandbox.list_sandboxes()}[name]
    assert info.state == "broken"
    # up repairs (rebuilds) the crashed sandbox.
    assert sandbox_factory(name, 1, etcd_hosts=1) == inv
    rc, out, _ = _ssh(name, f"{name}-1", "systemctl is-system-running")
    assert out.strip() in ("running", "degraded")
    # Crash again, then down cleans up what is left.
    hosts = _hosts(name)
    snap = _snapshot(name)
    os.kill(hosts[f"{name}-etcd1"].init_pid, signal.SIGKILL)
    for h in hosts.values():
        os.kill(h.launcher_pid, signal.SIGKILL)
    sandbox_factory.down(name)
    assert_nothing_left(name, snap)


def test_down_after_half_made_up(sandbox_factory):
    """A state file with hosts never started (crash mid-up) still tears down."""
    name = sandbox_name("sbxh")
    s = state.SandboxState(name=name, subnet="10.250.254.0/24", bridge=names.bridge_name(name))
    h = state.HostState(name=f"{name}-1", ip="10.250.254.11", groups=[],
                        netns=names.netns_name(name, f"{name}-1"), veth=names.veth_name(name, f"{name}-1"))
    s.hosts[h.name] = h
    sandbox_factory.made.append(name)
    state.save(s)
    from bootstrap.sandbox import net
    net.ensure_bridge(s.bridge, "10.250.254.1/24")
    net.ensure_host_net(h.netns, h.veth, s.bridge, "10.250.254.11/24")
    cgroups.create(names.cgroup_relpath(name, h.name))
    snap = _snapshot(name)
    sandbox_factory.down(name)
    assert_nothing_left(name, snap)
