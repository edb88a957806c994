"""What operations yield and what they get to read.

An operation is a generator ``op(ctx, args)``: it reads facts from the host
(``ctx.fact``, read-only, runs under --dry-run too), compares them with the
wanted state, and yields an action only where they differ. The executor
runs each action (unless dry-run) and sends its ``Result`` back into the
generator, so an op may read the outcome of what it just did. No actions
means "ok, nothing to change"; that is what makes re-runs report 0 changed.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

from bootstrap.errors import UserError
from bootstrap.remote import Connection, Result


class OpError(UserError):
    """The host is in a state the operation cannot fix, or the args are wrong."""


@dataclass
class Command:
    cmd: str
    input: str | bytes | None = None
    timeout: float | None = 120
    env: dict | None = None
    # False for commands that change nothing (waits, probes with changed_when: false).
    changes: bool = True
    # Decide after the fact from the Result (command's changed_when/failed_when).
    changed_if: Callable[[Result], bool] | None = None
    failed_if: Callable[[Result], bool] | None = None
    # Shown instead of ``cmd`` in output and failures when cmd is a long script.
    display: str | None = None

    def describe(self) -> str:
        return self.display or self.cmd


@dataclass
class Upload:
    """Write ``data``, or stream the control-machine file ``src``, to ``dest``."""

    dest: str
    data: bytes | None = None
    mode: int = 0o644
    changes: bool = True
    src: str | None = None

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else os.path.getsize(self.src or "")

    def describe(self) -> str:
        return f"upload {self.size} bytes to {self.dest} (mode {self.mode:04o})"


@dataclass
class Diff:
    """Shown with --diff; not an action."""

    text: str
    changes: bool = False


Action = Command | Upload | Diff
OpGen = Generator[Action, Result | None, None]


@dataclass
class HostState:
    """Per-host memory across the tasks of one run."""

    facts: dict[str, Any] = field(default_factory=dict)  # register / set_fact
    unit_files_changed: bool = False  # a unit file was written since the last daemon-reload


@dataclass
class OpContext:
    host: str
    conn: Connection
    vars: Mapping[str, Any]
    state: HostState
    search_path: list[str]  # role dir first, then shared dirs; for template/copy srcs
    diff: bool = False
    dry_run: bool = False
    out: dict[str, Any] = field(default_factory=dict)  # op results for `register`

    def fact(self, cmd: str, *, input: str | bytes | None = None, timeout: float = 60) -> Result:
        return self.conn.run(cmd, check=False, input=input, timeout=timeout)

    def find(self, src: str, kind: str) -> str:
        """A control-machine path: absolute, or under <dir>/<kind>/ or <dir>/."""
        if os.path.isabs(src):
            return src
        for base in self.search_path:
            for cand in (os.path.join(base, kind, src), os.path.join(base, src)):
                if os.path.exists(cand):
                    return cand
        raise OpError(
            f"{kind[:-1]} {src!r} not found",
            hint="looked in " + ", ".join(os.path.join(b, kind) for b in self.search_path),
        )


def q(value: Any) -> str:
    return shlex.quote(str(value))


def parse_mode(mode: Any) -> int | None:
    """'0644', '644', 0o644 (YAML 1.1 reads 0644 as octal) -> int."""
    if mode is None or mode == "":
        return None
    if isinstance(mode, int):
        return mode
    try:
        return int(str(mode), 8)
    except ValueError:
        raise OpError(f"bad file mode {mode!r}", hint="write it as a quoted octal string: '0644'") from None


def as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "y")
    return bool(value)


def as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()] if "," in value else [value]
    return [value]


def check_args(op: str, args: Mapping[str, Any], allowed: set[str], required: set[str] = frozenset()):
    if not isinstance(args, Mapping):
        raise OpError(f"{op}: arguments must be a mapping, got {type(args).__name__}")
    unknown = set(args) - allowed
    if unknown:
        raise OpError(f"{op}: unknown argument(s) {', '.join(sorted(unknown))}",
                      hint="allowed: " + ", ".join(sorted(allowed)))
    missing = {r for r in required if args.get(r) in (None, "")}
    if missing:
        raise OpError(f"{op}: missing argument(s) {', '.join(sorted(missing))}")
