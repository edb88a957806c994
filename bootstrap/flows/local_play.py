"""Run roles on this machine: what ``bootstrap init``/``join`` phases do to the host.

A host-local phase (etcd, control-plane, kubelet-start, ...) is the same role
``cluster up`` would apply, run by the same engine over a ``LocalConnection``
on a one-host inventory, so files and units are written only where they
differ, ``--dry-run`` prints what would be written (with ``--diff`` the
differences), and the recap counts what changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bootstrap.engine import Play, Recap, run_play
from bootstrap.remote.local import LocalConnection


@dataclass
class LocalHost:
    name: str
    address: str
    node_ip: str
    vars: dict = field(default_factory=dict)


class LocalInventory:
    """The engine's view of one host: this machine, in the groups it plays."""

    def __init__(self, name: str, ip: str, groups: list[str], host_vars: dict | None = None):
        self.path = Path("<this host>")
        self.dir = Path(".")
        self.hosts = {name: LocalHost(name, ip, ip, dict(host_vars or {}))}
        self.groups = {g: [name] for g in ["all", *groups]}
        for g in ("kube_control_plane", "kube_node", "etcd"):
            self.groups.setdefault(g, [])

    def vars_for(self, name: str) -> dict[str, Any]:
        return {"ip": self.hosts[name].node_ip, **self.hosts[name].vars}


@dataclass
class LocalRunner:
    """Plays on this machine, with the run's dry-run/diff and one recap across phases."""

    node_name: str
    node_ip: str
    groups: list[str]
    dry_run: bool = False
    diff: bool = False
    console: Any = None
    connection: Any = None
    recap: Recap = field(default_factory=Recap)

    def play(self, name: str, roles: list[str], vars: dict) -> Recap:
        inv = LocalInventory(self.node_name, self.node_ip, self.groups)
        conn = self.connection or LocalConnection(self.node_name)
        recap = run_play(Play(name=name, hosts=[self.node_name], roles=roles, vars=vars),
                         inv, {self.node_name: conn}, dry_run=self.dry_run, diff=self.diff,
                         console=self.console)
        self.recap = self.recap.merge(recap)
        recap.raise_on_failure()
        return recap
