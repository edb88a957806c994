"""What a run prints: a line per task and host, diffs, failures, the recap."""

from __future__ import annotations

import threading
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bootstrap.engine.model import Play, Recap, Task

_STYLE = {"ok": "green", "changed": "yellow", "failed": "bold red", "skipped": "cyan"}


class Reporter:
    def __init__(self, console: Console | None, *, dry_run: bool, diff: bool):
        self.console = console or Console(stderr=False, highlight=False)
        self.dry_run = dry_run
        self.diff = diff
        self._lock = threading.Lock()

    def play(self, play: Play, hosts: list[str]) -> None:
        mode = " [dim](dry run: nothing is changed)[/]" if self.dry_run else ""
        self.console.print(f"\n[bold]PLAY {escape('[' + play.name + ']')}[/] on {len(hosts)} host(s){mode}")

    def task(self, task: Task, *, handler: bool = False) -> None:
        kind = "HANDLER" if handler else "TASK"
        self.console.print(f"[bold]{kind} {escape('[' + task.title + ']')}[/]")

    @contextmanager
    def progress(self, task: Task, pending: list[str]):
        """A live "waiting for h1, h2" line on terminals; nothing in logs."""
        if not self.console.is_terminal:
            yield lambda _pending: None
            return

        def text(hosts: list[str]) -> str:
            shown = ", ".join(hosts[:5]) + (f" +{len(hosts) - 5}" if len(hosts) > 5 else "")
            return f"{escape(task.name)}: waiting for {escape(shown)}"

        with self.console.status(text(pending)) as status:
            yield lambda hosts: status.update(text(hosts)) if hosts else None

    def host(self, task: Task, out) -> None:
        with self._lock:
            label = out.status
            if out.ignored:
                label = "failed (ignored)"
            elif self.dry_run and out.status == "changed":
                label = "would change"
            style = _STYLE.get(out.status, "")
            self.console.print(f"  [{style}]{label}[/]: {escape('[' + out.host + ']')}")
            if out.failure:
                f = out.failure
                if f.command:
                    self.console.print(Text("    command: " + f.command), soft_wrap=True)
                    self.console.print(f"    exit code: {f.exit_code}")
                    if f.stderr:
                        self.console.print(Text("    stderr: " + f.stderr), soft_wrap=True)
                else:
                    self.console.print(Text("    " + f.message), soft_wrap=True)
            if self.dry_run and out.status == "changed":
                for action in out.actions:
                    self.console.print(Text("    would run: " + action, style="dim"), soft_wrap=True)
            if self.diff:
                for text in out.diffs:
                    self._print_diff(text)
            for msg in out.messages:
                self.console.print(Text("    " + msg), soft_wrap=True)

    def _print_diff(self, text: str) -> None:
        for line in text.splitlines():
            style = ""
            if line.startswith("+") and not line.startswith("+++"):
                style = "green"
            elif line.startswith("-") and not line.startswith("---"):
                style = "red"
            elif line.startswith("@@"):
                style = "cyan"
            # A Text, not markup: file content is shown verbatim (escape() would
            # double a trailing backslash that no markup tag follows).
            self.console.print(Text("    " + line, style=style), soft_wrap=True)

    def recap(self, recap: Recap) -> None:
        table = Table(title="PLAY RECAP", title_justify="left", box=None, pad_edge=False)
        table.add_column("host")
        for col in ("ok", "changed", "failed", "skipped"):
            table.add_column(col, justify="right")
        for host, st in recap.per_host.items():
            table.add_row(
                escape(host),
                f"[green]{st.ok}[/]",
                f"[yellow]{st.changed}[/]" if st.changed else "0",
                f"[bold red]{st.failed}[/]" if st.failed else "0",
                f"[cyan]{st.skipped}[/]" if st.skipped else "0",
            )
        self.console.print(table)
        self.console.print(f"[dim]{recap.elapsed:.2f}s[/]")
