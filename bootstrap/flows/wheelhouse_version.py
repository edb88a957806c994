"""A wheelhouse of another version built from the same tree (upgrade tests, benchmarks).

``build_version_wheelhouse("0.2.0")`` makes a real ``bootstrap-0.2.0`` wheel
(``bootstrap.__version__`` is 0.2.0 once installed) next to the dependency and
pip wheels of this version's wheelhouse, cached per version under
``~/.cache/bootstrap/wheelhouse/<version>`` and rebuilt only when the source
tree or the base wheel set changes. ``BOOTSTRAP_BUILD_VERSION`` names the
version when none is passed. The tree is copied with the version in its
pyproject replaced; the checkout itself is never modified.

``version_agents_vars`` gives roles/agents what it needs to install that
version beside the running one: ``agents_switch_current: false`` leaves
``/opt/bootstrap/current`` (and every unit) on the old install.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from bootstrap import __version__
from bootstrap.errors import UserError
from bootstrap.flows import versions, wheelhouse

ENV = "BOOTSTRAP_BUILD_VERSION"
_PYPROJECT_VERSION = re.compile(r'(?m)^version\s*=\s*"[^"]*"')


def requested_version(version: str | None = None) -> str:
    want = version or os.environ.get(ENV) or __version__
    if versions.parse(want) is None or want.startswith("v"):
        raise UserError(f"{want!r} is not a version (MAJOR.MINOR.PATCH)", where="wheelhouse",
                        hint=f"e.g. {ENV}=0.2.0")
    return want


def _copy_tree(root: Path, dest: Path, version: str) -> None:
    text = (root / "pyproject.toml").read_text()
    if not _PYPROJECT_VERSION.search(text):
        raise UserError("no version = \"...\" line in pyproject.toml", where=str(root))
    (dest / "pyproject.toml").write_text(_PYPROJECT_VERSION.sub(f'version = "{version}"', text,
                                                                count=1))
    for name in ("README.md", "LICENSE"):
        if (root / name).exists():
            shutil.copy2(root / name, dest / name)
    # symlinks=False: bootstrap/_data/{roles,templates} link outside the package.
    shutil.copytree(root / "bootstrap", dest / "bootstrap", symlinks=False,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))


def build_version_wheelhouse(version: str | None = None,
                             cache_dir: str | os.PathLike | None = None, *,
                             python: str | None = None, console=None) -> wheelhouse.Wheelhouse:
    version = requested_version(version)
    base_wh = wheelhouse.build_wheelhouse(cache_dir, python=python, console=console)
    if version == base_wh.version:
        return base_wh
    root = wheelhouse.project_root()
    base = Path(cache_dir) if cache_dir else wheelhouse.default_cache_dir()
    path = base / version
    path.mkdir(parents=True, exist_ok=True)
    with open(base / f".{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = base / f".{version}.source"
        want = hashlib.sha256(f"{wheelhouse.source_digest(root)}:{base_wh.digest}".encode()
                              ).hexdigest()
        if not stamp.exists() or stamp.read_text() != want or \
                not any(path.glob(f"bootstrap-{version}-*.whl")):
            for old in path.glob("*.whl"):
                old.unlink()
            for wheel in base_wh.wheels:
                if not wheel.name.startswith("bootstrap-"):
                    shutil.copy2(wheel, path / wheel.name)
            with tempfile.TemporaryDirectory(prefix="bootstrap-src-") as tmp:
                _copy_tree(root, Path(tmp), version)
                wheelhouse._pip(python or sys.executable,
                                ["wheel", "-q", "--no-deps", "--wheel-dir", str(path), tmp],
                                console)
            if not any(path.glob(f"bootstrap-{version}-*.whl")):
                raise UserError(f"pip built no bootstrap-{version} wheel", where=str(path))
            stamp.write_text(want)
        digest = wheelhouse._write_manifest(path)
    return wheelhouse.Wheelhouse(path, version, digest)


def version_agents_vars(version: str | None = None, *, switch_current: bool = False,
                        cache_dir=None, console=None) -> dict:
    """roles/agents vars installing ``version`` into /opt/bootstrap/<version>."""
    wh = build_version_wheelhouse(version, cache_dir, console=console)
    return {**wheelhouse._role_vars(wh), "agents_switch_current": switch_current}
