"""--audit-log-maxsize / maxbackup / maxage rotation, with an injected clock."""

from __future__ import annotations

import os

from bootstrap.agents.apiserver.audit import AuditLogger


def test_rotates_by_size_and_keeps_maxbackup(tmp_path):
    now = [1_700_000_000.0]
    log = AuditLogger(tmp_path / "audit.log", max_size_mb=1, max_backups=2,
                      clock=lambda: now[0])
    event = {"kind": "Event", "pad": "x" * 4000}
    for _ in range(3):
        for _ in range(300):  # ~1.2 MB per round: one rotation each
            log.log(event)
        now[0] += 1
    log.close()
    backups = log.backups()
    assert len(backups) == 2
    assert all(b.stat().st_size <= 1024 * 1024 for b in backups)
    assert (tmp_path / "audit.log").stat().st_size <= 1024 * 1024
    assert all(b.name.startswith("audit-") and b.suffix == ".log" for b in backups)


def test_rotated_files_older_than_maxage_are_removed(tmp_path):
    now = [1_700_000_000.0]
    old = tmp_path / "audit-2020-01-01T00-00-00.000.log"
    old.write_text("{}\n")
    os.utime(old, (now[0] - 3 * 86400, now[0] - 3 * 86400))
    log = AuditLogger(tmp_path / "audit.log", max_size_mb=1, max_age_days=1,
                      clock=lambda: now[0])
    for _ in range(300):
        log.log({"pad": "y" * 4000})
    log.close()
    assert not old.exists()
    assert len(log.backups()) == 1


def test_without_limits_the_file_only_grows(tmp_path):
    log = AuditLogger(tmp_path / "a.log")
    for _ in range(10):
        log.log({"x": 1})
    log.close()
    assert log.backups() == []
    assert len((tmp_path / "a.log").read_text().splitlines()) == 10
