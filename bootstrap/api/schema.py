"""Upstream Kubernetes schemas (from kubernetes-validate) and validation against them.

The package ships the OpenAPI definitions of each release converted to JSON
schema, keeping the ``x-kubernetes-*`` extensions (patch merge keys, list
types). They are loaded once, lazily, and shared by validation, strategic
merge patch, server-side apply and the served OpenAPI documents.
"""

from __future__ import annotations

import base64
import binascii
import functools
import importlib.util
from pathlib import Path
from typing import Any

import orjson

from bootstrap.api import errors
from bootstrap.api.defaults import apply_defaults  # noqa: F401  (interface: schema.apply_defaults)

# kubectl on the machines is v1.32; serving the same release's schemas keeps
# `kubectl explain` and client-side apply metadata identical to what it expects.
SCHEMA_VERSION = "v1.32.0"

GVK = tuple[str, str, str]

_REF_PREFIX = "#/$defs/"


@functools.lru_cache(maxsize=1)
def definitions() -> dict[str, dict]:
    """All definitions by upstream name (``io.k8s.api.core.v1.Pod``), strict variant."""
    # find_spec locates the data without importing kubernetes_validate (slow imports).
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("kubernetes-validate is not installed; it provides the API schemas")
    root = Path(list(spec.submodule_search_locations)[0]) / "kubernetes-json-schema"
    path = root / f"{SCHEMA_VERSION}-local-strict" / "_definitions.json"
    defs = orjson.loads(path.read_bytes())["$defs"]
    # The converted oneOf(string|null, integer|null) rejects null (it matches both
    # branches); a plain union type keeps the meaning and gives clearer errors.
    for name, types in (("io.k8s.apimachinery.pkg.util.intstr.IntOrString", ["string", "integer", "null"]),
                        ("io.k8s.apimachinery.pkg.api.resource.Quantity", ["string", "number", "null"])):
        d = defs[name]
        d.pop("oneOf", None)
        d["type"] = types
    return defs


@functools.lru_cache(maxsize=1)
def _gvk_index() -> dict[GVK, str]:
    out: dict[GVK, str] = {}
    for name, d in definitions().items():
        gvks = d.get("x-kubernetes-group-version-kind") or []
        # Types registered in many groups (DeleteOptions, WatchEvent) are not kinds we serve.
        if len(gvks) == 1:
            g = gvks[0]
            out[(g.get("group", ""), g["version"], g["kind"])] = name
    return out


def definition_name(gvk: GVK) -> str | None:
    return _gvk_index().get(tuple(gvk))


def register_definitions(defs: dict[str, dict]) -> None:
    """Add definitions at run time (custom resources' schemas from their CRDs); a
    definition with one x-kubernetes-group-version-kind becomes that kind's schema."""
    table, index = definitions(), _gvk_index()
    for name, d in defs.items():
        table[name] = d
        gvks = d.get("x-kubernetes-group-version-kind") or []
        if len(gvks) == 1:
            g = gvks[0]
            index[(g.get("group", ""), g["version"], g["kind"])] = name


def unregister_definitions(names: list[str]) -> None:
    table, index = definitions(), _gvk_index()
    for name in names:
        table.pop(name, None)
        for gvk in [k for k, v in index.items() if v == name]:
            del index[gvk]


# id(schema node) -> (node, resolved): schema nodes live as long as the process,
# and keeping the node itself guards against a reused id.
_RESOLVED: dict[int, tuple[dict, dict | None]] = {}


def resolve(node: dict | None) -> dict | None:
    """Follow ``$ref`` (and single-element allOf) to the definition it names."""
    if node is None:
        return None
    hit = _RESOLVED.get(id(node))
    if hit is not None and hit[0] is node:
        return hit[1]
    out = _resolve(node)
    if len(_RESOLVED) < 100_000:  # bounded even if callers pass transient dicts
        _RESOLVED[id(node)] = (node, out)
    return out


