"""CRI log files as the containerLogs endpoint reads them."""

from __future__ import annotations

import pytest

from bootstrap.agents.kubelet import logs as L
from bootstrap.errors import UserError

DATA = (b"2026-12-02T01:00:00.000000001Z stdout F hello\n"
        b"2026-12-02T01:00:01.5Z stderr P par\n"
        b"2026-12-02T01:00:01.6Z stderr F tial\n"
        b"2026-12-02T01:00:02Z stdout F \n"
        b"garbage\n"
        b"2026-12-02T01:00:03+01:00 stdout F zone\n"
        b"2026-12-02T01:00:04Z stdout F unfini")


def test_parse_joins_partial_lines_and_keeps_the_unfinished_tail():
    entries, rest = L.parse(DATA)
    assert [e.content for e in entries] == [b"hello\n", b"partial\n", b"\n", b"zone\n"]
    assert entries[1].stream == "stderr" and entries[1].time == "2026-12-02T01:00:01.5Z"
    assert rest == b"2026-12-02T01:00:04Z stdout F unfini"


def test_tail_timestamps_limit_since():
    assert L.render(DATA, L.LogOptions()) == b"hello\npartial\n\nzone\n"
    assert L.render(DATA, L.LogOptions(tail_lines=2)) == b"\nzone\n"
    assert L.render(DATA, L.LogOptions(tail_lines=0)) == b""
    assert L.render(DATA, L.LogOptions(tail_lines=1, timestamps=True)) == \
        b"2026-12-02T01:00:03+01:00 zone\n"
    assert L.render(DATA, L.LogOptions(limit_bytes=7)) == b"hello\np"
    since = L.parse_time("2026-12-02T01:00:01Z")
    # +01:00 is an hour earlier in UTC, so it is before `since`.
    assert L.render(DATA, L.LogOptions(since=since)) == b"partial\n\n"


def test_query_validation():
    opts = L.options_from_query({"follow": "true", "previous": "1", "tailLines": "5",
                                 "limitBytes": "10", "timestamps": "true"})
    assert opts.follow and opts.previous and opts.tail_lines == 5 and opts.limit_bytes == 10
    for bad in ({"tailLines": "-1"}, {"limitBytes": "0"}, {"tailLines": "x"},
                {"sinceSeconds": "0"}, {"sinceSeconds": "5", "sinceTime": "2026-01-01T00:00:00Z"},
                {"sinceTime": "yesterday"}, {"follow": "maybe"}):
        with pytest.raises(UserError):
            L.options_from_query(bad)
