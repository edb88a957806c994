"""Writing and reading PKI files with the right modes, atomically.

A half-written key or certificate would be worse than none (the next run would
"reuse" it), so every write goes to a temp file in the same directory and is
renamed into place.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

KEY_MODE = 0o600
CERT_MODE = 0o644
DIR_MODE = 0o755


def ensure_dir(path: Path) -> None:
    if not path.is_dir():
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        # mkstemp creates 0600; set the final mode before the content is visible.
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
