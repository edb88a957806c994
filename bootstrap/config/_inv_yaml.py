"""Ansible's YAML inventory format (``all: {hosts:, children:, vars:}``).

A group is a mapping with only ``hosts``, ``vars`` and ``children``; a child
written with no body (``kube_node:``) refers to a group defined elsewhere. We
treat such a bare reference to a group that is never defined as an error (a
misspelt child silently becoming an empty group is how nodes go missing); a
bare name directly under the top level or ``all.children`` declares an empty
group, as kubespray's generated inventories do with ``calico_rr``.
"""

from __future__ import annotations

import difflib
from typing import Any

from bootstrap.config import _yaml
from bootstrap.config._raw import (
    ALL,
    UNGROUPED,
    InventorySyntaxError,
    RawInventory,
    split_host_pattern,
)

_GROUP_KEYS = ("hosts", "vars", "children")


def parse_yaml_inventory(text: str, path: str) -> RawInventory:
    doc = _yaml.load_one(text, path)
    if doc is None:
        raise InventorySyntaxError(path, "the inventory is empty",
                                   hint="start with 'all:' and list hosts and children")
    if not isinstance(doc, dict):
        raise InventorySyntaxError(path, "expected a mapping of groups at the top (all: ...)")
    reader = _Reader(path)
    reader.raw.group(ALL, path)
    reader.raw.group(UNGROUPED, path)
    for name, body in doc.items():
        reader.group(str(name), body, doc, top=True)
    reader.check_references()
    return reader.raw


class _Reader:
    def __init__(self, path: str):
        self.path = path
        self.raw = RawInventory(path)
        self.defined: set[str] = {ALL, UNGROUPED}
        self.references: list[tuple[str, str, str]] = []  # (parent, child, where)

    def where(self, container: Any, key: Any = None) -> str:
        return _yaml.where(self.path, container, key)

    def group(self, name: str, body: Any, parent_map: Any, *, top: bool) -> None:
        where = self.where(parent_map, name)
        group = self.raw.group(name, where)
        if body is None:
            if top:
                self.defined.add(name)
            return
        if not isinstance(body, dict):
            raise InventorySyntaxError(where, f"group {name!r} must be a mapping with hosts, "
                                       f"vars or children, got {type(body).__name__}")
        self.defined.add(name)
        for key in body:
            if key not in _GROUP_KEYS:
                close = difflib.get_close_matches(str(key), _GROUP_KEYS, n=1)
                hint = f"did you mean {close[0]!r}?" if close else \
                    "a group holds only hosts, vars and children"
                raise InventorySyntaxError(self.where(body, key),
                                           f"group {name!r} has unknown key {key!r}", hint=hint)
        hosts = body.get("hosts")
        if hosts is not None:
            if not isinstance(hosts, dict):
                raise InventorySyntaxError(self.where(body, "hosts"),
                                           f"hosts of group {name!r} must be a mapping of host "
                                           "names (node1: {ansible_host: ...})")
            for pattern, host_vars in hosts.items():
                self.host(group.name, str(pattern), host_vars, hosts)
        group_vars = body.get("vars")
        if group_vars is not None:
            if not isinstance(group_vars, dict):
                raise InventorySyntaxError(self.where(body, "vars"),
                                           f"vars of group {name!r} must be a mapping")
            for key, value in group_vars.items():
                group.vars.set(str(key), value, self.where(group_vars, key))
        children = body.get("children")
        if children is not None:
            if not isinstance(children, dict):
                raise InventorySyntaxError(self.where(body, "children"),
                                           f"children of group {name!r} must be a mapping of "
                                           "group names")
            for child, child_body in children.items():
                child = str(child)
                group.add_child(child)
                self.references.append((name, child, self.where(children, child)))
                self.group(child, child_body, children, top=(name == ALL))

    def host(self, group: str, pattern: str, host_vars: Any, hosts: Any) -> None:
        where = self.where(hosts, pattern)
        names, port = split_host_pattern(pattern, where)
        if host_vars is not None and not isinstance(host_vars, dict):
            raise InventorySyntaxError(where, f"vars of host {pattern!r} must be a mapping "
                                       f"(key: value), got {type(host_vars).__name__}")
        for name in names:
            v = self.raw.add_host(name, where)
            if port is not None:
                v.set("ansible_port", port, where)
            for key, value in (host_vars or {}).items():
                v.set(str(key), value, self.where(host_vars, key))
            self.raw.groups[group].add_host(name)

    def check_references(self) -> None:
        for parent, child, where in self.references:
            if child not in self.defined:
                raise InventorySyntaxError(where, f"children of {parent!r} include undefined "
                                           f"group {child!r}", hint=f"define {child!r} with "
                                           "hosts or children, or fix the name")
