"""Which variables a task sees on a host, in Ansible's precedence order.

role defaults < computed host vars (ansible_host, node_ip) < inventory
(group_vars all < groups < host_vars) < play vars (the cluster config) <
register/set_fact < task vars < play extra vars < magic vars (inventory_hostname, groups,
group_names, hostvars, play_hosts).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from bootstrap.engine.templating import LazyVars


def inventory_groups(inventory: Any) -> dict[str, list[str]]:
    groups = getattr(inventory, "groups", None)
    if isinstance(groups, Mapping):
        out = {g: list(members) for g, members in groups.items()}
    else:
        out = {}
        for name in inventory.hosts:
            for g in inventory.group_names(name):
                out.setdefault(g, []).append(name)
    out.setdefault("all", list(inventory.hosts))
    return out


class _HostVars(Mapping):
    """``hostvars``: every host's variables, built only when a task reads them."""

    def __init__(self, scope: VarScope):
        self._scope = scope

    def __getitem__(self, name: str) -> LazyVars:
        if name not in self._scope.inventory.hosts:
            raise KeyError(name)
        return self._scope.for_host(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._scope.inventory.hosts)

    def __len__(self) -> int:
        return len(self._scope.inventory.hosts)


class VarScope:
    def __init__(
        self,
        inventory: Any,
        role_defaults: dict[str, Any],
        play_vars: dict[str, Any],
        extra_vars: dict[str, Any],
        facts: Mapping[str, dict[str, Any]],
        play_hosts: list[str],
    ):
        self.inventory = inventory
        self.role_defaults = role_defaults
        self.play_vars = play_vars
        self.extra_vars = extra_vars
        self.facts = facts
        self.groups = inventory_groups(inventory)
        self.play_hosts = play_hosts
        self._inv_cache: dict[str, dict[str, Any]] = {}

    def _inventory_vars(self, name: str) -> dict[str, Any]:
        if name not in self._inv_cache:
            self._inv_cache[name] = dict(self.inventory.vars_for(name))
        return self._inv_cache[name]

    def for_host(self, name: str, task_vars: dict[str, Any] | None = None) -> LazyVars:
        host = self.inventory.hosts[name]
        computed = {
            "ansible_host": getattr(host, "address", name),
            "node_ip": getattr(host, "node_ip", None) or getattr(host, "address", name),
        }
        magic = {
            "inventory_hostname": name,
            "inventory_hostname_short": name.split(".")[0],
            "groups": self.groups,
            "group_names": [g for g, m in self.groups.items() if name in m and g != "all"],
            "hostvars": _HostVars(self),
            "play_hosts": self.play_hosts,
        }
        layers: list[Mapping[str, Any]] = [
            self.role_defaults,
            computed,
            self._inventory_vars(name),
            self.play_vars,
            self.facts.get(name, {}),
            task_vars or {},
            self.extra_vars,
            magic,
        ]
        return LazyVars(layers)
