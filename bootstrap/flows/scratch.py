"""A throwaway copy of the cluster's state dir, for runs that must change nothing.

``cluster up --dry-run`` still needs certificates, kubeconfigs and the
offline images to compare with what the hosts have, but may not write them
next to the inventory. It works on a copy instead: what exists is read (so
a converged cluster's dry run compares the very files it installed) and
what is missing is generated into the copy, which is removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def scratch_copy(state: Path) -> Iterator[Path]:
    """A private copy of ``state`` (empty if it does not exist yet), removed on exit."""
    tmp = Path(tempfile.mkdtemp(prefix="bootstrap-dry-run-"))  # 0700: the copy holds CA keys
    copy = tmp / (state.name or "artifacts")
    try:
        if state.is_dir():
            # symlinks=True: a link in the state dir is copied as a link, never followed
            # out of it; copy2 keeps mtimes (the bootstrap token's age is its mtime).
            shutil.copytree(state, copy, symlinks=True)
        else:
            copy.mkdir()
            os.chmod(copy, 0o700)
        yield copy
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
