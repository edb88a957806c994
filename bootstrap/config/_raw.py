"""The inventory as written, before any kubespray meaning is given to it.

Both readers (INI and YAML) fill a ``RawInventory``: groups with their direct
hosts, children and vars, and hosts with their inline vars, each value paired
with the ``file:line`` it came from so later errors can point at it.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any

from bootstrap.config.validate import is_ip, parse_port

ALL = "all"
UNGROUPED = "ungrouped"


class InventorySyntaxError(ValueError):
    """A problem at a known place; the loader turns it into a UserError."""

    def __init__(self, where: str, message: str, hint: str | None = None):
        super().__init__(message)
        self.where = where
        self.message = message
        self.hint = hint


@dataclass
class Vars:
    """Variables plus where each one was set, kept in step."""

    values: dict[str, Any] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)

    def set(self, key: str, value: Any, where: str) -> None:
        self.values[key] = value
        self.where[key] = where

    def update(self, other: Vars) -> None:
        self.values.update(other.values)
        self.where.update(other.where)


@dataclass
class RawGroup:
    name: str
    where: str
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    vars: Vars = field(default_factory=Vars)

    def add_host(self, host: str) -> None:
        if host not in self.hosts:
            self.hosts.append(host)

    def add_child(self, child: str) -> None:
        if child not in self.children:
            self.children.append(child)


@dataclass
class RawInventory:
    path: str
    groups: dict[str, RawGroup] = field(default_factory=dict)
    hosts: dict[str, Vars] = field(default_factory=dict)  # ordered by first appearance
    host_where: dict[str, str] = field(default_factory=dict)

    def group(self, name: str, where: str) -> RawGroup:
        if name not in self.groups:
            self.groups[name] = RawGroup(name, where)
        return self.groups[name]

    def add_host(self, name: str, where: str) -> Vars:
        if name not in self.hosts:
            self.hosts[name] = Vars()
            self.host_where[name] = where
        return self.hosts[name]


def split_host_pattern(pattern: str, where: str) -> tuple[list[str], int | None]:
    """Host names and optional port of an inventory host entry, as Ansible reads
    them: ``node1``, ``node1:2222``, ``node[1:3]``, ``[2001:db8::1]:22``."""
    port: int | None = None
    text = pattern.strip()
    if text.startswith("[") and "]" in text:
        inner, _, rest = text[1:].partition("]")
        if is_ip(inner) and ":" in inner:
            if rest and not rest.startswith(":"):
                raise InventorySyntaxError(where, f"invalid host pattern {pattern!r}")
            return [inner], _port(rest[1:], pattern, where) if rest else None
    if is_ip(text):
        return [text], None
    head, sep, tail = text.rpartition(":")
    # A ':' inside a range (node[1:3]) is not a port separator.
    if sep and head.count("[") == head.count("]"):
        if not tail:
            raise InventorySyntaxError(where, f"host pattern {pattern!r} ends in ':'",
                                       hint="write host:port or remove the ':'")
        port = _port(tail, pattern, where)
        text = head
    if not text:
        raise InventorySyntaxError(where, f"invalid host pattern {pattern!r}")
    if text.strip() == "---":
        raise InventorySyntaxError(where, "'---' as a host: this looks like a YAML file",
                                   hint="name the file .yaml")
    return expand_ranges(text, where), port


def _port(text: str, pattern: str, where: str) -> int:
    try:
        return parse_port(text)
    except ValueError:
        raise InventorySyntaxError(where, f"invalid port in host pattern {pattern!r}",
                                   hint="use host:port with a port 1-65535") from None


def expand_ranges(pattern: str, where: str) -> list[str]:
    """Expand Ansible host ranges: ``web[01:03]`` ``db-[a:c]`` ``n[1:9:2]``."""
    if "[" not in pattern:
        if "]" in pattern:
            raise InventorySyntaxError(where, f"unbalanced ']' in host pattern {pattern!r}")
        return [pattern]
    head, _, rest = pattern.partition("[")
    body, sep, tail = rest.partition("]")
    if not sep:
        raise InventorySyntaxError(where, f"unclosed '[' in host pattern {pattern!r}")
    bounds = body.split(":")
    if len(bounds) not in (2, 3):
        raise InventorySyntaxError(where, f"host range [{body}] must be begin:end or "
                                   "begin:end:step")
    beg, end = bounds[0] or "0", bounds[1]
    step_text = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise InventorySyntaxError(where, f"host range [{body}] has no end")
    if not step_text.isdigit() or int(step_text) < 1:
        raise InventorySyntaxError(where, f"host range [{body}] has an invalid step")
    step = int(step_text)
    if beg.isdigit() and end.isdigit():
        if beg.startswith("0") and len(beg) > 1 and len(beg) != len(end):
            raise InventorySyntaxError(where, f"host range [{body}]: zero-padded begin and end "
                                       "must have the same length")
        width = len(beg) if beg.startswith("0") and len(beg) > 1 else 0
        if int(beg) > int(end):
            raise InventorySyntaxError(where, f"host range [{body}] begins after it ends")
        items = [str(i).zfill(width) for i in range(int(beg), int(end) + 1, step)]
    elif len(beg) == 1 and len(end) == 1 and beg in string.ascii_letters \
            and end in string.ascii_letters:
        i, j = string.ascii_letters.index(beg), string.ascii_letters.index(end)
        if i > j:
            raise InventorySyntaxError(where, f"host range [{body}] begins after it ends")
        items = list(string.ascii_letters[i:j + 1:step])
    else:
        raise InventorySyntaxError(where, f"host range [{body}] must be numbers or single "
                                   "letters")
    return [f"{head}{item}{rest_host}" for item in items
            for rest_host in expand_ranges(tail, where)]
