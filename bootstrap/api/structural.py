"""Structural schemas of CustomResourceDefinitions: checking the schema itself, and
validating, defaulting and pruning custom objects against it.

The subset upstream's apiextensions-apiserver accepts (pkg/apiserver/schema): every
node names its ``type`` unless ``x-kubernetes-int-or-string`` or
``x-kubernetes-preserve-unknown-fields`` says otherwise; no ``$ref``,
``definitions``, ``dependencies``, ``patternProperties``, ``additionalItems`` or
``uniqueItems: true``. Messages follow kube-openapi's validator as upstream reports
them ("spec.x in body must be of type integer: \"string\"").
"""

from __future__ import annotations

import copy
import datetime
import ipaddress
import re
import uuid
from typing import Any

from bootstrap.api import cel_rules
from bootstrap.api.errors import (
    FieldError,
    forbidden_field,
    invalid_value,
    not_supported,
    required,
    type_invalid,
)

TYPES = ("object", "array", "string", "integer", "number", "boolean")
_FORBIDDEN_KEYS = ("$ref", "definitions", "dependencies", "patternProperties",
                   "additionalItems", "id", "$schema")
_EMBEDDED_KEEP = ("apiVersion", "kind", "metadata")


# -- the schema itself --------------------------------------------------------------

def check_schema(node: Any, path: str, *, root: bool = True) -> list[FieldError]:
    """Structural-schema errors of an openAPIV3Schema (the CRD's own validation)."""
    out: list[FieldError] = []
    _check(node, path, out, root)
    return out


def _check(node: Any, path: str, out: list[FieldError], root: bool) -> None:
    if not isinstance(node, dict):
        out.append(invalid_value(path, node, "must be an object"))
        return
    for key in _FORBIDDEN_KEYS:
        if key in node:
            out.append(forbidden_field(f"{path}.{key}", f"{key} is forbidden in a "
                                       "structural schema"))
    if node.get("uniqueItems") is True:
        out.append(forbidden_field(f"{path}.uniqueItems", "uniqueItems cannot be set to true "
                                   "since the runtime complexity becomes quadratic"))
    if cel_rules.KEY in node:
        out += cel_rules.compile_errors(node[cel_rules.KEY], f"{path}.{cel_rules.KEY}")
    t = node.get("type")
    special = node.get("x-kubernetes-int-or-string") or node.get(
        "x-kubernetes-preserve-unknown-fields") or node.get("x-kubernetes-embedded-resource")
    if t is None:
        if not special:
            out.append(required(f"{path}.type", "must not be empty for specified object "
                                "fields" if "properties" in node else "must not be empty"))
    elif t not in TYPES:
        out.append(not_supported(f"{path}.type", t, list(TYPES)))
    if node.get("x-kubernetes-int-or-string") and t is not None:
        out.append(forbidden_field(f"{path}.type", "must be empty if "
                                   "x-kubernetes-int-or-string is true"))
    if node.get("x-kubernetes-embedded-resource") and t not in (None, "object"):
        out.append(invalid_value(f"{path}.type", t, "must be object if "
                                 "x-kubernetes-embedded-resource is true"))
    if root and t not in (None, "object"):
        out.append(invalid_value(f"{path}.type", t, "must be object at the root"))
    if "properties" in node and "additionalProperties" in node and \
            node["additionalProperties"] not in (None, False):
        out.append(forbidden_field(f"{path}.additionalProperties",
                                   "additionalProperties and properties are mutual exclusive"))
    props = node.get("properties")
    if props is not None:
        if not isinstance(props, dict):
            out.append(invalid_value(f"{path}.properties", "", "must be an object"))
        else:
            for k, v in props.items():
                if root and k == "metadata":
                    _check_root_metadata(v, f"{path}.properties[metadata]", out)
                    continue
                _check(v, f"{path}.properties[{k}]", out, False)
    ap = node.get("additionalProperties")
    if isinstance(ap, dict):
        _check(ap, f"{path}.additionalProperties", out, False)
    items = node.get("items")
    if t == "array" and items is None:
        out.append(required(f"{path}.items", "must be specified"))
    if isinstance(items, dict):
        _check(items, f"{path}.items", out, False)
    elif items is not None:
        out.append(forbidden_field(f"{path}.items", "items must be a schema object and not "
                                   "an array"))
    if "pattern" in node:
        try:
            re.compile(node["pattern"])
        except (re.error, TypeError) as exc:
            out.append(invalid_value(f"{path}.pattern", node["pattern"],
                                     f"must be a valid regular expression, but isn't: {exc}"))
    list_type = node.get("x-kubernetes-list-type")
    if list_type is not None:
        if list_type not in ("atomic", "set", "map"):
            out.append(not_supported(f"{path}.x-kubernetes-list-type", list_type,
                                     ["atomic", "set", "map"]))
        if t != "array":
            out.append(invalid_value(f"{path}.type", t, "must be array if "
                                     "x-kubernetes-list-type is specified"))
        if list_type == "map" and not node.get("x-kubernetes-list-map-keys"):
            out.append(required(f"{path}.x-kubernetes-list-map-keys",
                                "must not be empty if x-kubernetes-list-type is map"))
    map_type = node.get("x-kubernetes-map-type")
    if map_type is not None and map_type not in ("granular", "atomic"):
        out.append(not_supported(f"{path}.x-kubernetes-map-type", map_type,
                                 ["granular", "atomic"]))
    if "default" in node and root:
        out.append(forbidden_field(f"{path}.default", "must not be set at the root"))


