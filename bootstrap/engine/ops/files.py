"""file, copy and template: paths, contents, modes and owners."""

from __future__ import annotations

import difflib
import hashlib
import os
import threading
from dataclasses import dataclass
from typing import Any

from bootstrap.engine.ops.base import (
    Command,
    Diff,
    OpContext,
    OpError,
    OpGen,
    Upload,
    check_args,
    parse_mode,
    q,
)
from bootstrap.engine.templating import render_file

# Diffs of bigger (or binary) files say only that they differ.
DIFF_LIMIT = 256 * 1024
SYSTEMD_DIRS = ("/etc/systemd/", "/lib/systemd/", "/usr/lib/systemd/", "/run/systemd/")


@dataclass
class Stat:
    kind: str  # "directory", "regular file", "regular empty file", "symbolic link", ...
    mode: int
    owner: str
    group: str
    uid: str
    gid: str
    link: str | None = None
    sha256: str | None = None

    @property
    def is_dir(self) -> bool:
        return self.kind == "directory"

    @property
    def is_file(self) -> bool:
        return self.kind.startswith("regular")

    @property
    def is_link(self) -> bool:
        return self.kind == "symbolic link"


# One round trip: lstat, link target and content hash of a regular file.
_STAT = (
    "p={p}; if s=$(stat -c '%F|%a|%U|%G|%u|%g' -- \"$p\" 2>/dev/null); then echo \"$s\"; "
    "if [ -L \"$p\" ]; then echo \"L $(readlink -- \"$p\")\"; "
    "elif [ -f \"$p\" ] && [ {hash} = 1 ]; then echo \"H $(sha256sum < \"$p\" | cut -d' ' -f1)\"; fi; "
    "else echo missing; fi"
)


def stat_path(ctx: OpContext, path: str, *, with_hash: bool = False) -> Stat | None:
    res = ctx.fact(_STAT.format(p=q(path), hash=1 if with_hash else 0))
    lines = res.stdout.splitlines()
    if not res.ok or not lines or lines[0] == "missing":
        if not res.ok:
            raise OpError(f"cannot stat {path}: {res.stderr.strip()}")
        return None
    kind, mode, owner, group, uid, gid = lines[0].split("|")
    st = Stat(kind, int(mode, 8), owner, group, uid, gid)
    for line in lines[1:]:
        if line.startswith("L "):
            st.link = line[2:]
        elif line.startswith("H "):
            st.sha256 = line[2:].strip()
    return st


def _owner_differs(st: Stat, owner: Any) -> bool:
    return owner not in (None, "") and str(owner) not in (st.owner, st.uid)


def _group_differs(st: Stat, group: Any) -> bool:
    return group not in (None, "") and str(group) not in (st.group, st.gid)


def fix_attrs(path: str, st: Stat | None, mode: int | None, owner: Any, group: Any) -> OpGen:
    """chmod/chown only what differs; ``st`` None means freshly created."""
    if mode is not None and (st is None or st.mode != mode):
        yield Command(f"chmod {mode:04o} -- {q(path)}")
    want_owner = owner if st is None or _owner_differs(st, owner) else None
    want_group = group if st is None or _group_differs(st, group) else None
    if want_owner or want_group:
        spec = f"{want_owner or ''}{':' + str(want_group) if want_group else ''}"
        yield Command(f"chown {q(spec)} -- {q(path)}")


FILE_ARGS = {"path", "dest", "state", "mode", "owner", "group", "src", "force"}


def op_file(ctx: OpContext, args: dict) -> OpGen:
    check_args("file", args, FILE_ARGS)
    path = args.get("path") or args.get("dest")
    if not path:
        raise OpError("file: missing argument path")
    state = args.get("state", "file")
    mode = parse_mode(args.get("mode"))
    owner, group = args.get("owner"), args.get("group")
    st = stat_path(ctx, path)
    if state == "absent":
        if st is not None:
            yield Command(f"rm -rf -- {q(path)}")
        return
    if state == "link":
        src = args.get("src")
        if not src:
            raise OpError("file: state=link needs src")
        if st is not None and st.is_link and st.link == str(src):
            return
        if st is not None and not st.is_link:
            if not args.get("force"):
                raise OpError(f"{path} exists and is a {st.kind}, not a link", hint="set force: true")
            yield Command(f"rm -rf -- {q(path)}")
        # -n: replace a link to a directory instead of creating a link inside it.
        yield Command(f"ln -sfn -- {q(src)} {q(path)}")
        return
    if state == "directory":
        if st is None:
            yield Command(f"mkdir -p -- {q(path)}")
        elif not st.is_dir:
            raise OpError(f"{path} exists and is a {st.kind}, not a directory")
        yield from fix_attrs(path, st, mode, owner, group)
        return
    if state == "touch":
        if st is None:
            yield Command(f"touch -- {q(path)}")
        yield from fix_attrs(path, st, mode, owner, group)
        return
    if state == "file":
        if st is None:
            raise OpError(f"{path} does not exist", hint="use state: touch to create it")
        yield from fix_attrs(path, st, mode, owner, group)
        return
    raise OpError(f"file: unknown state {state!r}", hint="directory, file, touch, link or absent")


