"""Pure pieces of the sandbox: names, addresses, layout, inventory, state, scripts."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bootstrap.errors import UserError
from bootstrap.sandbox import cgroups, host, inventory, names, seed, state


@pytest.mark.parametrize("name", ["a", "sbx", "dev-1", "x" * names.MAX_NAME])
def test_valid_names(name):
    assert names.validate_name(name) == name


@pytest.mark.parametrize("name", ["", "Sbx", "-a", "a-", "a_b", "a.b", "x" * (names.MAX_NAME + 1)])
def test_invalid_names(name):
    with pytest.raises(UserError):
        names.validate_name(name)


def test_kernel_names_fit_and_differ():
    long = "a" * names.MAX_NAME
    assert len(names.bridge_name(long)) <= 15
    assert names.bridge_name("sbx") == "bs-sbx"
    assert names.bridge_name(long) != names.bridge_name(long[:-1] + "b")
    v = {names.veth_name(s, h) for s in ("sbx", "sbx-1") for h in ("sbx-1-1", "sbx-1")}
    assert len(v) == 4 and all(len(x) <= 15 for x in v)
    # '.' separates sandbox and host, so prefixes of one sandbox never match another's.
    assert not names.netns_name("sbx-1", "sbx-1-1").startswith(names.netns_name("sbx", ""))


def test_stacked_layout():
    plans = names.plan_hosts("s", 5, subnet="10.250.7.0/24")
    assert [p.name for p in plans] == ["s-1", "s-2", "s-3", "s-4", "s-5"]
    assert [p.groups for p in plans[:3]] == [("kube_control_plane", "kube_node", "etcd")] * 3
    assert [p.groups for p in plans[3:]] == [("kube_node",)] * 2
    ips = [ipaddress.IPv4Address(p.ip) for p in plans]
    assert len(set(ips)) == 5
    assert all(ip in ipaddress.IPv4Network("10.250.7.0/24") for ip in ips)
    assert ipaddress.IPv4Address("10.250.7.1") not in ips  # the machine's leg


def test_external_layout_and_control_plane_count():
    plans = names.plan_hosts("s", 2, etcd_hosts=3, control_plane=1)
    by = {p.name: p.groups for p in plans}
    assert by["s-1"] == ("kube_control_plane", "kube_node")
    assert by["s-2"] == ("kube_node",)
    assert [n for n, g in by.items() if "etcd" in g] == ["s-etcd1", "s-etcd2", "s-etcd3"]
    assert len({p.ip for p in plans}) == 5


@pytest.mark.parametrize("kw", [dict(hosts=0), dict(hosts=3, etcd_hosts=-1),
                                dict(hosts=2, control_plane=3), dict(hosts=names.MAX_HOSTS + 1)])
def test_bad_counts(kw):
    with pytest.raises(UserError):
        names.plan_hosts("s", **kw)


def test_subnet_allocation_skips_used():
    assert names.allocate_subnet(set()) == "10.250.1.0/24"
    assert names.allocate_subnet({"10.250.1.0/24", "10.250.2.0/24"}) == "10.250.3.0/24"
    # A machine network overlapping the range blocks the /24s inside it.
    assert names.allocate_subnet({"10.250.0.0/22"}) == "10.250.4.0/24"
    assert names.allocate_subnet({"192.0.2.0/24"}) == "10.250.1.0/24"
    with pytest.raises(UserError):
        names.allocate_subnet({"10.250.0.0/16"})


def test_inventory_kubespray_shape(tmp_path):
    plans = names.plan_hosts("s", 4, subnet="10.250.9.0/24")
    text = inventory.render(plans, tmp_path / "id", tmp_path / "kh", "s")
    data = yaml.safe_load(text)["all"]
    assert data["hosts"]["s-1"] == {
        "ansible_host": "10.250.9.11", "ip": "10.250.9.11", "access_ip": "10.250.9.11",
        "ansible_user": "root", "ansible_ssh_private_key_file": str(tmp_path / "id"),
    }
    ch = data["children"]
    assert list(ch["kube_control_plane"]["hosts"]) == ["s-1", "s-2", "s-3"]
    assert list(ch["etcd"]["hosts"]) == ["s-1", "s-2", "s-3"]
    assert list(ch["kube_node"]["hosts"]) == ["s-1", "s-2", "s-3", "s-4"]
    assert ch["k8s_cluster"] == {"children": {"kube_control_plane": {}, "kube_node": {}}}
    assert str(tmp_path / "kh") in data["vars"]["ansible_ssh_common_args"]


def test_inventory_loads_with_config_loader(tmp_path):
    load_inventory = pytest.importorskip("bootstrap.config.inventory").load_inventory
    plans = names.plan_hosts("s", 2, etcd_hosts=3, subnet="10.250.9.0/24")
    path = tmp_path / "hosts.yaml"
    path.write_text(inventory.render(plans, tmp_path / "id", tmp_path / "kh", "s"))
    inv = load_inventory(path)
    assert list(inv.hosts) == ["s-1", "s-2", "s-etcd1", "s-etcd2", "s-etcd3"]
    assert [h.name for h in inv.etcd] == ["s-etcd1", "s-etcd2", "s-etcd3"]
    assert inv.topology == "external"
    assert inv.hosts["s-1"].address == "10.250.9.11"
    assert inv.hosts["s-1"].key_file == str(tmp_path / "id")


def test_known_hosts_lines():
    text = inventory.known_hosts_lines({"s-1": ("10.0.0.1", "ssh-ed25519 AAAAkey root@s-1")})
    assert text == "s-1,10.0.0.1 ssh-ed25519 AAAAkey\n"


def test_state_round_trip(tmp_path):
    s = state.SandboxState(name="s", subnet="10.250.3.0/24", bridge="bs-s")
    s.hosts["s-1"] = state.HostState(name="s-1", ip="10.250.3.11", groups=["etcd"], netns="n",
                                     veth="v", init_pid=5, init_start=9, ns_inodes=[1, 2])
    state.save(s, tmp_path)
    assert state.load("s", tmp_path) == s
    assert [x.name for x in state.all_states(tmp_path)] == ["s"]
    assert state.load("missing", tmp_path) is None
    (tmp_path / "s" / state.STATE_FILE).write_text("{torn")
    assert state.load("s", tmp_path) is None


MOUNTINFO = """\
25 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 / /sys/fs/cgroup/cpuset rw,nosuid - cgroup cgroup rw,cpuset,clone_children
40 25 0:40 / /mnt/other rw - cgroup cgroup rw,memory
"""


def test_parse_mountinfo():
    hs = cgroups.parse_mountinfo(MOUNTINFO)
    assert [(str(h.path), h.fstype, h.options) for h in hs] == [
        ("/sys/fs/cgroup/unified", "cgroup2", ""),
        ("/sys/fs/cgroup/systemd", "cgroup", "none,name=systemd"),
        ("/sys/fs/cgroup/cpu,cpuacct", "cgroup", "cpu,cpuacct"),
        ("/sys/fs/cgroup/cpuset", "cgroup", "cpuset"),
    ]
    assert [h.is_cpuset for h in hs] == [False, False, False, True]


def test_init_script_builds_root_then_execs_systemd(monkeypatch):
    monkeypatch.setattr(cgroups, "hierarchies", lambda: cgroups.parse_mountinfo(MOUNTINFO))
    monkeypatch.setattr(cgroups, "symlinks", lambda: {"cpu": "cpu,cpuacct"})
    script = host.init_script(Path("/var/lib/x/hosts/h"), "h").splitlines()
    assert script[0] == "set -eu"
    overlay = next(i for i, line in enumerate(script) if "-t overlay" in line)
    assert "lowerdir=/,upperdir=/var/lib/x/hosts/h/rw/upper" in script[overlay]
    assert any("-t cgroup -o nosuid,nodev,noexec,none,name=systemd" in line for line in script)
    assert "ln -s cpu,cpuacct sys/fs/cgroup/cpu" in script
    assert script.index("pivot_root . .oldroot") > overlay
    assert script[-1].startswith("exec env -i container=")
    assert script[-1].endswith("/lib/systemd/systemd")


def test_seed_tree(tmp_path):
    pub = seed.write_seed(tmp_path, hostname="h1", authorized_key="ssh-ed25519 AAAA k",
                          hosts_file="127.0.0.1 localhost\n")
    assert pub.startswith("ssh-ed25519 ") and pub.endswith("root@h1")
    assert (tmp_path / "etc/hostname").read_text() == "h1\n"
    assert len((tmp_path / "etc/machine-id").read_text().strip()) == 32
    assert (tmp_path / "etc/ssh/ssh_host_ed25519_key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "root").stat().st_mode & 0o777 == 0o700
    assert (tmp_path).stat().st_mode & 0o777 == 0o755  # cp -a copies it onto /
    for unit in ("etcd.service", "haproxy.service", "systemd-udevd.service"):
        assert (tmp_path / "etc/systemd/system" / unit).readlink() == Path("/dev/null")
    # Seeding twice (a repaired host) is fine.
    seed.write_seed(tmp_path, hostname="h1", authorized_key="k", hosts_file="")


def test_seed_gives_root_a_clean_home(tmp_path):
    # The machine's /root/.bashrc (pyenv init) must not reach the hosts: bash
    # sources it for every SSH command.
    seed.write_seed(tmp_path, hostname="h1", authorized_key="k", hosts_file="")
    for name in (".bashrc", ".profile"):
        f = tmp_path / "root" / name
        assert f.stat().st_mode & 0o777 == 0o644
        text = f.read_text()
        assert "pyenv" not in text and "cargo" not in text
        # No PATH rewrite either: sshd's root PATH (with /usr/sbin) stays as it is.
        assert "PATH=" not in text
    assert ".bashrc" in (tmp_path / "root/.profile").read_text()


def test_root_dotfiles_fall_back_without_base_files(tmp_path):
    files = seed.root_dotfiles(tmp_path / "missing")
    assert set(files) == {".bashrc", ".profile"}
    assert all(text.startswith("# ~/") for text in files.values())


def test_proc_start_time_of_self_and_missing():
    import os
    assert host.alive(os.getpid(), host.proc_start_time(os.getpid()))
    assert not host.alive(os.getpid(), 1)
    assert host.proc_start_time(2**22 + 7) is None


def test_cli_needs_root_and_valid_name(monkeypatch):
    from bootstrap.cli import main
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    res = CliRunner().invoke(main, ["sandbox", "up", "--name", "ok", "--hosts", "1"])
    assert res.exit_code == 2
    assert "root" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["sandbox", "down", "--name", "Bad_Name"])
    assert res.exit_code == 2
    assert "invalid sandbox name" in res.output