def _resolve(node: dict | None) -> dict | None:
    seen = 0
    while node is not None and seen < 16:
        seen += 1
        ref = node.get("$ref")
        if ref is None and len(node.get("allOf") or ()) == 1:
            ref = node["allOf"][0].get("$ref")
        if ref is None:
            return node
        node = definitions().get(ref.rsplit("/", 1)[-1])
    return node


def root_schema(gvk: GVK) -> dict | None:
    name = definition_name(gvk)
    return definitions()[name] if name else None


def field_schema(node: dict | None, key: str) -> dict | None:
    """Schema of ``key`` inside an object schema, as written at the property (with
    the x-kubernetes-patch-* extensions, which live on the property, not the type)."""
    node = resolve(node)
    if node is None:
        return None
    props = node.get("properties")
    if props and key in props:
        return props[key]
    add = node.get("additionalProperties")
    if isinstance(add, dict):
        return add
    return None


def items_schema(node: dict | None) -> dict | None:
    node = resolve(node)
    if node is None:
        return None
    return node.get("items")


def is_type(node: dict | None, name: str) -> bool:
    node = resolve(node)
    if node is None:
        return False
    t = node.get("type")
    return t == name or (isinstance(t, list) and name in t)


# ---------------------------------------------------------------- validation
#
# A direct walk over the definitions instead of a generic JSON-schema engine: the
# schemas use a small subset (types, properties, additionalProperties, items,
# required, $ref) and this is several times faster on every write. Enums are
# documentation upstream (the server does not enforce them while decoding), so
# they are not checked here; per-kind rules live in validation.py.

_JSON_TYPES = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def _type_ok(value: Any, types: Any) -> bool:
    if types is None or value is None:
        return True  # Go decodes null into the zero value of any field
    for t in types if isinstance(types, list) else (types,):
        if t == "null":
            continue
        py = _JSON_TYPES.get(t)
        if py is None:
            return True
        if isinstance(value, bool) and t != "boolean":
            continue
        if isinstance(value, py):
            return True
    return False


_INT_RANGES = {"int32": (-2 ** 31, 2 ** 31 - 1), "int64": (-2 ** 63, 2 ** 63 - 1)}
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"


def _out_of_range(value: Any, node: dict) -> bool:
    """An integer the Go field cannot hold (replicas: 2**31) fails decoding upstream."""
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    bounds = _INT_RANGES.get(node.get("format") or "int64")
    return bounds is not None and not bounds[0] <= value <= bounds[1]


def _scalar_problem(value: Any, node: dict, ref: str | None) -> str | None:
    """Decoding errors of typed scalars: Quantity syntax and base64 []byte."""
    from bootstrap.api import quantity

    if ref == _QUANTITY or node.get("format") == "quantity":
        if not quantity.is_valid(value):
            return quantity.ERROR
    elif node.get("format") == "byte" and isinstance(value, str):
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return f"illegal base64 data at input byte {_bad_base64_offset(value)}"
    return None


def _bad_base64_offset(value: str) -> int:
    """Where Go's base64 decoder stops (the first byte outside the alphabet or bad
    padding), for its CorruptInputError message."""
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    for i, ch in enumerate(value):
        if ch == "=":
            return i if len(value) % 4 else max(i, 0)
        if ch not in alphabet:
            return i
    return len(value) - len(value) % 4


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _field_path(parts) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


def _join(base: str, key: str) -> str:
    return f"{base}.{key}" if base else key


def _ref_name(node: dict | None) -> str | None:
    if not node:
        return None
    ref = node.get("$ref")
    if ref is None and len(node.get("allOf") or ()) == 1:
        ref = node["allOf"][0].get("$ref")
    return ref.rsplit("/", 1)[-1] if ref else None