def _check_root_metadata(node: Any, path: str, out: list[FieldError]) -> None:
    # Upstream allows the root metadata to constrain only name and generateName.
    if not isinstance(node, dict):
        out.append(invalid_value(path, node, "must be an object"))
        return
    for k in node:
        if k not in ("type", "properties", "description"):
            out.append(forbidden_field(f"{path}.{k}", "must not be specified"))
    for k in (node.get("properties") or {}):
        if k not in ("name", "generateName"):
            out.append(forbidden_field(f"{path}.properties[{k}]", "must not be specified"))


# -- defaulting and pruning ---------------------------------------------------------

def apply_defaults(obj: Any, node: dict | None) -> None:
    """Fill ``default`` for absent properties, recursively (upstream's structural
    defaulting: defaults of the new value are themselves defaulted deeper down)."""
    if node is None:
        return
    if isinstance(obj, dict):
        for k, prop in (node.get("properties") or {}).items():
            if k not in obj and isinstance(prop, dict) and "default" in prop:
                obj[k] = copy.deepcopy(prop["default"])
        for k, v in obj.items():
            apply_defaults(v, _child(node, k))
    elif isinstance(obj, list):
        items = node.get("items")
        if isinstance(items, dict):
            for v in obj:
                apply_defaults(v, items)


def prune(obj: Any, node: dict | None, *, root: bool = True, path: str = "",
          removed: list[str] | None = None) -> None:
    """Drop fields the schema does not name, except under
    x-kubernetes-preserve-unknown-fields; TypeMeta and metadata survive at the root
    and in embedded resources. The paths dropped are appended to ``removed``."""
    if node is None or not isinstance(obj, (dict, list)):
        return
    if isinstance(obj, list):
        items = node.get("items")
        for i, v in enumerate(obj):
            prune(v, items if isinstance(items, dict) else None, root=False,
                  path=f"{path}[{i}]", removed=removed)
        return
    keep_meta = root or node.get("x-kubernetes-embedded-resource")
    for k in list(obj):
        sub = f"{path}.{k}" if path else k
        if keep_meta and k in _EMBEDDED_KEEP:
            if k == "metadata" and not root and isinstance(obj[k], dict):
                _prune_embedded_meta(obj[k])
            continue
        child = _child(node, k)
        if child is None:
            if not node.get("x-kubernetes-preserve-unknown-fields") and \
                    not node.get("additionalProperties"):
                del obj[k]
                if removed is not None:
                    removed.append(sub)
        else:
            prune(obj[k], child, root=False, path=sub, removed=removed)


