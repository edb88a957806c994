"""Template hashes and ControllerRevisions (upstream's controller.ComputeHash and
pkg/controller/history), shared by the Deployment, DaemonSet and StatefulSet
controllers.

Upstream hashes the Go struct as printed by spew; we hash the template's
canonical JSON (sorted keys) the same way otherwise: FNV-1a 32 bits, the
collision count appended little-endian, the decimal digest spelled in the
vowel-free alphabet of ``rand.SafeEncodeString``. Names therefore have
upstream's shape (``web-6d8f9c7b5``) but not upstream's exact digits.
"""

from __future__ import annotations

import copy

import orjson

CONTROLLER_REVISIONS = ("apps", "v1", "controllerrevisions")
CONTROLLER_REVISION_HASH = "controller-revision-hash"
_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def fnv32a(data: bytes) -> int:
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    return "".join(_ALPHANUMS[b % len(_ALPHANUMS)] for b in text.encode())


def compute_hash(obj: dict, collision_count: int | None = None) -> str:
    data = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    if collision_count:
        data += int(collision_count).to_bytes(4, "little")
    return safe_encode(str(fnv32a(data)))


def template_hash(template: dict, collision_count: int | None = None,
                  drop_label: str | None = None) -> str:
    """ComputeHash over a pod template, ignoring the hash label itself."""
    if drop_label and drop_label in ((template.get("metadata") or {}).get("labels") or {}):
        template = copy.deepcopy(template)
        template["metadata"]["labels"].pop(drop_label)
    return compute_hash(template, collision_count)


def revision_data(template: dict) -> dict:
    """A ControllerRevision's data: the patch that restores this template
    (upstream's getPatch for DaemonSets and StatefulSets)."""
    return {"spec": {"template": {**copy.deepcopy(template), "$patch": "replace"}}}


def template_of(revision: dict) -> dict:
    """The pod template stored in a ControllerRevision's data."""
    tmpl = copy.deepcopy(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    tmpl.pop("$patch", None)
    return tmpl


def new_revision(owner: dict, api_version: str, kind: str, template: dict, number: int,
                 collision_count: int | None, labels: dict | None = None) -> dict:
    data = revision_data(template)
    digest = compute_hash(data, collision_count)
    meta = owner["metadata"]
    return {
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {
            "name": f"{meta['name']}-{digest}", "namespace": meta.get("namespace"),
            "labels": {**(labels or {}), CONTROLLER_REVISION_HASH: digest},
            "ownerReferences": [{"apiVersion": api_version, "kind": kind, "name": meta["name"],
                                 "uid": meta["uid"], "controller": True,
                                 "blockOwnerDeletion": True}],
        },
        "data": data,
        "revision": number,
    }


def revision_hash(revision: dict) -> str:
    labels = (revision.get("metadata") or {}).get("labels") or {}
    return labels.get(CONTROLLER_REVISION_HASH) or revision["metadata"]["name"].rsplit("-", 1)[-1]


def same_template(revision: dict, template: dict) -> bool:
    return ((revision.get("data") or {}).get("spec") or {}).get("template") == \
        revision_data(template)["spec"]["template"]


def sorted_revisions(revisions: list[dict]) -> list[dict]:
    return sorted(revisions, key=lambda r: (int(r.get("revision") or 0),
                                            r["metadata"].get("name", "")))


def next_revision_number(revisions: list[dict]) -> int:
    return max((int(r.get("revision") or 0) for r in revisions), default=0) + 1
