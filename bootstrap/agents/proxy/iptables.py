"""The only place kube-proxy runs commands: iptables-restore, iptables-save,
iptables -C/-I for the jump rules, conntrack, sysctl writes and ip route.

``Runner(prefix)`` prepends a prefix to every command, so benchmarks and tests
can aim the same code at a throwaway network namespace
(``["nsenter", "--net=/run/netns/x"]``) and never at the machine's own tables.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bootstrap.agents.proxy.rules import Jump

log = logging.getLogger(__name__)


class CommandError(Exception):
    def __init__(self, argv: list[str], code: int, stderr: str):
        self.argv, self.code, self.stderr = argv, code, stderr
        super().__init__(f"{' '.join(argv[:3])}... exited {code}: {stderr.strip()[:500]}")


@dataclass
class Runner:
    prefix: list[str] = field(default_factory=list)
    timeout: float = 60.0
    # "iptables" (the host's alternative), or "iptables-legacy"/"iptables-nft" to pin one.
    iptables: str = "iptables"

    def run(self, argv: list[str], input: str | None = None, check: bool = True
            ) -> subprocess.CompletedProcess:
        full = [*self.prefix, *argv]
        proc = subprocess.run(full, input=input, capture_output=True, text=True,
                              timeout=self.timeout)
        if check and proc.returncode != 0:
            raise CommandError(full, proc.returncode, proc.stderr)
        return proc

    # iptables ---------------------------------------------------------------------

    def restore(self, text: str) -> None:
        # --wait: share the xtables lock with anything else on the host (kubelet, CNI).
        self.run([f"{self.iptables}-restore", "--noflush", "--wait"], input=text)

    def save_chains(self, table: str) -> set[str]:
        out = self.run([f"{self.iptables}-save", "-t", table]).stdout
        return {line[1:].split()[0] for line in out.splitlines() if line.startswith(":")}

    def save(self) -> dict[str, list[str]]:
        """``iptables-save`` of every table: table -> its lines."""
        tables: dict[str, list[str]] = {}
        current: list[str] = []
        for line in self.run([f"{self.iptables}-save"]).stdout.splitlines():
            if line.startswith("*"):
                current = tables.setdefault(line[1:], [])
            elif line and not line.startswith("#"):
                current.append(line)
        return tables

    def delete_jump(self, jump: Jump) -> None:
        base = [self.iptables, "--wait", "-t", jump.table]
        while self.run([*base, "-D", jump.chain, *jump.args], check=False).returncode == 0:
            pass

    def flush_delete_chains(self, table: str, chains: list[str]) -> None:
        if not chains:
            return
        text = "\n".join([f"*{table}", *(f":{c} - [0:0]" for c in chains),
                          *(f"-X {c}" for c in chains), "COMMIT", ""])
        self.restore(text)

    # conntrack, sysctl -----------------------------------------------------------

    def conntrack_delete(self, args: list[str]) -> None:
        # Exit 1 with "0 flow entries have been deleted" is not an error.
        proc = self.run(["conntrack", "-D", *args], check=False)
        if proc.returncode not in (0, 1):
            log.warning("conntrack -D %s: %s", " ".join(args), proc.stderr.strip())

    def sysctl(self, name: str, value: str) -> None:
        if not self.prefix:
            path = Path("/proc/sys") / name.replace(".", "/")
            if path.exists() and path.read_text().strip() == value:
                return
        self.run(["sysctl", "-q", "-w", f"{name}={value}"])