_META_FIELDS = ("name", "generateName", "namespace", "labels", "annotations", "uid",
                "ownerReferences", "finalizers", "resourceVersion", "creationTimestamp",
                "deletionTimestamp", "generation", "managedFields",
                "deletionGracePeriodSeconds", "selfLink")


def _prune_embedded_meta(md: dict) -> None:
    for k in list(md):
        if k not in _META_FIELDS:
            del md[k]


def _child(node: dict, key: str) -> dict | None:
    props = node.get("properties")
    if isinstance(props, dict) and isinstance(props.get(key), dict):
        return props[key]
    ap = node.get("additionalProperties")
    if isinstance(ap, dict):
        return ap
    return None


# -- validation ---------------------------------------------------------------------

def validate(obj: dict, node: dict) -> list[FieldError]:
    """Validation errors of a custom object (apiVersion/kind/metadata are the
    registry's; the schema covers the rest)."""
    out: list[FieldError] = []
    props = node.get("properties") or {}
    for k, v in obj.items():
        if k in ("apiVersion", "kind", "metadata"):
            continue
        child = props.get(k)
        if isinstance(child, dict):
            _validate(v, child, k, out)
    for k in node.get("required") or ():
        if k not in obj:
            out.append(required(k))
    return out


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(value: Any, t: str) -> bool:
    actual = _json_type(value)
    return actual == t or (t == "number" and actual == "integer")


def _validate(value: Any, node: dict, path: str, out: list[FieldError]) -> None:
    if value is None:
        if not node.get("nullable"):
            t = node.get("type")
            if t:
                out.append(type_invalid(path, "null", f"{path} in body must be of type {t}: "
                                        '"null"'))
        return
    if node.get("x-kubernetes-int-or-string"):
        if _json_type(value) not in ("integer", "string"):
            out.append(type_invalid(path, _json_type(value),
                                    f"{path} in body must be of type integer-or-string: "
                                    f'"{_json_type(value)}"'))
            return
    t = node.get("type")
    if t and not _type_ok(value, t):
        out.append(type_invalid(path, _json_type(value),
                                f'{path} in body must be of type {t}: "{_json_type(value)}"'))
        return
    enum = node.get("enum")
    if enum is not None and value not in enum:
        out.append(not_supported(path, value, [e for e in enum]))
    if isinstance(value, str):
        _validate_string(value, node, path, out)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        _validate_number(value, node, path, out)
    elif isinstance(value, list):
        _validate_array(value, node, path, out)
    elif isinstance(value, dict):
        _validate_object(value, node, path, out)


def _validate_string(value: str, node: dict, path: str, out: list[FieldError]) -> None:
    if "maxLength" in node and len(value) > node["maxLength"]:
        out.append(FieldError("FieldValueTooLong", path,
                              f"Too long: may not be more than {node['maxLength']} bytes"))
    if "minLength" in node and len(value) < node["minLength"]:
        out.append(invalid_value(path, value, f"{path} in body should be at least "
                                 f"{node['minLength']} chars long"))
    pattern = node.get("pattern")
    if pattern is not None and re.search(pattern, value) is None:
        out.append(invalid_value(path, value, f"{path} in body should match '{pattern}'"))
    fmt = node.get("format")
    if fmt and not _format_ok(fmt, value):
        out.append(invalid_value(path, value, f"{path} in body must be of type {fmt}: "
                                 f'"{value}"'))


def _validate_number(value: float, node: dict, path: str, out: list[FieldError]) -> None:
    if "maximum" in node:
        m = node["maximum"]
        if value > m or (node.get("exclusiveMaximum") and value == m):
            op = "less than" if node.get("exclusiveMaximum") else "less than or equal to"
            out.append(invalid_value(path, value, f"{path} in body should be {op} {m}"))
    if "minimum" in node:
        m = node["minimum"]
        if value < m or (node.get("exclusiveMinimum") and value == m):
            op = "greater than" if node.get("exclusiveMinimum") else \
                "greater than or equal to"
            out.append(invalid_value(path, value, f"{path} in body should be {op} {m}"))
    mult = node.get("multipleOf")
    if mult and (value / mult) != int(value / mult):
        out.append(invalid_value(path, value, f"{path} in body should be a multiple of {mult}"))


