"""Field sets and their FieldsV1 encoding (sigs.k8s.io/structured-merge-diff's
model, as stored in metadata.managedFields).

A path is a tuple of elements: ``("f", name)`` a map field, ``("k", '{"name":"c"}')``
a keyed list item, ``("v", '"x"')`` a set member, ``("i", 3)`` a positional item.
"""

from __future__ import annotations

from typing import Any

import orjson

from bootstrap.api import schema

Path = tuple
# Metadata fields the server owns; never tracked (upstream strips them before SMD).
TRACKED_METADATA = ("labels", "annotations", "finalizers", "ownerReferences")
_UNTRACKED_ROOT = ("apiVersion", "kind")


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def list_info(prop: dict | None) -> tuple[str, list[str]]:
    """("map", keys) | ("set", []) | ("atomic", []) from the property schema."""
    if prop is None:
        return "atomic", []
    lt = prop.get("x-kubernetes-list-type")
    keys = prop.get("x-kubernetes-list-map-keys") or []
    if lt == "map" and keys:
        return "map", list(keys)
    if lt == "set":
        return "set", []
    mk = prop.get("x-kubernetes-patch-merge-key")
    if lt is None and mk and "merge" in (prop.get("x-kubernetes-patch-strategy") or ""):
        return "map", [mk]
    return "atomic", []


def item_key(item: dict, keys: list[str]) -> str:
    ident = {}
    for k in keys:
        if k in item:
            ident[k] = item[k]
        elif k == "protocol":
            # Port lists key on protocol, which defaults to TCP before SMD sees it.
            ident[k] = "TCP"
    return _json(ident)


def _is_atomic_map(node: dict | None) -> bool:
    node = schema.resolve(node)
    if node is None:
        return False
    if node.get("x-kubernetes-map-type") == "atomic":
        return True
    # Opaque objects (RawExtension, FieldsV1) carry no structure to track inside.
    return not node.get("properties") and not isinstance(node.get("additionalProperties"), dict)


def _is_granular_map(node: dict | None) -> bool:
    node = schema.resolve(node)
    return node is not None and isinstance(node.get("additionalProperties"), dict)


def field_set(obj: dict, gvk, *, with_maps: bool = False, reset: tuple[str, ...] = ()) -> set[Path]:
    """Paths set in ``obj``. Leaves, keyed list items and set members are always
    members; with_maps adds granular maps (labels, data) as members too, which is
    what the server records for Update operations."""
    out: set[Path] = set()
    root = schema.root_schema(tuple(gvk)) if gvk else None
    for k, v in (obj or {}).items():
        if k in _UNTRACKED_ROOT or k in reset or v is None:
            continue
        prop = schema.field_schema(root, k)
        if k == "metadata":
            if not isinstance(v, dict):
                continue
            for mk in TRACKED_METADATA:
                if v.get(mk) is not None:
                    _walk(v[mk], schema.field_schema(prop, mk), (("f", "metadata"), ("f", mk)), out, with_maps)
            continue
        _walk(v, prop, (("f", k),), out, with_maps, k in (schema.resolve(root) or {}).get("required", ()))
    return out


def _walk(value: Any, prop: dict | None, path: Path, out: set[Path], with_maps: bool,
          required: bool = False) -> None:
    if isinstance(value, dict):
        if not value or (prop is not None and _is_atomic_map(prop)):
            out.add(path)
            return
        if with_maps and _is_granular_map(prop):
            out.add(path)
        node = schema.resolve(prop)
        req = set((node or {}).get("required") or ())
        for k, v in value.items():
            if v is None:
                continue
            _walk(v, schema.field_schema(prop, k), path + (("f", k),), out, with_maps, k in req)
        return
    if isinstance(value, list):
        kind, keys = list_info(prop)
        if kind == "atomic" or not value:
            out.add(path)
            return
        if with_maps and not required:
            # An Update that adds an optional list owns the list itself too ('.' in
            # FieldsV1); required lists exist (as null) in the zero object upstream.
            out.add(path)
        items = schema.items_schema(prop)
        for item in value:
            if kind == "set":
                out.add(path + (("v", _json(item)),))
            elif isinstance(item, dict):
                ipath = path + (("k", item_key(item, keys)),)
                out.add(ipath)
                ireq = set((schema.resolve(items) or {}).get("required") or ())
                for k, v in item.items():
                    if v is not None:
                        _walk(v, schema.field_schema(items, k), ipath + (("f", k),), out, with_maps,
                              k in ireq)
        return
    out.add(path)


