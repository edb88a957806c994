"""Boot and stop one sandbox host: namespaces, overlay root, systemd as PID 1.

The launcher joins the host's cgroups, enters its network namespace and runs
``unshare`` for new mount, UTS, IPC, cgroup and PID namespaces; the forked
PID 1 runs INIT_SCRIPT, which builds the root (an overlay over the machine's
``/`` whose upper dir lives on the host's own disk image, fresh /proc, /sys,
cgroup mounts, /dev, /run),
pivots into it and execs systemd. All mounts live only in the host's mount
namespace, so they vanish with its processes.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

from bootstrap.sandbox import cgroups

CONTAINER_ENV = "bootstrap-sandbox"
# Device nodes a host gets in its private /dev (major, minor, mode).
DEV_NODES = {
    "null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9),
    "tty": (5, 0), "net/tun": (10, 200), "fuse": (10, 229),
}
# The host's disk: a sparse ext4 image holding the overlay's upper and work dirs,
# so a host powered off (`sandbox stop`) boots again with what it had written.
# Its own filesystem, as a tmpfs was: overlayfs refuses layers overlapping on one.
UPPER_SIZE = "16G"  # sparse: blocks are allocated as the host writes; only a ceiling
DISK_IMAGE = "disk.img"
# Per-host directories on the machine's disk bind-mounted into the host (host dir
# name -> mount point). containerd stacks its snapshots as overlays and keeps
# their upper dirs under /var/lib/containerd: on the host's overlay root that
# fails (an overlay upper dir cannot live on overlayfs), and on the tmpfs it
# would hold every image layer in memory.
DISK_DIRS = {"containerd": "/var/lib/containerd"}


def init_script(host_dir: Path, hostname: str) -> str:
    """Shell run as the host's PID 1 before systemd (POSIX sh, fails fast)."""
    q = shlex.quote
    root, rw, seed = q(str(host_dir / "root")), q(str(host_dir / "rw")), q(str(host_dir / "seed"))
    disk = q(str(host_dir / DISK_IMAGE))
    lines = [
        "set -eu",
        "mount --make-rprivate /",
        # loop: autoclear, so the device goes when this mount namespace does.
        f"mount -t ext4 -o loop,noatime {disk} {rw}",
        f"mkdir -p {rw}/upper {rw}/work",
        f"mount -t overlay overlay -o lowerdir=/,upperdir={rw}/upper,workdir={rw}/work {root}",
        # First boot only: the seed masks units (etcd, haproxy, containerd, ...) that
        # roles later replace with their own; a reboot must keep what the host has.
        f"if [ ! -e {rw}/seeded ]; then cp -a {seed}/. {root}/ && touch {rw}/seeded; fi",
        *(f"mkdir -p {root}{q(target)} && mount --bind {q(str(host_dir / src))} {root}{q(target)}"
          for src, target in DISK_DIRS.items()),
        f"cd {root}",
        "mount -t proc -o nosuid,nodev,noexec proc proc",
        "mount -t sysfs -o nosuid,nodev,noexec sysfs sys",
        "mount -t tmpfs -o nosuid,nodev,noexec,mode=0755 cgroup sys/fs/cgroup",
    ]
    for h in cgroups.hierarchies():
        rel = q(str(h.path.relative_to("/")))
        lines.append(f"mkdir -p {rel}")
        if h.fstype == "cgroup2":
            lines.append(f"mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 {rel}")
        else:
            lines.append(f"mount -t cgroup -o nosuid,nodev,noexec,{h.options} cgroup {rel}")
    for alias, target in cgroups.symlinks().items():
        lines.append(f"ln -s {q(target)} sys/fs/cgroup/{q(alias)}")
    lines += [
        "mount -t tmpfs -o nosuid,mode=0755,size=64m dev dev",
        "mkdir -p dev/net dev/pts dev/shm",
    ]
    for node, (major, minor) in DEV_NODES.items():
        lines.append(f"mknod -m 0666 dev/{node} c {major} {minor}")
    lines += [
        "mount -t devpts -o newinstance,nosuid,noexec,ptmxmode=0666,mode=0620,gid=5 devpts dev/pts",
        "ln -s pts/ptmx dev/ptmx",
        "mount -t tmpfs -o nosuid,nodev,mode=1777 shm dev/shm",
        "ln -s /proc/self/fd dev/fd",
        "ln -s /proc/self/fd/0 dev/stdin",
        "ln -s /proc/self/fd/1 dev/stdout",
        "ln -s /proc/self/fd/2 dev/stderr",
        "mount -t tmpfs -o nosuid,nodev,mode=0755 run run",
        # No tmpfs on /tmp: as on Debian, /tmp is part of the host's disk (its overlay),
        # so a checkout or venv under the machine's /tmp stays visible to the host,
        # like every other machine path the overlay shows.
        f"hostname {q(hostname)}",
        "mkdir -p .oldroot",
        "pivot_root . .oldroot",
        "cd /",
        # Detaching the old root drops this namespace's copies of the machine's
        # mounts (incl. /run/netns/* of other sandboxes), so none is pinned.
        "umount -l /.oldroot",
        "rmdir /.oldroot",
        f"exec env -i container={CONTAINER_ENV} PATH=/usr/sbin:/usr/bin:/sbin:/bin /lib/systemd/systemd",
    ]
    return "\n".join(lines) + "\n"


