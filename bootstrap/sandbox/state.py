"""The state file of a sandbox: an intent log written before each step.

``up`` records every object (subnet, bridge, per-host netns, veth, cgroups,
PIDs) before it creates it, so ``down`` can undo a partial ``up`` after a
crash. Writes are atomic (temp file + rename).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

BASE_DIR = Path("/var/lib/bootstrap/sandbox")
STATE_FILE = "state.json"


@dataclass
class HostState:
    name: str
    ip: str
    groups: list[str]
    netns: str
    veth: str
    # Machine-side PIDs with their start times (clock ticks since boot) so a
    # recycled PID is never mistaken for ours.
    launcher_pid: int | None = None
    launcher_start: int | None = None
    init_pid: int | None = None
    init_start: int | None = None
    # Inodes of the host's mnt/pid/net/uts/cgroup namespaces, to find strays.
    ns_inodes: list[int] = field(default_factory=list)


@dataclass
class SandboxState:
    name: str
    subnet: str
    bridge: str
    hosts: dict[str, HostState] = field(default_factory=dict)
    phase: str = "creating"  # creating -> ready

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SandboxState:
        raw = json.loads(text)
        hosts = {k: HostState(**v) for k, v in raw.pop("hosts", {}).items()}
        return cls(hosts=hosts, **raw)


def sandbox_dir(name: str, base: Path = BASE_DIR) -> Path:
    return base / name


def load(name: str, base: Path = BASE_DIR) -> SandboxState | None:
    path = sandbox_dir(name, base) / STATE_FILE
    try:
        return SandboxState.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, KeyError):
        # A torn or foreign file: treat as absent; down still works from names.
        return None


def save(state: SandboxState, base: Path = BASE_DIR) -> None:
    d = sandbox_dir(state.name, base)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = d / (STATE_FILE + ".tmp")
    tmp.write_text(state.to_json())
    os.replace(tmp, d / STATE_FILE)


def all_states(base: Path = BASE_DIR) -> list[SandboxState]:
    if not base.is_dir():
        return []
    out = []
    for d in sorted(base.iterdir()):
        if d.is_dir():
            st = load(d.name, base)
            if st is not None:
                out.append(st)
    return out


@contextlib.contextmanager
def machine_lock(base: Path = BASE_DIR) -> Iterator[None]:
    """Serialise subnet allocation and bridge setup across concurrent `up`s."""
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
