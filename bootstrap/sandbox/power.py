"""Power a sandbox host off and on: ``bootstrap sandbox stop|start NAME HOST``.

Off is a power cut, as docs/sandbox.md describes stopping a host: SIGKILL to
its PID 1 (systemd re-executes on SIGTERM), which ends its whole PID
namespace; anything left in its cgroups is killed too. What makes it a
machine and not a new one stays: its network namespace and veth (so its IP
stays reserved and nobody else gets it), its cgroup directories, and its disk
(the ext4 image holding the overlay's upper dir, and the containerd dir). On
boots the same init with the same seed, IP and disk, then waits for systemd
and sshd as ``up`` does.
"""

from __future__ import annotations

from bootstrap.errors import UserError
from bootstrap.sandbox import cgroups, host, names
from bootstrap.sandbox import state as st
from bootstrap.sandbox.lifecycle import _nolog, _wait_ready, paths, require_root


def _find(name: str, host_name: str) -> tuple[st.SandboxState, st.HostState]:
    names.validate_name(name)
    s = st.load(name)
    if s is None:
        raise UserError(f"no sandbox named {name!r}", where="sandbox",
                        hint="see `bootstrap sandbox list`")
    h = s.hosts.get(host_name) or s.hosts.get(f"{name}-{host_name}")
    if h is None:
        raise UserError(f"no host {host_name!r} in sandbox {name}", where="sandbox",
                        hint=f"hosts: {', '.join(s.hosts)}")
    return s, h


def stop(name: str, host_name: str, *, log=_nolog) -> bool:
    """Power the host off; False if it was off already."""
    require_root()
    s, h = _find(name, host_name)
    if not host.alive(h.init_pid, h.init_start):
        log(f"{h.name} is already off")
        return False
    host.kill(h.init_pid, h.init_start)
    host.wait_gone(h.init_pid, h.init_start, timeout=10.0)
    host.wait_gone(h.launcher_pid, h.launcher_start, timeout=3.0)
    host.kill(h.launcher_pid, h.launcher_start)
    cgroups.kill_all(names.cgroup_relpath(name, h.name))
    host.detach_loops(paths(name)["hosts"] / h.name)
    h.init_pid = h.init_start = h.launcher_pid = h.launcher_start = None
    h.ns_inodes = []
    st.save(s)
    log(f"{h.name} powered off (IP {h.ip} and disk kept)")
    return True


def start(name: str, host_name: str, *, log=_nolog) -> bool:
    """Boot the host again; False if it was running already."""
    require_root()
    s, h = _find(name, host_name)
    if host.alive(h.init_pid, h.init_start):
        log(f"{h.name} is already running")
        return False
    p = paths(name)
    hdir = p["hosts"] / h.name
    if not (hdir / host.DISK_IMAGE).exists():
        raise UserError(f"host {h.name} has no disk image", where=str(hdir),
                        hint="this sandbox predates stop/start; recreate it with `sandbox down` "
                             "and `sandbox up`")
    procs = cgroups.create(names.cgroup_relpath(name, h.name))
    h.launcher_pid = host.launch(hdir, h.name, h.netns, procs)
    h.launcher_start = host.proc_start_time(h.launcher_pid)
    st.save(s)
    init = host.find_init(h.launcher_pid)
    if init is None:
        raise UserError(f"host {h.name} did not start", where="sandbox",
                        hint=f"see {hdir / 'console.log'}")
    h.init_pid, h.init_start = init, host.proc_start_time(init)
    h.ns_inodes = sorted(host.ns_inodes(init).values())
    st.save(s)
    state = _wait_ready(h, p)
    log(f"{h.name} booted ({state}) at {h.ip}")
    return True