def proc_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks after boot; None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after comm (which may contain spaces): state is 3, starttime is 22.
    rest = stat.rsplit(")", 1)[1].split()
    if rest[0] in ("Z", "X"):
        return None  # dead, only waiting to be reaped
    return int(rest[19])


def alive(pid: int | None, start: int | None) -> bool:
    return pid is not None and start is not None and proc_start_time(pid) == start


def launch(host_dir: Path, hostname: str, netns: str, cgroup_procs: list[Path]) -> int:
    """Start the host; returns the launcher PID (parent of the host's PID 1)."""
    script = host_dir / "init.sh"
    script.write_text(init_script(host_dir, hostname))
    (host_dir / "root").mkdir(exist_ok=True)
    (host_dir / "rw").mkdir(exist_ok=True)
    ensure_disk(host_dir / DISK_IMAGE)
    for src in DISK_DIRS:
        (host_dir / src).mkdir(mode=0o711, exist_ok=True)
    join = "; ".join(f"echo $$ > {shlex.quote(str(p))}" for p in cgroup_procs)
    cmd = (
        f"{join}; exec nsenter --net=/run/netns/{shlex.quote(netns)} -- "
        f"unshare --pid --fork --mount --uts --ipc --cgroup --propagation private -- "
        f"/bin/sh {shlex.quote(str(script))}"
    )
    with open(host_dir / "console.log", "ab") as log:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", cmd], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True, close_fds=True,
        )
    return proc.pid


def ensure_disk(image: Path) -> None:
    """A sparse ext4 image, made once; kept across stop/start, removed with the sandbox."""
    if image.exists():
        return
    tmp = image.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        fh.truncate(_size_bytes(UPPER_SIZE))
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-E",
                    "lazy_itable_init=1,lazy_journal_init=1", str(tmp)],
                   check=True, capture_output=True, timeout=60)
    tmp.replace(image)


def _size_bytes(size: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)


def detach_loops(host_dir: Path) -> None:
    """Loop devices still backed by this host's disk image (normally none: autoclear)."""
    image = host_dir / DISK_IMAGE
    if not image.exists():
        return
    out = subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True,
                         timeout=30, check=False).stdout
    for line in out.splitlines():
        dev = line.split(":", 1)[0]
        if dev:
            subprocess.run(["losetup", "-d", dev], capture_output=True, timeout=30, check=False)


def find_init(launcher_pid: int, timeout: float = 10.0) -> int | None:
    """The host's PID 1 as the machine sees it: the launcher's forked child."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{launcher_pid}/task/{launcher_pid}/children").read_text().split()
        except OSError:
            return None
        # Before the fork the launcher is still sh/nsenter; its only child is PID 1.
        if children and Path(f"/proc/{launcher_pid}/exe").resolve().name == "unshare":
            return int(children[0])
        time.sleep(0.02)
    return None


def wait_gone(pid: int | None, start: int | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid, start) and time.monotonic() < deadline:
        time.sleep(0.02)


def nsenter_cmd(init_pid: int, *argv: str) -> list[str]:
    return ["nsenter", "-t", str(init_pid), "-m", "-u", "-i", "-n", "-p", "-C", "--", *argv]


def system_state(init_pid: int) -> str:
    proc = subprocess.run(nsenter_cmd(init_pid, "systemctl", "is-system-running"),
                          capture_output=True, text=True, timeout=30)
    return proc.stdout.strip() or proc.stderr.strip()


def failed_units(init_pid: int) -> str:
    proc = subprocess.run(
        nsenter_cmd(init_pid, "systemctl", "list-units", "--failed", "--plain", "--no-legend"),
        capture_output=True, text=True, timeout=30)
    return " ".join(line.split()[0] for line in proc.stdout.splitlines() if line.strip())


def kill(pid: int | None, start: int | None) -> None:
    """SIGKILL (systemd as PID 1 re-executes on SIGTERM) if it is still ours."""
    if alive(pid, start):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def mounts_under(path: Path) -> list[str]:
    """Mount points in this (the machine's) mount namespace at or below ``path``, deepest first."""
    base = str(path).rstrip("/")
    found = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            # Field 5 is the mount point, with spaces etc. as octal escapes.
            point = line.split()[4].encode().decode("unicode_escape")
            if point == base or point.startswith(base + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def unmount_under(path: Path) -> None:
    """Host mounts live in the host's own namespace; this catches any that leaked to the
    machine's (a bind mount made by hand, or a launcher that died before unshare)."""
    for point in mounts_under(path):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=30, check=False)


def ns_inodes(pid: int) -> dict[str, int]:
    out = {}
    for kind in ("mnt", "pid", "net", "uts", "cgroup"):
        try:
            out[kind] = os.stat(f"/proc/{pid}/ns/{kind}").st_ino
        except OSError:
            pass
    return out


def pids_in_namespaces(inodes: set[int]) -> set[int]:
    """Machine PIDs of processes sitting in any of the given namespaces."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        for kind in ("mnt", "pid", "net"):
            try:
                if os.stat(f"/proc/{entry}/ns/{kind}").st_ino in inodes:
                    found.add(int(entry))
                    break
            except OSError:
                break
    return found
