"""Plain OCI image archives (image-layout in a tar), written from Python, no network.

Everything is deterministic (fixed mtimes, sorted entries, uid/gid 0, gzip
without a timestamp): the same inputs give the same digests, so a rebuilt
archive is byte-identical and importing it again changes nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
# containerd's import names the image from this annotation (a full reference);
# the OCI one carries only the tag, as the image-spec defines it.
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
EPOCH = 0  # mtime of every entry; "created" is left out of the config for the same reason


@dataclass(frozen=True)
class Entry:
    """One layer entry: a file (``src`` on this machine or ``data``), a dir or a symlink."""

    path: str  # inside the image, without a leading slash
    kind: str = "file"  # file | dir | symlink
    mode: int = 0o644
    src: str | None = None
    data: bytes | None = None
    target: str = ""  # symlink target


@dataclass(frozen=True)
class ImageSpec:
    """An image to build: its reference, layer entries and runtime config."""

    ref: str  # full reference, e.g. docker.io/library/busybox:1.35
    entries: tuple[Entry, ...]
    cmd: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    env: tuple[str, ...] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    working_dir: str = ""
    user: str = ""
    stop_signal: str = ""
    labels: dict[str, str] = field(default_factory=dict)


def tag_of(ref: str) -> str:
    name = ref.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(entries: tuple[Entry, ...]) -> bytes:
    """The uncompressed layer tar (its digest is the config's diff_id)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = set()
        for e in entries:  # parents first, as a real filesystem walk would give them
            parts = e.path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        explicit = {e.path for e in entries if e.kind == "dir"}
        all_entries = [Entry(d, "dir", 0o755) for d in dirs - explicit] + list(entries)
        for e in sorted(all_entries, key=lambda x: x.path):
            info = tarfile.TarInfo(e.path)
            info.mtime, info.uid, info.gid, info.uname, info.gname = EPOCH, 0, 0, "root", "root"
            info.mode = e.mode
            payload = None
            if e.kind == "dir":
                info.type = tarfile.DIRTYPE
            elif e.kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, e.target
            elif e.kind == "file":
                payload = e.data if e.data is not None else Path(e.src or "").read_bytes()
                info.size = len(payload)
            else:
                raise ValueError(f"unknown entry kind {e.kind!r} for {e.path}")
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return buf.getvalue()


def _json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _goarch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
            "s390x": "s390x"}.get(machine, machine)


def blobs(spec: ImageSpec) -> tuple[dict, dict[str, bytes]]:
    """(index.json object, digest -> blob) for ``spec``."""
    raw = layer_tar(spec.entries)
    layer = gzip.compress(raw, compresslevel=6, mtime=0)
    config: dict = {"Env": list(spec.env)}
    for key, value in (("Cmd", list(spec.cmd)), ("Entrypoint", list(spec.entrypoint)),
                       ("WorkingDir", spec.working_dir), ("User", spec.user),
                       ("StopSignal", spec.stop_signal), ("Labels", dict(spec.labels))):
        if value:
            config[key] = value
    config_blob = _json({
        "architecture": _goarch(), "os": "linux", "config": config,
        "rootfs": {"type": "layers", "diff_ids": [_digest(raw)]},
        "history": [{"created_by": "bootstrap image build", "comment": spec.ref}],
    })
    manifest_blob = _json({
        "schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": _digest(config_blob),
                   "size": len(config_blob)},
        "layers": [{"mediaType": MEDIA_LAYER, "digest": _digest(layer), "size": len(layer)}],
    })
    index = {
        "schemaVersion": 2, "mediaType": MEDIA_INDEX,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST, "digest": _digest(manifest_blob),
            "size": len(manifest_blob),
            "platform": {"architecture": _goarch(), "os": "linux"},
            "annotations": {ANNOTATION_CONTAINERD_NAME: spec.ref,
                            ANNOTATION_REF_NAME: tag_of(spec.ref)},
        }],
    }
    return index, {_digest(b): b for b in (layer, config_blob, manifest_blob)}


def write_archive(spec: ImageSpec, dest: Path) -> Path:
    """Write the OCI image-layout tar for ``spec`` to ``dest`` (atomically)."""
    index, contents = blobs(spec)
    files = {"oci-layout": _json({"imageLayoutVersion": "1.0.0"}), "index.json": _json(index)}
    files.update({f"blobs/sha256/{d.split(':', 1)[1]}": b for d, b in contents.items()})
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
            tar.addfile(info)
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, EPOCH
            tar.addfile(info, io.BytesIO(files[name]))
    os.replace(tmp, dest)
    return dest


def read_index(archive: Path) -> dict:
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        if member is None:
            raise ValueError(f"{archive}: no index.json")
        return json.load(member)


def archive_refs(index: dict) -> list[str]:
    """Image references an archive's index.json names (what an import creates)."""
    return [m["annotations"][ANNOTATION_CONTAINERD_NAME] for m in index.get("manifests", [])
            if ANNOTATION_CONTAINERD_NAME in m.get("annotations", {})]