def _go_type(node: dict | None) -> str:
    """The Go type name encoding/json would report (int32, v1.PodSpec, []string, ...)."""
    name = _ref_name(node)
    if name:
        parts = name.split(".")
        return f"{parts[-2]}.{parts[-1]}" if len(parts) > 1 else name
    node = node or {}
    t = node.get("type")
    t = next((x for x in t if x != "null"), None) if isinstance(t, list) else t
    if t == "integer":
        return node.get("format") or "int"
    if t == "number":
        return "float64"
    if t == "boolean":
        return "bool"
    if t == "array":
        return "[]" + _go_type(node.get("items"))
    if t == "object" and isinstance(node.get("additionalProperties"), dict):
        return "map[string]" + _go_type(node["additionalProperties"])
    return t or "interface {}"


class _Walk:
    __slots__ = ("unknown", "type_errors", "required")

    def __init__(self):
        self.unknown: list[str] = []
        self.type_errors: list[str] = []
        self.required: list[errors.FieldError] = []

    def value(self, value: Any, prop: dict | None, path: str, owner: str, go_path: str) -> None:
        node = resolve(prop)
        if node is None or value is None:
            return
        mismatch = not _type_ok(value, node.get("type"))
        if mismatch or _out_of_range(value, node):
            # encoding/json's UnmarshalTypeError, which upstream returns verbatim; a
            # number too big for its field is reported with its digits.
            what = _json_type(value) if mismatch else f"number {value}"
            self.type_errors.append(f"json: cannot unmarshal {what} into Go struct field "
                                    f"{owner}.{go_path} of type {_go_type(prop)}")
            return
        problem = _scalar_problem(value, node, _ref_name(prop))
        if problem:
            self.type_errors.append(problem)
            return
        if isinstance(value, dict):
            props = node.get("properties")
            add = node.get("additionalProperties")
            inner = (_ref_name(prop) or owner).rsplit(".", 1)[-1] if props else owner
            for r in node.get("required") or ():
                if r not in value:
                    self.required.append(errors.required(_join(path, r)))
            for k, v in value.items():
                if props is not None and k in props:
                    self.value(v, props[k], _join(path, k), inner, _join(go_path, k))
                elif isinstance(add, dict):
                    self.value(v, add, _join(path, k), owner, go_path)
                elif add is False:
                    self.unknown.append(_join(path, k))
        elif isinstance(value, list):
            items = node.get("items")
            if items is not None:
                for i, v in enumerate(value):
                    self.value(v, items, f"{path}[{i}]", owner, go_path)


def check_schema(obj: dict, gvk: GVK) -> tuple[list[str], list[str], list[errors.FieldError]]:
    """Return (unknown fields, type errors, required-field errors) without raising."""
    root = root_schema(gvk)
    if root is None:
        return [], [], []
    w = _Walk()
    w.value(obj, root, "", gvk[2], "")
    return sorted(set(w.unknown)), w.type_errors, w.required


def decode(obj: dict, gvk: GVK, *, mode: str = "Strict") -> list[str]:
    """The apiserver's decoding step, before any defaulting; returns warnings.

    Type mismatches are decoding errors (400, as encoding/json reports them), so
    nothing downstream (defaults, strategies) ever sees a list where it expects an
    object. Unknown fields fail the request only with fieldValidation=Strict (400
    "strict decoding error"), become warnings with Warn and are dropped silently
    with Ignore.
    """
    kind, version = gvk[2], gvk[1]
    unknown, type_errors, _ = check_schema(obj, gvk)
    warnings: list[str] = []
    prefix = f'{kind} in version "{version}" cannot be handled as a {kind}: '
    if type_errors:
        # Go's decoder stops at the first mismatch; report just that one.
        raise errors.bad_request(prefix + type_errors[0])
    zero_nulls(obj, root_schema(gvk))
    if unknown:
        if mode == "Strict":
            raise errors.bad_request(prefix + "strict decoding error: "
                                     + ", ".join(f'unknown field "{u}"' for u in unknown))
        if mode == "Warn":
            warnings.extend(f'unknown field "{u}"' for u in unknown)
        prune_unknown(obj, gvk)
    return warnings


