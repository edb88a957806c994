"""Container logs in the CRI format, read as upstream's kubelet reads them
(pkg/kubelet/kuberuntime/logs): ``<RFC3339Nano> <stdout|stderr> <P|F> <content>``
per line, P marking a partial line that continues in the next record.

``LogOptions`` carries the containerLogs query (tailLines, sinceSeconds/sinceTime,
timestamps, limitBytes); ``render`` turns a file's bytes into what the client
gets. Following is done by the server, which calls ``render`` on new bytes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from bootstrap.errors import UserError


@dataclass(frozen=True)
class LogOptions:
    tail_lines: int | None = None
    since: float | None = None      # epoch seconds; entries before it are skipped
    timestamps: bool = False
    limit_bytes: int | None = None
    follow: bool = False
    previous: bool = False


@dataclass(frozen=True)
class Entry:
    time: str      # as written (RFC3339Nano)
    stream: str
    content: bytes  # the full line, newline included when the line was complete


def parse_time(text: str) -> float:
    """RFC3339Nano (Go's) to epoch seconds; nanoseconds beyond µs are dropped."""
    s = text.rstrip("Z")
    tz = 0.0
    if text.endswith("Z"):
        pass
    elif len(s) > 6 and s[-6] in "+-" and s[-3] == ":":
        sign = 1 if s[-6] == "+" else -1
        tz = sign * (int(s[-5:-3]) * 3600 + int(s[-2:]) * 60)
        s = s[:-6]
    base, _, frac = s.partition(".")
    dt = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return dt.timestamp() + (float("0." + frac) if frac else 0.0) - tz


def parse(data: bytes) -> tuple[list[Entry], bytes]:
    """Complete entries from ``data`` and the bytes of an unfinished last line."""
    entries: list[Entry] = []
    partial: list[bytes] = []
    first_time = ""
    lines = data.split(b"\n")
    rest = lines.pop()  # b"" when data ended with a newline
    for line in lines:
        fields = line.split(b" ", 3)
        if len(fields) < 3:
            continue  # not a CRI record; upstream skips it with an error log
        ts, stream, tag = fields[0].decode(), fields[1].decode(), fields[2]
        content = fields[3] if len(fields) > 3 else b""
        if not partial:
            first_time = ts
        partial.append(content)
        if tag.startswith(b"P"):
            continue
        entries.append(Entry(first_time, stream, b"".join(partial) + b"\n"))
        partial = []
    if partial:
        # A partial record without its end yet: hand back its raw lines.
        done = b"\n".join(lines[len(lines) - len(partial):]) + b"\n"
        return entries, done + rest
    return entries, rest


def select(entries: list[Entry], opts: LogOptions) -> list[Entry]:
    if opts.since is not None:
        entries = [e for e in entries if parse_time(e.time) >= opts.since]
    if opts.tail_lines is not None:
        entries = entries[-opts.tail_lines:] if opts.tail_lines > 0 else []
    return entries


def format_entries(entries: list[Entry], opts: LogOptions) -> bytes:
    out = []
    for e in entries:
        out.append((e.time.encode() + b" " + e.content) if opts.timestamps else e.content)
    return b"".join(out)


def render(data: bytes, opts: LogOptions) -> bytes:
    entries, _ = parse(data)
    out = format_entries(select(entries, opts), opts)
    if opts.limit_bytes is not None:
        out = out[:opts.limit_bytes]
    return out


def options_from_query(query) -> LogOptions:
    """The containerLogs query parameters, validated as PodLogOptions are."""
    def boolean(name: str) -> bool:
        v = query.get(name, "false").lower()
        if v not in ("true", "false", "1", "0", ""):
            raise UserError(f"{name}: invalid boolean {v!r}")
        return v in ("true", "1")

    def integer(name: str, minimum: int) -> int | None:
        if name not in query:
            return None
        try:
            v = int(query[name])
        except ValueError:
            raise UserError(f"{name}: invalid integer {query[name]!r}") from None
        if v < minimum:
            raise UserError(f"{name}: must be greater than or equal to {minimum}")
        return v

    since = None
    seconds = integer("sinceSeconds", 1)
    if seconds is not None and "sinceTime" in query:
        raise UserError("at most one of sinceTime or sinceSeconds may be specified")
    if seconds is not None:
        since = time.time() - seconds
    elif "sinceTime" in query:
        try:
            since = parse_time(query["sinceTime"])
        except ValueError:
            raise UserError(f"sinceTime: invalid time {query['sinceTime']!r}") from None
    limit = integer("limitBytes", 1)
    return LogOptions(tail_lines=integer("tailLines", 0), since=since,
                      timestamps=boolean("timestamps"), limit_bytes=limit,
                      follow=boolean("follow"), previous=boolean("previous"))
