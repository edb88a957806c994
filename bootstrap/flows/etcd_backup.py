"""etcd snapshots kept on the control machine: names, checksums, metadata, retention.

A saved snapshot is three files side by side in one directory (by default
``<inventory dir>/artifacts/backups``)::

    etcd-snapshot-20261202T044512Z.db          the snapshot, as etcdctl saved it
    etcd-snapshot-20261202T044512Z.db.sha256   `sha256sum -c` format
    etcd-snapshot-20261202T044512Z.db.json     etcdctl snapshot status + where it came from

The timestamp is UTC, so names sort by age; retention keeps the newest N
snapshots (kubespray's etcd_backup_retention_count) and removes the older ones
with their side files. Only names of this exact pattern are ever removed. The
scheduled backups on etcd hosts (roles/etcd, etcd-backup.timer) use the same
names, so one restore command reads either.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bootstrap.errors import UserError

PREFIX = "etcd-snapshot-"
SUFFIX = ".db"
# strftime and date(1) read this the same way; roles/etcd/defaults repeats it for the
# host-side timer (a unit test keeps the two equal).
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
NAME_RE = re.compile(r"^etcd-snapshot-(\d{8}T\d{6}Z)\.db$")
SIDE_FILES = (".sha256", ".json")
DEFAULT_RETENTION = 10  # kubespray keeps all (-1) by default; a bounded default is safer here
BACKUPS_DIR = "backups"


def snapshot_name(now: datetime) -> str:
    return f"{PREFIX}{now.astimezone(UTC).strftime(STAMP_FORMAT)}{SUFFIX}"


def snapshots_in(directory: Path) -> list[Path]:
    """Our snapshots in ``directory``, oldest first (names sort by their UTC stamp)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if NAME_RE.match(p.name) and p.is_file())


def expired(snapshots: list[Path], keep: int) -> list[Path]:
    """The snapshots retention removes: all but the newest ``keep`` (0 keeps all)."""
    if keep <= 0:
        return []
    ordered = sorted(snapshots, key=lambda p: p.name)
    return ordered[:-keep] if len(ordered) > keep else []


def apply_retention(directory: Path, keep: int) -> list[Path]:
    removed = expired(snapshots_in(directory), keep)
    for snap in removed:
        snap.unlink(missing_ok=True)
        for side in SIDE_FILES:
            Path(f"{snap}{side}").unlink(missing_ok=True)
    return removed


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_retention(keep: int) -> int:
    if keep < 0:
        raise UserError(f"--retention must be 0 (keep all) or more, not {keep}")
    return keep


@dataclass
class Saved:
    path: Path
    sha256: str
    status: dict  # etcdctl snapshot status: hash, revision, totalKey, totalSize
    member: str
    removed: list[Path] = field(default_factory=list)


def write_snapshot(dest: Path, data: bytes, status: dict, *, member: str, endpoint: str,
                   taken_at: datetime,
                   verify: Callable[[Path], dict | None] | None = None) -> Saved:
    """Write ``data`` to ``dest`` with its side files; never leaves a partial ``dest``.

    ``verify`` (etcdctl snapshot status on this machine, when installed) must
    report the hash the member reported, or the transfer changed the bytes.
    """
    if dest.exists():
        raise UserError("already exists; not overwriting a snapshot", where=str(dest),
                        hint="give another name, or wait a second for a new timestamp")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o600)
        local = (verify or verify_local)(Path(tmp))
        if local is not None and local.get("hash") != status.get("hash"):
            raise UserError("snapshot changed in transfer (hash differs)", where=str(dest),
                            hint="save it again")
        digest = sha256_of(Path(tmp))
        meta = {"file": dest.name, "sha256": digest, "member": member, "endpoint": endpoint,
                "takenAt": taken_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "hash": status.get("hash"), "revision": status.get("revision"),
                "totalKey": status.get("totalKey"), "totalSize": status.get("totalSize")}
        _write_private(Path(f"{dest}.sha256"), f"{digest}  {dest.name}\n")
        _write_private(Path(f"{dest}.json"), json.dumps(meta, indent=2) + "\n")
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        for side in SIDE_FILES:
            Path(f"{dest}{side}").unlink(missing_ok=True)
        raise
    return Saved(path=dest, sha256=digest, status=status, member=member)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def verify_local(path: Path) -> dict | None:
    """``etcdctl snapshot status`` on this machine, when etcdctl is installed here."""
    if not shutil.which("etcdctl"):
        return None
    r = subprocess.run(["etcdctl", "--write-out=json", "snapshot", "status", str(path)],
                       capture_output=True, text=True, env={**os.environ, "ETCDCTL_API": "3"})
    if r.returncode != 0:
        raise UserError("snapshot fails its integrity check (etcdctl snapshot status: "
                        f"{error_summary(r.stderr)})", where=str(path))
    return json.loads(r.stdout)


def error_summary(stderr: str) -> str:
    """One line out of etcdctl's stderr: its ``Error:`` or Go ``panic:`` line (bbolt
    panics on some damaged pages, and the stack trace after it says nothing to a
    user), else the last line."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith(("panic:", "Error:")):
            return ln[:300]
    return lines[-1][:300] if lines else "no output"


def check_checksum(path: Path) -> str:
    """The snapshot's sha256; refused when a ``.sha256`` side file names another one."""
    if not path.is_file():
        raise UserError("no such snapshot file", where=str(path))
    digest = sha256_of(path)
    side = Path(f"{path}.sha256")
    if side.is_file():
        words = side.read_text().split()
        if not words or words[0].lower() != digest:
            raise UserError("snapshot fails its integrity check (sha256 differs from "
                            f"{side.name})", where=str(path),
                            hint="the file is damaged; restore another snapshot")
    return digest


def default_dir(inventory) -> Path:
    return Path(inventory.artifacts_dir) / BACKUPS_DIR
