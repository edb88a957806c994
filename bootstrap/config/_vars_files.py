"""``group_vars/`` and ``host_vars/`` beside an inventory, read as Ansible does.

For a name ``n`` the candidates are the file ``n`` (no extension), ``n.yml``,
``n.yaml``, ``n.json``, and the directory ``n/`` whose files (same extensions,
hidden and ``~`` backups skipped) are read recursively in sorted order; later
files replace earlier top-level keys (Ansible's default ``hash_behaviour``).
"""

from __future__ import annotations

import os
from pathlib import Path

from bootstrap.config import _yaml
from bootstrap.config._raw import InventorySyntaxError, Vars

_EXTENSIONS = ("", ".yml", ".yaml", ".json")


def load_vars_dir(base: Path, name: str) -> Vars:
    """Variables for group or host ``name`` from ``base`` (group_vars or host_vars)."""
    result = Vars()
    if not base.is_dir():
        return result
    for ext in _EXTENSIONS:
        candidate = base / f"{name}{ext}"
        if candidate.is_file():
            result.update(_load_file(candidate))
        elif ext == "" and candidate.is_dir():
            for file in _walk(candidate):
                result.update(_load_file(file))
    return result


def _walk(directory: Path) -> list[Path]:
    files: list[Path] = []
    for entry in sorted(os.listdir(directory)):
        if entry.startswith(".") or entry.endswith("~"):
            continue
        path = directory / entry
        if path.is_dir():
            files.extend(_walk(path))
        elif path.suffix in _EXTENSIONS:
            files.append(path)
    return files


def _load_file(path: Path) -> Vars:
    text = _yaml.read_text(path, "vars file")
    if text.lstrip().startswith("$ANSIBLE_VAULT"):
        raise InventorySyntaxError(str(path), "Ansible Vault-encrypted vars are not supported",
                                   hint="decrypt it with ansible-vault or move secrets elsewhere")
    data = _yaml.load_one(text, str(path))
    result = Vars()
    if data is None:
        return result
    if not isinstance(data, dict):
        raise InventorySyntaxError(str(path), "a vars file must hold a mapping of variables")
    for key, value in data.items():
        result.set(str(key), value, _yaml.where(str(path), data, key))
    return result