def _diff(ctx: OpContext, dest: str, st: Stat | None, new: bytes) -> Diff:
    old = b""
    if st is not None:
        try:
            old = ctx.conn.get(dest)
        except FileNotFoundError:
            old = b""
    if max(len(old), len(new)) > DIFF_LIMIT or b"\0" in old + new:
        return Diff(f"--- {dest}\n+++ {dest}\n(binary or large file differs)\n")
    lines = difflib.unified_diff(
        old.decode("utf-8", "replace").splitlines(keepends=True),
        new.decode("utf-8", "replace").splitlines(keepends=True),
        fromfile=f"{dest} (host)" if st else "/dev/null",
        tofile=f"{dest} (wanted)",
    )
    return Diff("".join(lines))


def put_content(ctx: OpContext, dest: str, data: bytes, args: dict) -> OpGen:
    """Shared by copy and template: write ``data`` to ``dest`` only if it differs."""
    mode = parse_mode(args.get("mode"))
    owner, group = args.get("owner"), args.get("group")
    st = stat_path(ctx, dest, with_hash=True)
    if st is not None and st.is_link:
        # Replaced, not followed (Ansible's follow: no): a unit masked with a
        # link to /dev/null gets a real unit file instead of writing /dev/null.
        if ctx.diff:
            yield Diff(f"--- {dest} (link to {st.link})\n+++ {dest} (wanted, {len(data)} bytes)\n")
        yield Upload(dest, data, mode if mode is not None else 0o644)
        if dest.startswith(SYSTEMD_DIRS):
            ctx.state.unit_files_changed = True
        if owner or group:
            yield from fix_attrs(dest, None, None, owner, group)
        return
    if st is not None and not st.is_file:
        raise OpError(f"{dest} exists and is a {st.kind}, not a regular file")
    if st is not None and st.sha256 == hashlib.sha256(data).hexdigest():
        yield from fix_attrs(dest, st, mode, owner, group)
        return
    if ctx.diff:
        yield _diff(ctx, dest, st, data)
    keep_mode = mode if mode is not None else (st.mode if st else 0o644)
    yield Upload(dest, data, keep_mode)
    if dest.startswith(SYSTEMD_DIRS):
        ctx.state.unit_files_changed = True
    # The upload made a file owned by the connection user; only then fix owners.
    if owner or group:
        yield from fix_attrs(dest, None, None, owner, group)


COPY_ARGS = {"src", "content", "dest", "mode", "owner", "group"}


def op_copy(ctx: OpContext, args: dict) -> OpGen:
    check_args("copy", args, COPY_ARGS, {"dest"})
    dest = str(args["dest"])
    if "content" in args:
        content = args["content"]
        data = content.encode() if isinstance(content, str) else bytes(content)
        yield from put_content(ctx, dest, data, args)
        return
    if not args.get("src"):
        raise OpError("copy: needs src or content")
    src = ctx.find(str(args["src"]), "files")
    if os.path.isdir(src):
        yield from _copy_tree(ctx, src, dest, args)
        return
    try:
        with open(src, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise OpError(f"copy: cannot read {src}: {exc.strerror}") from None
    yield from put_content(ctx, dest, data, args)


def _copy_tree(ctx: OpContext, src: str, dest: str, args: dict) -> OpGen:
    """Mirror a local directory's files into ``dest`` (extra remote files are kept).

    One hash listing of the remote tree, then uploads of only the files that
    differ: copying a wheelhouse twice costs one round trip.
    """
    mode = parse_mode(args.get("mode"))
    local: dict[str, str] = {}
    for root, _dirs, files in os.walk(src):
        for name in files:
            full = os.path.join(root, name)
            local[os.path.relpath(full, src)] = full
    res = ctx.fact(
        f"cd {q(dest)} 2>/dev/null && find . -type f -exec sha256sum {{}} + || true", timeout=120
    )
    remote: dict[str, str] = {}
    for line in res.stdout.splitlines():
        digest, _, rel = line.partition("  ")
        remote[os.path.normpath(rel)] = digest
    for rel in sorted(local):
        if remote.get(rel) == _local_sha256(local[rel]):
            continue
        if ctx.diff:
            size = os.path.getsize(local[rel])
            yield Diff(f"+++ {os.path.join(dest, rel)} ({size} bytes)\n")
        file_mode = mode if mode is not None else (os.stat(local[rel]).st_mode & 0o777)
        # Streamed from disk: a wheelhouse is tens of MB, times every host.
        yield Upload(os.path.join(dest, rel), mode=file_mode, src=local[rel])


_DIGESTS: dict[tuple[str, int, int], str] = {}
_DIGESTS_LOCK = threading.Lock()


def _local_sha256(path: str) -> str:
    """sha256 of a control-machine file, computed once per (path, mtime, size)."""
    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size)
    with _DIGESTS_LOCK:
        if key in _DIGESTS:
            return _DIGESTS[key]
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    with _DIGESTS_LOCK:
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


TEMPLATE_ARGS = {"src", "dest", "mode", "owner", "group"}


def op_template(ctx: OpContext, args: dict) -> OpGen:
    check_args("template", args, TEMPLATE_ARGS, {"src", "dest"})
    src = str(args["src"])
    search = [os.path.join(base, "templates") for base in ctx.search_path] + list(ctx.search_path)
    text = render_file(src, [p for p in search if os.path.isdir(p)], ctx.vars)
    yield from put_content(ctx, str(args["dest"]), text.encode(), args)
