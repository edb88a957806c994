"""The agents' wheelhouse of a pip-installed toolkit: wheels rebuilt from what is installed.

With no source tree to build from, the wheelhouse is made of the installed
distributions themselves: ``bootstrap`` and every distribution it needs (the
closure of its Requires-Dist, markers evaluated for this interpreter, extras
followed), each at exactly the version installed here (the lock: the hosts run
what the control machine runs), plus pip for the hosts' offline install. A
wheel is a zip of the files a distribution installed, listed in its RECORD,
so each is rebuilt from those files, offline, with a fresh RECORD; console
scripts are left out (pip writes them again from entry_points.txt). A
distribution installed without a RECORD is fetched once with
``pip wheel NAME==VERSION`` (the package index or pip's cache).

Built once into ``~/.cache/bootstrap/wheelhouse/installed/<version>`` and
rebuilt only when an installed distribution changes (the stamp is every
distribution's name, version and RECORD), then reused offline.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import importlib.metadata as md
import re
import sys
import sysconfig
import zipfile
from pathlib import Path

from bootstrap import __version__
from bootstrap.errors import UserError

try:
    from packaging.markers import default_environment
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # pragma: no cover - pip always vendors it
    from pip._vendor.packaging.markers import default_environment  # type: ignore[no-redef]
    from pip._vendor.packaging.requirements import (  # type: ignore[no-redef]
        InvalidRequirement,
        Requirement,
    )
    from pip._vendor.packaging.utils import canonicalize_name  # type: ignore[no-redef]

ROOT = "bootstrap"
# Written by the installer, not part of the wheel (pip writes its own again).
_INSTALLER_FILES = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
# The line every console-script launcher pip writes carries.
_LAUNCHER = b"sys.argv[0] = re.sub("
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed: the same files give the same wheel bytes


def closure(root: str = ROOT) -> list[md.Distribution]:
    """``root`` and every installed distribution it needs, plus pip; sorted by name."""
    env = default_environment()
    found: dict[str, md.Distribution] = {}
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset()), ("pip", frozenset())]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        key = canonicalize_name(name)
        if (key, extras) in seen:
            continue
        seen.add((key, extras))
        try:
            dist = found.get(key) or md.distribution(name)
        except md.PackageNotFoundError:
            # pip installs the agents on the hosts, so its wheel ships too.
            hint = (f"{sys.executable} -m ensurepip" if key == "pip"
                    else f"pip install {ROOT} again into this environment")
            raise UserError(f"{name} is needed by the agents but is not installed",
                            where=f"wheelhouse ({sys.prefix})", hint=hint) from None
        found[key] = dist
        for text in dist.requires or []:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            if req.marker is not None and not any(
                    req.marker.evaluate({**env, "extra": e}) for e in (extras or {""})):
                continue
            todo.append((req.name, frozenset(req.extras)))
    return [found[k] for k in sorted(found)]


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _dist_info(dist: md.Distribution) -> str:
    for f in dist.files or []:
        if len(f.parts) == 2 and f.parts[0].endswith(".dist-info") and f.name == "METADATA":
            return f.parts[0]
    raise ValueError("no .dist-info in RECORD")


def _wheel_name(dist: md.Distribution) -> str:
    tags = [line.split(":", 1)[1].strip() for line in (dist.read_text("WHEEL") or "").splitlines()
            if line.startswith("Tag:")]
    if not tags:
        tags = ["py3-none-any"]
    parts = [list(dict.fromkeys(t.split("-")[i] for t in tags)) for i in range(3)]
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"]).lower()
    return f"{name}-{dist.version}-{'-'.join('.'.join(p) for p in parts)}.whl"


def rewheel(dist: md.Distribution, dest: Path) -> Path:
    """A wheel of ``dist`` from its installed files (RECORD), written into ``dest``."""
    files = dist.files
    if not files:
        raise ValueError("installed without a RECORD")
    info = _dist_info(dist)
    scripts = {ep.name for ep in dist.entry_points
               if ep.group in ("console_scripts", "gui_scripts")}
    bin_dir = Path(sysconfig.get_path("scripts")).resolve()
    data_root = Path(sysconfig.get_path("data")).resolve()
    data = f"{info[:-len('.dist-info')]}.data"
    entries: list[tuple[str, Path]] = []
    for f in files:
        if "__pycache__" in f.parts or f.suffix == ".pyc":
            continue
        if f.parts[0] == info and f.name in _INSTALLER_FILES:
            continue
        path = Path(dist.locate_file(f))
        if not path.is_file():
            continue
        if f.parts[0] == "..":  # outside site-packages: scripts and data files
            real = path.resolve()
            if real.parent == bin_dir:
                if real.name in scripts or _LAUNCHER in real.read_bytes()[:1024]:
                    continue  # pip's console-script launcher (pip3.11 for pip's own)
                arc = f"{data}/scripts/{real.name}"
            elif data_root in real.parents:
                arc = f"{data}/data/{real.relative_to(data_root).as_posix()}"
            else:
                continue
        else:
            arc = f.as_posix()
        entries.append((arc, path))
    out = dest / _wheel_name(dist)
    tmp = out.with_name(f".{out.name}.tmp")
    record: list[str] = []
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for arc, path in sorted(entries):
            body = path.read_bytes()
            zi = zipfile.ZipInfo(arc, _ZIP_TIME)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = (path.stat().st_mode & 0o777 | 0o100000) << 16
            zf.writestr(zi, body)
            record.append(f"{arc},{_digest(body)},{len(body)}")
        record.append(f"{info}/RECORD,,")
        zi = zipfile.ZipInfo(f"{info}/RECORD", _ZIP_TIME)
        zi.compress_type = zipfile.ZIP_DEFLATED
        zi.external_attr = 0o100644 << 16
        zf.writestr(zi, "\n".join(record) + "\n")
    tmp.replace(out)
    return out


def stamp(dists: list[md.Distribution]) -> str:
    """Names this exact installed set: any reinstall or upgrade changes it."""
    h = hashlib.sha256()
    for d in dists:
        h.update(f"{d.metadata['Name']}=={d.version}\0".encode())
        h.update((d.read_text("RECORD") or "").encode() + b"\0")
    return h.hexdigest()


def cache_path(base: Path) -> Path:
    return base / "installed" / __version__


def current(base: Path) -> Path | None:
    """The built wheelhouse if it matches what is installed; reads only."""
    path = cache_path(base)
    stamp_file = path.parent / f".{__version__}.stamp"
    if stamp_file.is_file() and stamp_file.read_text() == stamp(closure()):
        return path
    return None


def build(base: Path, *, python: str | None = None, console=None) -> Path:
    """Build (or reuse) the wheelhouse from the installed distributions; its path."""
    from bootstrap.flows.wheelhouse import _pip

    dists = closure()
    want = stamp(dists)
    path = cache_path(base)
    path.mkdir(parents=True, exist_ok=True)
    stamp_file = path.parent / f".{__version__}.stamp"
    with open(path.parent / f".{__version__}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two runs building at once would race
        if stamp_file.is_file() and stamp_file.read_text() == want:
            return path
        if console is not None:
            console.print(f"[dim]building wheelhouse from the installed toolkit "
                          f"({len(dists)} distributions) ...[/]")
        for old in path.glob("*.whl"):
            old.unlink()
        for dist in dists:
            try:
                rewheel(dist, path)
            except (ValueError, OSError):
                # Not installed from a wheel with a RECORD: fetch that one version once.
                _pip(python or sys.executable, ["wheel", "-q", "--no-deps", "--wheel-dir",
                                                str(path), f"{dist.metadata['Name']}=={dist.version}"],
                     console)
        stamp_file.write_text(want)
    return path