def validate_object(obj: dict, gvk: GVK) -> None:
    """Validation after defaulting: required fields and the per-kind semantic checks
    (validation.py); raises 422 Invalid."""
    from bootstrap.api import validation, validation_kinds  # local: they import schema

    group, _, kind = gvk
    if kind in validation.VIRTUAL_KINDS:
        # Review and token requests are computed, never stored; their handlers fill
        # what upstream defaults (e.g. TokenRequest audiences) before acting.
        required = []
    else:
        required = check_schema(obj, gvk)[2]
    # The schema's required list and the per-kind checks can flag the same field.
    causes = list(dict.fromkeys(required + validation_kinds.validate_object(obj, gvk)))
    if causes:
        name = obj.get("metadata", {}).get("name") or obj.get("metadata", {}).get("generateName", "")
        raise errors.invalid(kind, name, causes, group)


def validate(obj: dict, gvk: GVK, *, mode: str = "Strict") -> list[str]:
    """decode() and validate_object() in one call, for an already-defaulted object."""
    warnings = decode(obj, gvk, mode=mode)
    validate_object(obj, gvk)
    return warnings


def validate_update(new: dict, old: dict, gvk: GVK) -> None:
    """Immutable-field and transition checks on update; raises 422 Invalid."""
    from bootstrap.api import validation_kinds  # local: it imports this module

    causes = validation_kinds.validate_update(new, old, gvk)
    if causes:
        raise errors.invalid(gvk[2], new.get("metadata", {}).get("name", ""), causes, gvk[0])


_ZERO = {"string": "", "integer": 0, "number": 0, "boolean": False, "array": None,
         "object": None}


def _zero(node: dict | None):
    node = resolve(node)
    t = (node or {}).get("type")
    t = next((x for x in t if x != "null"), None) if isinstance(t, list) else t
    if t == "object" or (node or {}).get("properties"):
        return {}
    return _ZERO.get(t)


def zero_nulls(value: Any, node: dict | None) -> None:
    """What Go's decoder makes of JSON null: an absent field, and the zero value of
    the element type inside lists and maps ([null] of structs is [{}]), so model
    code downstream never meets a None where the schema promises a value."""
    node = resolve(node)
    if node is None:
        return
    if isinstance(value, dict):
        props = node.get("properties") or {}
        add = node.get("additionalProperties")
        for k in list(value):
            sub = props.get(k) if k in props else (add if isinstance(add, dict) else None)
            if value[k] is None:
                if k in props:
                    del value[k]
                elif sub is not None:
                    zero = _zero(sub)
                    if zero is None:
                        del value[k]
                    else:
                        value[k] = zero
            elif sub is not None:
                zero_nulls(value[k], sub)
    elif isinstance(value, list):
        items = node.get("items")
        if items is None:
            return
        for i, v in enumerate(value):
            if v is None:
                zero = _zero(items)
                value[i] = zero if zero is not None else v
            else:
                zero_nulls(v, items)


def prune_unknown(obj: Any, gvk_or_node: Any) -> None:
    """Drop fields the schema does not declare (what the decoder does when not Strict)."""
    node = root_schema(gvk_or_node) if isinstance(gvk_or_node, tuple) else gvk_or_node
    _prune(obj, node)


def _prune(value: Any, node: dict | None) -> None:
    node = resolve(node)
    if node is None:
        return
    if isinstance(value, dict):
        props = node.get("properties")
        add = node.get("additionalProperties")
        if props is not None and add is False:
            for k in [k for k in value if k not in props]:
                del value[k]
        for k, v in value.items():
            if props and k in props:
                _prune(v, props[k])
            elif isinstance(add, dict):
                _prune(v, add)
    elif isinstance(value, list):
        items = node.get("items")
        if items:
            for v in value:
                _prune(v, items)
