"""Atomic writes of a volume's files, as upstream's AtomicWriter.

A target directory holds a timestamped directory with the payload, a ``..data``
symlink to it, and one symlink per top-level entry pointing through ``..data``.
An update writes a new timestamped directory and renames a fresh symlink over
``..data``, so readers see either the old or the new set of files, never a mix;
this is how configMap and secret updates reach running containers.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

DATA = "..data"
_TMP = "..data_tmp"


@dataclass(frozen=True)
class FileProjection:
    data: bytes
    mode: int = 0o644


class PayloadError(ValueError):
    pass


def _check_path(path: str) -> None:
    # Upstream validatePath: relative, no '..' elements, not starting with '..'.
    if not path or path.startswith("/") or path.startswith(".."):
        raise PayloadError(f"invalid path {path!r}")
    if any(part == ".." for part in path.split("/")):
        raise PayloadError(f"invalid path {path!r}: must not contain '..'")
    if len(path) > 4096:
        raise PayloadError("path too long")


def _current(target: Path) -> Path | None:
    link = target / DATA
    if not link.is_symlink():
        return None
    return target / os.readlink(link)


def _same(dirpath: Path, payload: dict[str, FileProjection]) -> bool:
    existing = {str(p.relative_to(dirpath)) for p in dirpath.rglob("*") if p.is_file()}
    if existing != set(payload):
        return False
    for rel, proj in payload.items():
        p = dirpath / rel
        if p.read_bytes() != proj.data or (p.stat().st_mode & 0o7777) != proj.mode:
            return False
    return True


def write(target: Path, payload: dict[str, FileProjection],
          clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> bool:
    """Make ``target`` hold exactly ``payload``; returns True when anything changed."""
    for rel in payload:
        _check_path(rel)
    target.mkdir(parents=True, exist_ok=True)
    old = _current(target)
    if old is not None and old.is_dir() and _same(old, payload):
        return False
    stamp = clock().strftime("..%Y_%m_%d_%H_%M_%S.%f")
    new = target / stamp
    n = 0
    while new.exists():
        n += 1
        new = target / f"{stamp}{n}"
    new.mkdir(mode=0o755)
    for rel, proj in payload.items():
        p = new / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(proj.data)
        os.chmod(p, proj.mode)
    os.chmod(new, 0o755)
    tmp = target / _TMP
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(new.name, tmp)
    os.replace(tmp, target / DATA)   # the atomic switch
    tops = {rel.split("/", 1)[0] for rel in payload}
    for top in tops:
        link = target / top
        if not link.is_symlink():
            if link.exists():
                shutil.rmtree(link) if link.is_dir() else link.unlink()
            os.symlink(f"{DATA}/{top}", link)
    for entry in target.iterdir():
        name = entry.name
        if name in (DATA, new.name) or name in tops:
            continue
        if name.startswith(".."):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry.is_symlink():
                entry.unlink()
        elif entry.is_symlink():
            entry.unlink()   # a key that is gone
    return True
