"""Ansible's INI inventory dialect, which configparser cannot read.

Rules followed (those of Ansible's ``ini`` inventory plugin):
- full-line comments start with ``#`` or ``;``; hosts before any section are
  in ``ungrouped``;
- ``[g]`` lists hosts, ``[g:children]`` lists groups, ``[g:vars]`` holds
  ``key=value`` lines; a group exists once ``[g]`` or ``[g:children]`` names it,
  anywhere in the file; children and vars of groups never declared are errors;
- a host line is split like a shell line (quotes, trailing ``# comment``);
  the first word is a host pattern, the rest ``key=value``;
- values are Python literals when they parse as one (``2222`` is an int,
  ``'a b'`` a string, ``True`` a bool), else the text as written.
"""

from __future__ import annotations

import ast
import re
import shlex
import warnings
from typing import Any

from bootstrap.config._raw import (
    ALL,
    UNGROUPED,
    InventorySyntaxError,
    RawInventory,
    split_host_pattern,
)

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")


def parse_value(text: str) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    if value is ... or isinstance(value, complex | bytes | set):
        return text
    return value


def parse_ini(text: str, path: str) -> RawInventory:
    raw = RawInventory(path)
    raw.group(ALL, path)
    raw.group(UNGROUPED, path)
    declared = {ALL, UNGROUPED}
    child_refs: list[tuple[str, str, str]] = []  # (parent, child, where)
    vars_refs: list[tuple[str, str]] = []  # (group, where)
    group, state = UNGROUPED, "hosts"
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{path}:{number}"
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        m = _SECTION.match(line)
        if m:
            group, state = m.group(1), m.group(2) or "hosts"
            if state not in ("hosts", "children", "vars"):
                raise InventorySyntaxError(where, f"section [{line[1:].split(']')[0]}] has "
                                           f"unknown type {state!r}",
                                           hint="use [group], [group:children] or "
                                           "[group:vars]")
            raw.group(group, where)
            if state == "vars":
                vars_refs.append((group, where))
            else:
                declared.add(group)
            continue
        if line.startswith("[") and line.endswith("]"):
            raise InventorySyntaxError(where, f"invalid section {line}",
                                       hint="no spaces or extra ':' inside the brackets")
        if state == "hosts":
            _host_line(raw, group, line, where)
        elif state == "vars":
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise InventorySyntaxError(where, f"expected key=value in [{group}:vars], "
                                           f"got {line!r}")
            raw.groups[group].vars.set(key.strip(), parse_value(value.strip()), where)
        else:
            cm = _GROUP_NAME.match(line)
            if not cm:
                raise InventorySyntaxError(where, f"expected a group name in [{group}:children], "
                                           f"got {line!r}")
            child_refs.append((group, cm.group(1), where))
    for parent, child, where in child_refs:
        if child not in declared:
            raise InventorySyntaxError(where, f"[{parent}:children] includes undefined group "
                                       f"{child!r}", hint=f"add a [{child}] section or fix "
                                       "the name")
        raw.groups[parent].add_child(child)
    for g, where in vars_refs:
        if g not in declared:
            raise InventorySyntaxError(where, f"[{g}:vars] is for an undefined group {g!r}",
                                       hint=f"add a [{g}] section or fix the name")
    return raw


def _host_line(raw: RawInventory, group: str, line: str, where: str) -> None:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:
        raise InventorySyntaxError(where, f"cannot parse host line: {exc}",
                                   hint="check the quotes") from None
    if not tokens:
        return
    names, port = split_host_pattern(tokens[0], where)
    assignments = []
    for token in tokens[1:]:
        key, sep, value = token.partition("=")
        if not sep or not key:
            raise InventorySyntaxError(where, f"expected key=value after host {tokens[0]!r}, "
                                       f"got {token!r}")
        assignments.append((key, parse_value(value)))
    for name in names:
        host_vars = raw.add_host(name, where)
        if port is not None:
            host_vars.set("ansible_port", port, where)
        for key, value in assignments:
            host_vars.set(key, value, where)
        raw.groups[group].add_host(name)
