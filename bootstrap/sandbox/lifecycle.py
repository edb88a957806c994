"""``up``, ``down`` and ``list`` of a sandbox: orchestration of the pieces.

Order in ``up``: state (intent) -> bridge -> per host: seed, netns+veth,
cgroups, launcher -> wait for systemd and sshd on all hosts in parallel ->
known_hosts + inventory -> phase "ready". ``down`` undoes it in reverse from
the state file and, where that is missing, from the deterministic names.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bootstrap.errors import UserError
from bootstrap.sandbox import cgroups, host, names, net, seed
from bootstrap.sandbox import state as st
from bootstrap.sandbox.inventory import known_hosts_lines, render

Log = Callable[[str], None]
BOOT_TIMEOUT = 180.0  # generous: the machine is shared and may be busy


def _nolog(_msg: str) -> None:
    pass


def require_root() -> None:
    if os.geteuid() != 0:
        raise UserError("sandbox hosts need root (namespaces, mounts, cgroups)",
                        where="sandbox", hint="run as root, e.g. with sudo")


def paths(name: str) -> dict[str, Path]:
    d = st.sandbox_dir(name)
    return {
        "dir": d, "key": d / "id_ed25519", "known_hosts": d / "known_hosts",
        "inventory": d / "inventory" / "hosts.yaml", "hosts": d / "hosts",
    }


@dataclass(frozen=True)
class SandboxInfo:
    name: str
    hosts: int
    network: str
    state: str  # running | broken | creating


def _host_alive(h: st.HostState) -> bool:
    return host.alive(h.init_pid, h.init_start)


def _ssh_port_open(ip: str) -> bool:
    try:
        with socket.create_connection((ip, 22), timeout=2):
            return True
    except OSError:
        return False


def status(s: st.SandboxState) -> str:
    if s.phase != "ready":
        return "creating"
    if all(_host_alive(h) for h in s.hosts.values()):
        return "running"
    return "broken"


def list_sandboxes() -> list[SandboxInfo]:
    return [SandboxInfo(s.name, len(s.hosts), s.subnet, status(s)) for s in st.all_states()]


def _same_layout(s: st.SandboxState, plans: list[names.HostPlan]) -> bool:
    return [(p.name, tuple(p.groups)) for p in plans] == [
        (h.name, tuple(h.groups)) for h in s.hosts.values()]


def up(name: str, hosts: int, etcd_hosts: int = 0, control_plane: int | None = None,
       *, log: Log = _nolog) -> Path:
    """Bring the sandbox up (or leave a healthy one alone); returns the inventory path."""
    names.validate_name(name)
    require_root()
    names.plan_hosts(name, hosts, etcd_hosts, control_plane)  # validate counts early
    p = paths(name)
    existing = st.load(name)
    if existing is not None:
        plans = names.plan_hosts(name, hosts, etcd_hosts, control_plane, existing.subnet)
        if status(existing) == "running" and not _same_layout(existing, plans):
            raise UserError(
                f"sandbox {name!r} exists with hosts {', '.join(existing.hosts)}",
                where="sandbox", hint=f"run `bootstrap sandbox down --name {name}` first")
        if (status(existing) == "running" and _same_layout(existing, plans)
                and p["inventory"].exists()
                and all(_ssh_port_open(h.ip) for h in existing.hosts.values())):
            log(f"sandbox {name} is already up")
            return p["inventory"]
        log(f"sandbox {name} is half-made or crashed: rebuilding it")
    if existing is not None or p["dir"].exists() or _leftover_objects(name):
        down(name)
    try:
        return _create(name, hosts, etcd_hosts, control_plane, log)
    except BaseException as exc:
        detail = _boot_logs(name)
        down(name)
        if isinstance(exc, UserError):
            raise UserError(exc.message + detail, where=exc.where, hint=exc.hint) from None
        if isinstance(exc, Exception):
            raise UserError(f"sandbox {name} failed to come up: {exc}{detail}",
                            where="sandbox") from exc
        raise


def _boot_logs(name: str) -> str:
    out = []
    for log in sorted(paths(name)["hosts"].glob("*/console.log")):
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        if tail:
            out.append(f"{log.parent.name}: {' | '.join(tail)}")
    return ("; console: " + "; ".join(out)) if out else ""


def _create(name: str, hosts: int, etcd_hosts: int, control_plane: int | None, log: Log) -> Path:
    p = paths(name)
    t0 = time.monotonic()
    with st.machine_lock():
        used = {s.subnet for s in st.all_states() if s.name != name} | net.machine_ipv4_networks()
        subnet = names.allocate_subnet(used)
        plans = names.plan_hosts(name, hosts, etcd_hosts, control_plane, subnet)
        state = st.SandboxState(name=name, subnet=subnet, bridge=names.bridge_name(name))
        for pl in plans:
            state.hosts[pl.name] = st.HostState(
                name=pl.name, ip=pl.ip, groups=list(pl.groups),
                netns=names.netns_name(name, pl.name), veth=names.veth_name(name, pl.name))
        st.save(state)
        net.ensure_bridge(state.bridge, names.bridge_cidr(subnet))
    log(f"network {subnet} on bridge {state.bridge}")

    priv, pub = seed.ed25519_keypair(f"bootstrap-sandbox-{name}")
    fd = os.open(p["key"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:  # never readable by others, not even briefly
        fh.write(priv)
    p["key"].with_suffix(".pub").write_text(pub + "\n")
    prefix = subnet.split("/")[1]
    hosts_file = seed.etc_hosts({h.name: h.ip for h in state.hosts.values()},
                                names.bridge_cidr(subnet).split("/")[0])
    host_keys: dict[str, tuple[str, str]] = {}
    for h in state.hosts.values():
        hdir = p["hosts"] / h.name
        hdir.mkdir(parents=True, exist_ok=True)
        host_keys[h.name] = (h.ip, seed.write_seed(
            hdir / "seed", hostname=h.name, authorized_key=pub, hosts_file=hosts_file))
        net.ensure_host_net(h.netns, h.veth, state.bridge, f"{h.ip}/{prefix}")
        procs = cgroups.create(names.cgroup_relpath(name, h.name))
        h.launcher_pid = host.launch(hdir, h.name, h.netns, procs)
        h.launcher_start = host.proc_start_time(h.launcher_pid)
        st.save(state)
    p["known_hosts"].write_text(known_hosts_lines(host_keys))

    for h in state.hosts.values():
        init = host.find_init(h.launcher_pid)
        if init is None:
            raise UserError(f"host {h.name} did not start", where="sandbox")
        h.init_pid, h.init_start = init, host.proc_start_time(init)
        h.ns_inodes = sorted(host.ns_inodes(init).values())
    st.save(state)
    log(f"{len(state.hosts)} hosts started, waiting for systemd and sshd")

    with ThreadPoolExecutor(max_workers=len(state.hosts)) as pool:
        states = list(pool.map(lambda h: _wait_ready(h, p), state.hosts.values()))
    for h, sysstate in zip(state.hosts.values(), states, strict=True):
        if sysstate != "running":
            log(f"{h.name}: systemd {sysstate} (failed: {host.failed_units(h.init_pid) or 'none'})")

    p["inventory"].parent.mkdir(parents=True, exist_ok=True)
    p["inventory"].write_text(render(plans, p["key"], p["known_hosts"], name))
    state.phase = "ready"
    st.save(state)
    log(f"sandbox {name} up in {time.monotonic() - t0:.1f}s")
    return p["inventory"]


def _wait_ready(h: st.HostState, p: dict[str, Path]) -> str:
    deadline = time.monotonic() + BOOT_TIMEOUT
    sysstate = ""
    while True:
        if not _host_alive(h):
            raise UserError(f"host {h.name}: PID 1 exited during boot", where="sandbox")
        sysstate = host.system_state(h.init_pid)
        if sysstate in ("running", "degraded"):
            break
        if time.monotonic() > deadline:
            raise UserError(f"host {h.name}: systemd still {sysstate!r} after {BOOT_TIMEOUT:.0f}s",
                            where="sandbox")
        time.sleep(0.2)
    _wait_ssh(h, p, deadline)
    return sysstate


def _wait_ssh(h: st.HostState, p: dict[str, Path], deadline: float) -> None:
    import paramiko  # heavy import, only needed here

    last: Exception | None = None
    while time.monotonic() < deadline:
        client = paramiko.SSHClient()
        try:
            client.load_host_keys(str(p["known_hosts"]))
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            client.connect(h.ip, username="root", key_filename=str(p["key"]), timeout=5,
                           allow_agent=False, look_for_keys=False, banner_timeout=10)
            _, out, _ = client.exec_command("true", timeout=10)
            if out.channel.recv_exit_status() == 0:
                return
        except (OSError, paramiko.SSHException) as exc:
            last = exc
        finally:
            client.close()
        time.sleep(0.2)
    raise UserError(f"host {h.name} ({h.ip}): sshd not answering: {last}", where="sandbox")


def _leftover_objects(name: str) -> bool:
    return bool(net.list_netns(names.netns_name(name, "")) or cgroups.leftovers(
        names.cgroup_relpath(name)) or net.link_exists(names.bridge_name(name)))


def down(name: str, *, log: Log = _nolog) -> bool:
    """Remove everything of the sandbox; True if there was anything to remove."""
    names.validate_name(name)
    require_root()
    try:
        return _teardown(name, log)
    except (OSError, RuntimeError, TimeoutError) as exc:
        raise UserError(f"could not remove sandbox {name}: {exc}", where="sandbox",
                        hint=f"run `bootstrap sandbox down --name {name}` again") from exc


def _teardown(name: str, log: Log) -> bool:
    p = paths(name)
    s = st.load(name)
    found = s is not None or p["dir"].exists() or _leftover_objects(name)
    host_states = list(s.hosts.values()) if s else []
    # Hosts the state file does not know (crash before it was saved) by their names.
    known = {h.netns for h in host_states}
    ns_prefix = names.netns_name(name, "")
    for nsname in net.list_netns(ns_prefix):
        if nsname not in known:
            hn = nsname[len(ns_prefix):]
            host_states.append(st.HostState(name=hn, ip="", groups=[], netns=nsname,
                                            veth=names.veth_name(name, hn)))
    inodes: set[int] = set()
    for h in host_states:
        # Namespace inode numbers are reused once a namespace dies: trust the
        # recorded ones only while the recorded PID 1 is still alive.
        if host.alive(h.init_pid, h.init_start):
            inodes.update(host.ns_inodes(h.init_pid).values())
        ino = net.netns_inode(h.netns)
        if ino:
            inodes.add(ino)
        # PID 1 first: the kernel then kills everything in the PID namespace.
        host.kill(h.init_pid, h.init_start)
    for h in host_states:
        # The launcher reaps PID 1 and exits by itself; killing it first would
        # leave PID 1 a zombie of the machine's init.
        host.wait_gone(h.launcher_pid, h.launcher_start, timeout=3.0)
        host.kill(h.launcher_pid, h.launcher_start)
    rel = names.cgroup_relpath(name)
    cgroups.kill_all(rel)
    # Strays that joined a host's namespaces without its cgroups (nsenter from the machine).
    for _ in range(100):
        strays = host.pids_in_namespaces(inodes) - {os.getpid()} if inodes else set()
        if not strays:
            break
        for pid in strays:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    cgroups.remove(rel)
    with st.machine_lock():
        if not any(s2.name != name for s2 in st.all_states()):
            cgroups.remove_parent_if_empty(names.CGROUP_ROOT)
    for h in host_states:
        net.delete_host_net(h.netns, h.veth)
    net.delete_bridge(s.bridge if s else names.bridge_name(name))
    if p["dir"].exists():
        # Then the per-host disk dirs (host.DISK_DIRS, containerd's state) and disk
        # images go with the rest.
        host.unmount_under(p["dir"])
        for hdir in p["hosts"].glob("*"):
            host.detach_loops(hdir)
        shutil.rmtree(p["dir"])
    if found:
        log(f"sandbox {name} removed")
    return found
