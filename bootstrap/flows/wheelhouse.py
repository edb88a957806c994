"""The agents' wheelhouse: this package plus every runtime dependency, as wheels.

Built once per version on the control machine (which reaches the package
index; hosts need not), cached under ``~/.cache/bootstrap/wheelhouse/<version>``
and copied by roles/agents to each host, which installs it offline into
``/opt/bootstrap/<version>``. Dependency wheels are fetched once; the
``bootstrap`` wheel itself is rebuilt only when the source tree changes, so
a development checkout still ships what is on disk. ``SHA256SUMS`` lists
every wheel; its hash names the install marker, so a host that already has
exactly these wheels is skipped.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bootstrap import __version__
from bootstrap.errors import UserError

MANIFEST = "SHA256SUMS"
REMOTE_WHEELHOUSE = "/var/lib/bootstrap/wheelhouse"
PREFIX = "/opt/bootstrap"
HOST_PYTHON = "/usr/bin/python3"
_SOURCE_SUFFIXES = {".py", ".j2", ".yml", ".yaml", ".json", ".toml", ".cfg", ".txt", ".md"}


@dataclass(frozen=True)
class Wheelhouse:
    path: Path
    version: str
    digest: str  # sha256 of SHA256SUMS: names this exact set of wheels

    @property
    def wheels(self) -> list[Path]:
        return sorted(self.path.glob("*.whl"))


def has_source_tree() -> bool:
    """Run from a checkout (else pip-installed: bootstrap.flows.wheel_installed)."""
    return (Path(__file__).resolve().parents[2] / "pyproject.toml").exists()


def project_root() -> Path:
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").exists():
        raise UserError(
            "cannot find the bootstrap source tree to build the agents' wheelhouse",
            where=str(root),
            hint="run from a checkout, or set BOOTSTRAP_WHEELHOUSE to a prebuilt one",
        )
    return root


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bootstrap" / "wheelhouse"


def source_digest(root: Path) -> str:
    h = hashlib.sha256()
    files = [root / "pyproject.toml"]
    # os.walk with followlinks: roles/ and templates/ are symlinked into the
    # package (bootstrap/_data), and pathlib's rglob does not follow links.
    for dirpath, dirnames, filenames in os.walk(root / "bootstrap", followlinks=True):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for fn in filenames:
            path = Path(dirpath) / fn
            if path.suffix in _SOURCE_SUFFIXES:
                files.append(path)
    for path in sorted(files):
        h.update(str(path.relative_to(root)).encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def _deps_digest(root: Path) -> str:
    # Dependency wheels depend only on what pyproject asks for.
    return hashlib.sha256((root / "pyproject.toml").read_bytes()).hexdigest()


def _pip(python: str, args: list[str], console=None) -> None:
    if console is not None:
        console.print(f"[dim]building wheelhouse: pip {' '.join(args[:3])} ...[/]")
    proc = subprocess.run([python, "-m", "pip", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-3:]
        raise UserError(
            f"pip {args[0]} failed: {' | '.join(lines) or 'no output'}",
            where="wheelhouse",
            hint="the control machine needs the package index (or a pip cache)",
        )


def _manifest_text(path: Path) -> str:
    lines = []
    for wheel in sorted(path.glob("*.whl")):
        lines.append(f"{hashlib.sha256(wheel.read_bytes()).hexdigest()}  {wheel.name}\n")
    return "".join(lines)


def _write_manifest(path: Path) -> str:
    text = _manifest_text(path)
    (path / MANIFEST).write_text(text)
    return hashlib.sha256(text.encode()).hexdigest()


def build_wheelhouse(
    cache_dir: str | os.PathLike | None = None,
    *,
    python: str | None = None,
    console=None,
) -> Wheelhouse:
    """Build (or reuse) the wheelhouse for this version; safe to call concurrently."""
    prebuilt = os.environ.get("BOOTSTRAP_WHEELHOUSE")
    if prebuilt:
        path = Path(prebuilt)
        if not any(path.glob("bootstrap-*.whl")):
            raise UserError("no bootstrap wheel in BOOTSTRAP_WHEELHOUSE", where=str(path))
        return Wheelhouse(path, __version__, _write_manifest(path))
    base = Path(cache_dir) if cache_dir else default_cache_dir()
    if not has_source_tree():
        from bootstrap.flows import wheel_installed

        path = wheel_installed.build(base, python=python, console=console)
        return Wheelhouse(path, __version__, _write_manifest(path))
    root = project_root()
    python = python or sys.executable
    path = base / __version__
    path.mkdir(parents=True, exist_ok=True)
    with open(base / f".{__version__}.lock", "w") as lock:
        # Two flows (or tests) building at once would race on the same files.
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Stamps live beside the wheel dir: everything inside it is copied to hosts.
        deps_stamp = base / f".{__version__}.deps"
        src_stamp = base / f".{__version__}.source"
        want_deps = _deps_digest(root)
        want_src = source_digest(root)
        if not deps_stamp.exists() or deps_stamp.read_text() != want_deps:
            for old in path.glob("*.whl"):
                old.unlink()
            _pip(python, ["wheel", "-q", "--wheel-dir", str(path), str(root), "pip"], console)
            deps_stamp.write_text(want_deps)
            src_stamp.write_text(want_src)
        elif not src_stamp.exists() or src_stamp.read_text() != want_src:
            for old in path.glob("bootstrap-*.whl"):
                old.unlink()
            _pip(python, ["wheel", "-q", "--no-deps", "--wheel-dir", str(path), str(root)], console)
            src_stamp.write_text(want_src)
        digest = _write_manifest(path)
    return Wheelhouse(path, __version__, digest)


def agents_vars(inventory=None, *, console=None, cache_dir=None) -> dict:
    """Variables for roles/agents, building the wheelhouse if needed."""
    return _role_vars(build_wheelhouse(cache_dir, console=console))


def _role_vars(wh: Wheelhouse) -> dict:
    pip_wheels = sorted(p.name for p in wh.path.glob("pip-*.whl"))
    if not pip_wheels:
        raise UserError("the wheelhouse has no pip wheel to install with", where=str(wh.path))
    return {
        "agents_version": wh.version,
        "agents_wheelhouse_local": str(wh.path),
        "agents_wheelhouse_remote": f"{REMOTE_WHEELHOUSE}/{wh.version}",
        "agents_wheelset": wh.digest[:16],
        "agents_pip_wheel": pip_wheels[-1],
        "agents_prefix_root": PREFIX,
        "agents_python": HOST_PYTHON,
    }


def peek_wheelhouse(cache_dir: str | os.PathLike | None = None) -> Wheelhouse | None:
    """The wheelhouse a real run would ship if it is already built and current,
    else None; reads only (no lock file, no manifest written): for dry runs."""
    prebuilt = os.environ.get("BOOTSTRAP_WHEELHOUSE")
    if prebuilt:
        path = Path(prebuilt)
        if not any(path.glob("bootstrap-*.whl")):
            return None
        return Wheelhouse(path, __version__,
                          hashlib.sha256(_manifest_text(path).encode()).hexdigest())
    base = Path(cache_dir) if cache_dir else default_cache_dir()
    if not has_source_tree():
        from bootstrap.flows import wheel_installed

        found = wheel_installed.current(base)
        if found is None:
            return None
        return Wheelhouse(found, __version__,
                          hashlib.sha256(_manifest_text(found).encode()).hexdigest())
    root = project_root()
    path = base / __version__
    stamps = {base / f".{__version__}.deps": _deps_digest(root),
              base / f".{__version__}.source": source_digest(root)}
    if not all(p.is_file() and p.read_text() == want for p, want in stamps.items()):
        return None
    if not any(path.glob("bootstrap-*.whl")) or not any(path.glob("pip-*.whl")):
        return None
    return Wheelhouse(path, __version__, hashlib.sha256(_manifest_text(path).encode()).hexdigest())


def dry_run_agents_vars(scratch: Path, cache_dir: str | os.PathLike | None = None
                        ) -> tuple[dict, bool]:
    """Variables for roles/agents in a dry run, and whether the wheelhouse is built.

    A built, current wheelhouse is compared as a real run would ship it. Without
    one, nothing is built (that writes wheels and pip's cache): the role sees an
    empty wheelhouse in ``scratch`` under a wheel set no host has, so it reports
    the copy and the install as to do.
    """
    wh = peek_wheelhouse(cache_dir)
    if wh is not None:
        return _role_vars(wh), True
    empty = Path(scratch) / "wheelhouse"
    empty.mkdir(parents=True, exist_ok=True)
    return {
        "agents_version": __version__,
        "agents_wheelhouse_local": str(empty),
        "agents_wheelhouse_remote": f"{REMOTE_WHEELHOUSE}/{__version__}",
        "agents_wheelset": "not-built-yet",
        "agents_pip_wheel": "pip-not-built-yet.whl",
        "agents_prefix_root": PREFIX,
        "agents_python": HOST_PYTHON,
    }, False