def _validate_array(value: list, node: dict, path: str, out: list[FieldError]) -> None:
    if "maxItems" in node and len(value) > node["maxItems"]:
        out.append(FieldError("FieldValueTooMany", path,
                              f"Too many: {len(value)}: must have at most "
                              f"{node['maxItems']} items"))
    if "minItems" in node and len(value) < node["minItems"]:
        out.append(invalid_value(path, len(value), f"{path} in body should have at least "
                                 f"{node['minItems']} items"))
    items = node.get("items")
    if isinstance(items, dict):
        for i, v in enumerate(value):
            _validate(v, items, f"{path}[{i}]", out)
    list_type = node.get("x-kubernetes-list-type")
    if list_type == "set":
        seen: list = []
        for i, v in enumerate(value):
            if v in seen:
                out.append(FieldError("FieldValueDuplicate", f"{path}[{i}]",
                                      f"Duplicate value: {_go_value(v)}"))
            seen.append(v)
    elif list_type == "map":
        keys = node.get("x-kubernetes-list-map-keys") or []
        seen_keys: list = []
        for i, v in enumerate(value):
            if not isinstance(v, dict):
                continue
            k = tuple(v.get(key) for key in keys)
            if k in seen_keys:
                out.append(FieldError("FieldValueDuplicate", f"{path}[{i}]",
                                      "Duplicate value: map[string]interface {}{"
                                      + ", ".join(f'"{key}":{_go_value(v.get(key))}'
                                                  for key in keys) + "}"))
            seen_keys.append(k)


def _go_value(v: Any) -> str:
    return f'"{v}"' if isinstance(v, str) else str(v)


def _validate_object(value: dict, node: dict, path: str, out: list[FieldError]) -> None:
    if node.get("x-kubernetes-embedded-resource"):
        for k in ("apiVersion", "kind"):
            if not value.get(k):
                out.append(required(f"{path}.{k}", "must not be empty"))
    props = node.get("properties") or {}
    ap = node.get("additionalProperties")
    if "maxProperties" in node and len(value) > node["maxProperties"]:
        out.append(FieldError("FieldValueTooMany", path,
                              f"Too many: {len(value)}: must have at most "
                              f"{node['maxProperties']} items"))
    if "minProperties" in node and len(value) < node["minProperties"]:
        out.append(invalid_value(path, len(value), f"{path} in body should have at least "
                                 f"{node['minProperties']} properties"))
    for k, v in value.items():
        child = props.get(k)
        if not isinstance(child, dict) and isinstance(ap, dict):
            child = ap
        if isinstance(child, dict):
            _validate(v, child, f"{path}.{k}", out)
    for k in node.get("required") or ():
        if k not in value:
            out.append(required(f"{path}.{k}"))


_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _format_ok(fmt: str, value: str) -> bool:
    """Formats upstream validates (kube-openapi strfmt); unknown ones pass, as upstream."""
    try:
        if fmt == "date-time":
            return bool(_DATE_TIME.match(value)) and \
                datetime.datetime.fromisoformat(value.replace("z", "Z")) is not None
        if fmt == "date":
            datetime.date.fromisoformat(value)
            return True
        if fmt == "uuid":
            uuid.UUID(value)
            return len(value) == 36
        if fmt == "ipv4":
            ipaddress.IPv4Address(value)
            return True
        if fmt == "ipv6":
            ipaddress.IPv6Address(value)
            return True
        if fmt == "cidr":
            ipaddress.ip_network(value, strict=False)
            return "/" in value
        if fmt == "hostname":
            return len(value) <= 253 and bool(_DNS1123.match(value.lower()))
        if fmt == "byte":
            import base64
            base64.b64decode(value, validate=True)
            return True
    except ValueError:
        return False
    return True
