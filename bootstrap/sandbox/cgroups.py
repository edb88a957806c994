"""Per-host cgroup subtrees in every hierarchy the machine has mounted.

Each host gets ``<hierarchy>/bootstrap-sandbox/<sandbox>/<host>`` in every v1
hierarchy, the name=systemd one and the unified (v2) one; the host's launcher
joins all of them before unsharing its cgroup namespace, so the host's systemd
sees that subtree as its root and never touches the machine's root cgroups.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_MNT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Hierarchy:
    path: Path          # mount point on the machine, e.g. /sys/fs/cgroup/cpuset
    fstype: str         # "cgroup" (v1) or "cgroup2"
    options: str        # super options that select this hierarchy (e.g. "cpuset", "none,name=systemd")

    @property
    def is_cpuset(self) -> bool:
        return self.fstype == "cgroup" and "cpuset" in self.options.split(",")


def _v1_options(super_opts: str) -> str:
    # Keep only the options that name the hierarchy; a v1 mount must repeat
    # exactly the controller set / name of the existing hierarchy.
    keep = [o for o in super_opts.split(",") if o not in ("rw", "ro") and "=" not in o or o.startswith("name=")]
    names = [o for o in keep if o.startswith("name=")]
    ctrls = [o for o in keep if not o.startswith("name=") and o not in (
        "clone_children", "noprefix", "xattr", "cpuset_v2_mode", "favordynmods")]
    if names and not ctrls:
        return ",".join(["none", *names])
    return ",".join(ctrls + names)


def parse_mountinfo(text: str) -> list[Hierarchy]:
    out = []
    for line in text.splitlines():
        pre, _, post = line.partition(" - ")
        fields = pre.split()
        rest = post.split()
        if len(fields) < 5 or len(rest) < 3:
            continue
        mnt, fstype, super_opts = fields[4], rest[0], rest[2]
        if fstype not in ("cgroup", "cgroup2") or not mnt.startswith(str(CGROUP_MNT)):
            continue
        opts = _v1_options(super_opts) if fstype == "cgroup" else ""
        out.append(Hierarchy(Path(mnt), fstype, opts))
    return out


def hierarchies() -> list[Hierarchy]:
    return parse_mountinfo(Path("/proc/self/mountinfo").read_text())


def symlinks() -> dict[str, str]:
    """Aliases such as ``cpu,cpuacct -> cpu`` some distros put in /sys/fs/cgroup."""
    out = {}
    if CGROUP_MNT.is_dir():
        for entry in CGROUP_MNT.iterdir():
            if entry.is_symlink():
                out[entry.name] = os.readlink(entry)
    return out


def create(rel: str) -> list[Path]:
    """mkdir -p ``rel`` in every hierarchy; returns the cgroup.procs files to join."""
    for attempt in range(3):
        try:
            return _create(rel)
        except FileNotFoundError:
            # A concurrent `down` of the last other sandbox removed the shared parent.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def remove_parent_if_empty(rel: str) -> None:
    for h in hierarchies():
        try:
            (h.path / rel).rmdir()
        except OSError:
            pass


def _create(rel: str) -> list[Path]:
    procs = []
    for h in hierarchies():
        cur = h.path
        for part in rel.split("/"):
            parent, cur = cur, cur / part
            try:
                cur.mkdir()
            except FileExistsError:
                pass
            if h.is_cpuset:
                # A v1 cpuset cgroup starts with empty cpus/mems and refuses tasks.
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    if not (cur / knob).read_text().strip():
                        (cur / knob).write_text((parent / knob).read_text())
        procs.append(cur / "cgroup.procs")
    return procs


def _dirs_bottom_up(root: Path) -> list[Path]:
    out = []
    for dirpath, _dirnames, _files in os.walk(root, topdown=False):
        out.append(Path(dirpath))
    return out


def pids(rel: str) -> set[int]:
    found: set[int] = set()
    for h in hierarchies():
        root = h.path / rel
        if not root.is_dir():
            continue
        for d in _dirs_bottom_up(root):
            try:
                found.update(int(p) for p in (d / "cgroup.procs").read_text().split())
            except OSError:
                continue
    return found


def kill_all(rel: str, timeout: float = 20.0) -> None:
    """SIGKILL every process in the subtree until it stays empty."""
    deadline = time.monotonic() + timeout
    while True:
        found = pids(rel)
        if not found:
            return
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"processes {sorted(found)[:10]} in cgroup {rel} survive SIGKILL")
        time.sleep(0.05)


def remove(rel: str, timeout: float = 20.0) -> None:
    """rmdir the subtree in every hierarchy (children first); missing is fine."""
    deadline = time.monotonic() + timeout
    for h in hierarchies():
        root = h.path / rel
        if not root.is_dir():
            continue
        for d in _dirs_bottom_up(root):
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    # EBUSY while the last tasks of a killed host are exiting.
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)


def leftovers(rel: str) -> list[Path]:
    return [h.path / rel for h in hierarchies() if (h.path / rel).exists()]
