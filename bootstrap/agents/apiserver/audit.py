"""Audit log: one audit.k8s.io/v1 Event per request as a JSON line (--audit-log-path).

Level Metadata, stage ResponseComplete: who did what to which object and how it
ended, never request or response bodies. ``-`` writes to stdout as upstream does.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson


def micro_time(dt: datetime | None = None) -> str:
    """metav1.MicroTime: RFC 3339 with microseconds."""
    dt = dt or datetime.now(UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_audit_id() -> str:
    return str(uuid.uuid4())


def build_event(*, verb: str, request_uri: str, user: dict, source_ips: list[str],
                user_agent: str, code: int, received: datetime,
                object_ref: dict | None = None, audit_id: str | None = None,
                impersonated_user: dict | None = None, status_message: str = "",
                status_reason: str = "", annotations: dict | None = None,
                completed: datetime | None = None, stage: str = "ResponseComplete") -> dict:
    """The Event dict for one finished request.

    ``object_ref`` as upstream: resource, namespace, name, apiGroup, apiVersion,
    subresource (only the keys that apply). ``user`` is a UserInfo.to_dict().
    """
    event: dict = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": audit_id or new_audit_id(),
        "stage": stage,
        "requestURI": request_uri,
        "verb": verb,
        "user": user,
        "sourceIPs": source_ips,
        "userAgent": user_agent,
    }
    if impersonated_user:
        event["impersonatedUser"] = impersonated_user
    if object_ref:
        event["objectRef"] = {k: v for k, v in object_ref.items() if v}
    status: dict = {"metadata": {}, "code": code}
    if code >= 400:
        status["status"] = "Failure"
        if status_message:
            status["message"] = status_message
        if status_reason:
            status["reason"] = status_reason
    event["responseStatus"] = status
    event["requestReceivedTimestamp"] = micro_time(received)
    event["stageTimestamp"] = micro_time(completed)
    if annotations:
        event["annotations"] = annotations
    return event


class AuditLogger:
    """Appends events to a file, rotating it as upstream's lumberjack writer does for
    --audit-log-maxsize (MB), --audit-log-maxbackup (files) and --audit-log-maxage
    (days): the full file becomes ``<name>-<UTC time>.<ext>`` and a new one starts;
    backups beyond the count or age are removed. 0 means no limit."""

    def __init__(self, path: str | Path, *, max_size_mb: int = 0, max_backups: int = 0,
                 max_age_days: int = 0, clock=time.time):
        self._path = str(path)
        self._lock = threading.Lock()
        self._max_bytes = max_size_mb * 1024 * 1024
        self._max_backups = max_backups
        self._max_age = max_age_days * 86400
        self._clock = clock
        self._size = 0
        if self._path == "-":
            self._fd = sys.stdout.fileno()
            self._owned = False
        else:
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            self._open()
            self._owned = True

    def _open(self) -> None:
        # O_APPEND makes each line one write, so several processes (or a log
        # shipper truncating the file) never interleave half lines.
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._size = os.fstat(self._fd).st_size

    def log(self, event: dict) -> None:
        line = orjson.dumps(event) + b"\n"
        with self._lock:
            if self._owned and self._max_bytes:
                self._follow_rotation()
                if self._size and self._size + len(line) > self._max_bytes:
                    self._rotate()
            os.write(self._fd, line)
            self._size += len(line)

    def _follow_rotation(self) -> None:
        """Another API server process sharing the file may have rotated it: write to
        the new file, not the renamed one. (Two processes rotating at once only make
        one backup smaller than the limit.)"""
        try:
            current = os.stat(self._path)
        except FileNotFoundError:
            current = None
        if current is None or current.st_ino != os.fstat(self._fd).st_ino:
            os.close(self._fd)
            self._open()
        else:
            self._size = current.st_size

    def _backup_name(self) -> Path:
        p = Path(self._path)
        stamp = datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%dT%H-%M-%S.%f")[:-3]
        return p.with_name(f"{p.stem}-{stamp}{p.suffix}")

    def _rotate(self) -> None:
        os.close(self._fd)
        os.replace(self._path, self._backup_name())
        self._open()
        self._prune()

    def backups(self) -> list[Path]:
        """Rotated files, oldest first (their names sort by time)."""
        p = Path(self._path)
        return sorted(f for f in p.parent.glob(f"{p.stem}-*{p.suffix}") if f != p)

    def _prune(self) -> None:
        old = self.backups()
        doomed = set()
        if self._max_backups and len(old) > self._max_backups:
            doomed.update(old[:len(old) - self._max_backups])
        if self._max_age:
            cutoff = self._clock() - self._max_age
            doomed.update(f for f in old if f.stat().st_mtime < cutoff)
        for f in doomed:
            try:
                f.unlink()
            except FileNotFoundError:
                pass

    def close(self) -> None:
        if self._owned and self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