# ------------------------------------------------------------- value access

_ABSENT = object()


def value_at(obj: Any, path: Path, gvk_root: dict | None = None) -> Any:
    """Value at ``path`` or _ABSENT; list items are located by key or value."""
    cur = obj
    for kind, ident in path:
        if kind == "f":
            if not isinstance(cur, dict) or ident not in cur or cur[ident] is None:
                return _ABSENT
            cur = cur[ident]
        elif kind == "k":
            if not isinstance(cur, list):
                return _ABSENT
            want = orjson.loads(ident)
            keys = list(want)
            found = _ABSENT
            for item in cur:
                if isinstance(item, dict) and orjson.loads(item_key(item, keys)) == want:
                    found = item
                    break
            if found is _ABSENT:
                return _ABSENT
            cur = found
        elif kind == "v":
            if not isinstance(cur, list):
                return _ABSENT
            want = orjson.loads(ident)
            if want not in cur:
                return _ABSENT
            cur = want
        elif kind == "i":
            if not isinstance(cur, list) or ident >= len(cur):
                return _ABSENT
            cur = cur[ident]
    return cur


def absent(value: Any) -> bool:
    return value is _ABSENT


def remove_path(obj: Any, path: Path) -> None:
    """Delete the value at ``path`` (a field, a keyed item or a set member)."""
    if not path:
        return
    parent = value_at(obj, path[:-1])
    if absent(parent):
        return
    kind, ident = path[-1]
    if kind == "f" and isinstance(parent, dict):
        parent.pop(ident, None)
    elif kind == "k" and isinstance(parent, list):
        want = orjson.loads(ident)
        keys = list(want)
        parent[:] = [i for i in parent
                     if not (isinstance(i, dict) and orjson.loads(item_key(i, keys)) == want)]
    elif kind == "v" and isinstance(parent, list):
        want = orjson.loads(ident)
        parent[:] = [i for i in parent if i != want]
    elif kind == "i" and isinstance(parent, list) and ident < len(parent):
        del parent[ident]


# ----------------------------------------------------------------- encoding

def _elem_str(kind: str, ident: Any) -> str:
    return f"{kind}:{ident}"


def to_fields_v1(paths: set[Path]) -> dict:
    tree: dict = {}
    members: set[Path] = set(paths)
    for p in paths:
        node = tree
        for kind, ident in p:
            node = node.setdefault(_elem_str(kind, ident), {})
    return _emit(tree, (), members)


def _emit(tree: dict, prefix: Path, members: set[Path]) -> dict:
    out: dict = {}
    for key in sorted(tree):
        kind, _, ident = key.partition(":")
        elem = (kind, int(ident) if kind == "i" else ident)
        path = prefix + (elem,)
        children = _emit(tree[key], path, members)
        if children and path in members:
            out[key] = {".": {}, **children}
        else:
            out[key] = children
    return out


def from_fields_v1(fields: dict | None) -> set[Path]:
    out: set[Path] = set()
    _parse(fields or {}, (), out)
    return out


def _parse(node: dict, prefix: Path, out: set[Path]) -> None:
    for key, sub in node.items():
        if key == ".":
            out.add(prefix)
            continue
        kind, _, ident = key.partition(":")
        elem = (kind, int(ident) if kind == "i" else ident)
        path = prefix + (elem,)
        if not sub:
            out.add(path)
        else:
            _parse(sub, path, out)


def path_string(path: Path) -> str:
    """SMD's Path.String(): .spec.containers[name="c"].image, [="x"] for sets."""
    s = ""
    for kind, ident in path:
        if kind == "f":
            s += "." + ident
        elif kind == "k":
            parts = [f"{k}={_json(v)}" for k, v in orjson.loads(ident).items()]
            s += "[" + ",".join(parts) + "]"
        elif kind == "v":
            s += f"[={ident}]"
        else:
            s += f"[{ident}]"
    return s
