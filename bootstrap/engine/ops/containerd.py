"""containerd_image: import the OCI archives of a directory that containerd lacks.

The fact is one command: every ``*.tar`` in ``dir`` with its ``index.json``
(read with tar, nothing extracted), then containerd's image list
(``ctr images ls``: name and target digest). An archive is present when every
manifest it names is in containerd under that name with that digest (a
manifest without a name: its digest under any name). Only missing archives
are imported, so a second run changes nothing; a rebuilt archive with new
content has new digests and is imported again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from bootstrap.engine.ops.base import Command, Diff, OpContext, OpError, OpGen, check_args, q

CONTAINERD_IMAGE_ARGS = {"dir", "namespace", "address", "timeout"}
# containerd's import takes the image name from this annotation (see bootstrap.images.oci).
NAME_ANNOTATION = "io.containerd.image.name"
_SEP = "--- images ---"


@dataclass(frozen=True)
class Archive:
    path: str
    wanted: tuple[tuple[str | None, str], ...]  # (name or None, manifest digest)


class ImagesFact:
    """Archives in a directory and the images containerd has, in one command."""

    @staticmethod
    def command(directory: str, ctr: str) -> str:
        return (
            f"for f in {q(directory)}/*.tar; do [ -f \"$f\" ] || continue; "
            "printf '%s\\t' \"$f\"; tar -xOf \"$f\" index.json 2>/dev/null | tr -d '\\n'; echo; done; "
            f"echo {q(_SEP)}; {ctr} images ls"
        )

    @staticmethod
    def parse(stdout: str) -> tuple[list[Archive], set[tuple[str, str]], bool]:
        """(archives, {(name, digest)} present, whether the image list was read)."""
        head, sep, tail = stdout.partition(_SEP)
        archives = []
        for line in head.splitlines():
            if not line.strip():
                continue
            path, _, raw = line.partition("\t")
            try:
                index = json.loads(raw)
                manifests = index["manifests"]
            except (ValueError, KeyError, TypeError):
                raise OpError(f"{path} is not an OCI image archive (no readable index.json)",
                              hint="remove it from the images directory or rebuild it") from None
            archives.append(Archive(path, tuple(
                ((m.get("annotations") or {}).get(NAME_ANNOTATION), m["digest"]) for m in manifests)))
        present = set()
        lines = tail.strip().splitlines()
        listed = bool(lines) and lines[0].split()[:1] == ["REF"]
        for line in lines[1:] if listed else []:
            fields = line.split()
            if len(fields) >= 3:
                present.add((fields[0], fields[2]))
        return archives, present, listed


def missing(archives: list[Archive], present: set[tuple[str, str]]) -> list[Archive]:
    digests = {d for _, d in present}
    return [a for a in archives
            if not all(((n, d) in present) if n else (d in digests) for n, d in a.wanted)]


def op_containerd_image(ctx: OpContext, args: dict) -> OpGen:
    check_args("containerd_image", args, CONTAINERD_IMAGE_ARGS, {"dir"})
    directory = str(args["dir"]).rstrip("/") or "/"
    ctr = f"ctr --address {q(args.get('address') or '/run/containerd/containerd.sock')}" \
          f" --namespace {q(args.get('namespace') or 'k8s.io')}"
    res = ctx.fact(ImagesFact.command(directory, ctr))
    archives, present, listed = ImagesFact.parse(res.stdout)
    if not listed and not ctx.dry_run:
        raise OpError(f"cannot list containerd's images: {res.stderr.strip()[-300:]}",
                      hint="is containerd running? (systemctl status containerd)")
    todo = missing(archives, present)
    if ctx.diff and todo:
        yield Diff("".join(f"+image {n or d} from {a.path}\n" for a in todo for n, d in a.wanted))
    for a in todo:
        # --no-unpack is not given: the CRI runs containers only from unpacked snapshots.
        yield Command(f"{ctr} images import -- {q(a.path)}",
                      timeout=float(args.get("timeout") or 600))
    ctx.out["imported"] = [a.path for a in todo]
