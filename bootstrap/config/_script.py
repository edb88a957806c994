"""Executable (dynamic) inventories, read as Ansible's ``script`` plugin does.

The script is run with ``--list`` and prints JSON: each top-level key is a
group (``{"hosts": [...], "vars": {...}, "children": [...]}``, or just a list
of hosts), and ``_meta.hostvars`` holds every host's variables. A script that
prints no ``_meta`` is asked ``--host NAME`` for each host, as Ansible does.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from bootstrap.config._raw import ALL, UNGROUPED, InventorySyntaxError, RawInventory

TIMEOUT = 120  # seconds; cloud inventory scripts call APIs, but must not hang a run


def is_script(path: Path) -> bool:
    if path.suffix.lower() in (".ini", ".cfg", ".yaml", ".yml", ".json"):
        return False
    if not os.access(path, os.X_OK):
        return False
    with open(path, "rb") as f:
        return f.read(2) == b"#!"


def _run(path: Path, *args: str) -> Any:
    where = str(path)
    try:
        proc = subprocess.run([str(path), *args], capture_output=True, text=True,
                              timeout=TIMEOUT, cwd=path.parent, check=False)
    except subprocess.TimeoutExpired:
        raise InventorySyntaxError(where, f"inventory script did not finish {' '.join(args)} "
                                   f"within {TIMEOUT}s") from None
    except OSError as exc:
        raise InventorySyntaxError(where, f"cannot run inventory script: {exc.strerror}",
                                   hint="check its #! line and execute permission") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no error output"])[-1]
        raise InventorySyntaxError(where, f"inventory script {' '.join(args)} exited "
                                   f"{proc.returncode}: {last}")
    try:
        return json.loads(proc.stdout or "{}")
    except json.JSONDecodeError as exc:
        raise InventorySyntaxError(where, f"inventory script {' '.join(args)} printed invalid "
                                   f"JSON: {exc.msg} at line {exc.lineno}",
                                   hint="it must print one JSON object") from None


def parse_script(path: Path) -> RawInventory:
    where = str(path)
    doc = _run(path, "--list")
    if not isinstance(doc, dict):
        raise InventorySyntaxError(where, "inventory script --list must print a JSON object "
                                   "of groups")
    raw = RawInventory(where)
    raw.group(ALL, where)
    raw.group(UNGROUPED, where)
    meta = doc.get("_meta")
    hostvars = meta.get("hostvars") if isinstance(meta, dict) else None
    children: list[tuple[str, str]] = []
    for name, body in doc.items():
        if name == "_meta":
            continue
        group = raw.group(str(name), where)
        if isinstance(body, list):
            body = {"hosts": body}
        if not isinstance(body, dict):
            raise InventorySyntaxError(where, f"group {name!r} from the inventory script must "
                                       "be a list of hosts or an object")
        for host in body.get("hosts") or []:
            raw.add_host(str(host), where)
            group.add_host(str(host))
        group_vars = body.get("vars") or {}
        if not isinstance(group_vars, dict):
            raise InventorySyntaxError(where, f"vars of group {name!r} must be an object")
        for key, value in group_vars.items():
            group.vars.set(str(key), value, f"{where} (--list, group {name})")
        for child in body.get("children") or []:
            children.append((str(name), str(child)))
    for parent, child in children:
        raw.group(child, where)  # Ansible creates a child group it has not seen
        raw.groups[parent].add_child(child)
    for host in raw.hosts:
        if hostvars is None:
            values = _run(path, "--host", host)
            origin = f"{where} (--host {host})"
        else:
            values = hostvars.get(host) or {}
            origin = f"{where} (_meta.hostvars)"
        if not isinstance(values, dict):
            raise InventorySyntaxError(where, f"variables of host {host!r} must be an object")
        for key, value in values.items():
            raw.hosts[host].set(str(key), value, origin)
    return raw
