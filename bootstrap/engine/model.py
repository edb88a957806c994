"""Plays, tasks, and what a run reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bootstrap.errors import UserError


@dataclass
class Play:
    """A list of roles applied to hosts (names or inventory group names).

    ``serial`` runs the whole play on that many hosts at a time (etcd members
    restart one by one; the next batch starts only if this one succeeded).
    ``throttle`` caps how many hosts run one task at once within a batch.
    ``tags`` runs only tasks carrying one of them (a role's name is an implicit
    tag of its tasks; ``always`` tasks always run); ``skip_tags`` the opposite.
    """

    name: str
    hosts: list[str]
    roles: list[str]
    serial: int | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    tags: set[str] | None = None
    skip_tags: set[str] | None = None
    throttle: int | None = None
    roles_path: list[str] | None = None


@dataclass
class Task:
    name: str
    op: str
    args: Any
    role: str | None = None
    source: str = ""  # file:index, for error messages
    when: list[Any] = field(default_factory=list)
    loop: Any = None
    loop_var: str = "item"
    notify: list[str] = field(default_factory=list)
    tags: set[str] = field(default_factory=set)
    register: str | None = None
    ignore_errors: bool = False
    run_once: bool = False
    check_mode: bool | None = None  # False: run even under --dry-run (read-only probes)
    vars: dict[str, Any] = field(default_factory=dict)
    changed_when: Any = None
    failed_when: Any = None
    listen: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.role} : {self.name}" if self.role else self.name


@dataclass
class HostStats:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class Failure:
    host: str
    task: str
    message: str
    command: str | None = None
    exit_code: int | None = None
    stderr: str = ""


class PlayFailed(UserError):
    """Raised by ``Recap.raise_on_failure``; one line per failed host."""

    exit_code = 1


@dataclass
class Recap:
    per_host: dict[str, HostStats] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    dry_run: bool = False
    elapsed: float = 0.0

    @property
    def changed(self) -> int:
        return sum(s.changed for s in self.per_host.values())

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    def merge(self, other: Recap) -> Recap:
        """Sum of two recaps (a flow that runs several plays reports one)."""
        out = Recap(dry_run=self.dry_run or other.dry_run, elapsed=self.elapsed + other.elapsed)
        for recap in (self, other):
            for host, st in recap.per_host.items():
                acc = out.per_host.setdefault(host, HostStats())
                acc.ok += st.ok
                acc.changed += st.changed
                acc.failed += st.failed
                acc.skipped += st.skipped
            out.failures.extend(recap.failures)
        return out

    def raise_on_failure(self) -> None:
        if not self.failures:
            return
        first = self.failures[0]
        more = f" (and {len(self.failures) - 1} more failure(s))" if len(self.failures) > 1 else ""
        raise PlayFailed(f"task '{first.task}' failed: {first.message}{more}", where=f"host {first.host}")
