"""containerd_image: archives in, imports out only for what containerd lacks."""

from __future__ import annotations

import json

import pytest

from bootstrap.engine.ops import HostState, OpContext, OpError
from bootstrap.engine.ops.base import Command, Diff
from bootstrap.engine.ops.containerd import op_containerd_image
from bootstrap.remote import Result
from bootstrap.remote.fake import FakeConnection

LS_HEADER = "REF TYPE DIGEST SIZE PLATFORMS LABELS\n"
BUSY = ("docker.io/library/busybox:1.35", "sha256:aaa")
PAUSE = ("registry.k8s.io/pause:3.9", "sha256:bbb")


def _index(*named: tuple[str | None, str]) -> str:
    return json.dumps({"schemaVersion": 2, "manifests": [
        {"digest": d, "annotations": {"io.containerd.image.name": n} if n else {}}
        for n, d in named]})


def _fact(archives: dict[str, str], images: list[tuple[str, str]], listed=True) -> Result:
    head = "".join(f"{path}\t{index}\n" for path, index in archives.items())
    tail = (LS_HEADER + "".join(f"{n} application/x {d} 1MiB linux/amd64 -\n" for n, d in images)
            if listed else "")
    return Result(0 if listed else 1, head + "--- images ---\n" + tail,
                  "" if listed else "ctr: failed to dial")


def _run(fact: Result, dry_run=False, diff=False):
    conn = FakeConnection("h", {r"for f in": fact})
    ctx = OpContext(host="h", conn=conn, vars={}, state=HostState(), search_path=[],
                    diff=diff, dry_run=dry_run)
    gen, out, send = op_containerd_image(ctx, {"dir": "/img"}), [], None
    while True:
        try:
            action = gen.send(send)
        except StopIteration:
            return out, ctx.out
        out.append(action)
        send = Result(0, "", "") if isinstance(action, Command) else None


ARCHIVES = {"/img/busybox-1.35.tar": _index(BUSY), "/img/pause-3.9.tar": _index(PAUSE)}


def test_imports_only_missing_archives():
    acts, out = _run(_fact(ARCHIVES, [BUSY]))
    assert [a.cmd for a in acts] == [
        "ctr --address /run/containerd/containerd.sock --namespace k8s.io images import"
        " -- /img/pause-3.9.tar"]
    assert out["imported"] == ["/img/pause-3.9.tar"]


def test_all_present_is_no_change():
    acts, _ = _run(_fact(ARCHIVES, [BUSY, PAUSE, ("sha256:cfg", "sha256:aaa")]))
    assert acts == []


def test_same_name_other_digest_is_imported_again():
    acts, _ = _run(_fact(ARCHIVES, [(BUSY[0], "sha256:old"), PAUSE]))
    assert [a.cmd.rsplit(" ", 1)[1] for a in acts] == ["/img/busybox-1.35.tar"]


def test_unnamed_manifest_matches_by_digest():
    archives = {"/img/x.tar": _index((None, "sha256:ccc"))}
    assert _run(_fact(archives, [("some/name:1", "sha256:ccc")]))[0] == []
    assert len(_run(_fact(archives, [BUSY]))[0]) == 1


def test_empty_dir_is_no_change():
    assert _run(_fact({}, []))[0] == []


def test_not_an_archive_is_an_error():
    with pytest.raises(OpError, match="not an OCI image archive"):
        _run(_fact({"/img/junk.tar": ""}, []))


def test_containerd_down_is_an_error_but_dry_run_shows_the_imports():
    with pytest.raises(OpError, match="is containerd running"):
        _run(_fact(ARCHIVES, [], listed=False))
    acts, _ = _run(_fact(ARCHIVES, [], listed=False), dry_run=True, diff=True)
    assert isinstance(acts[0], Diff) and "+image docker.io/library/busybox:1.35" in acts[0].text
    assert len([a for a in acts if isinstance(a, Command)]) == 2
