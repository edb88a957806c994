"""Validation of CustomResourceDefinitions (upstream's apiextensions validation, the
parts a user meets: names, group, scope, versions, schemas, subresources, columns)."""

from __future__ import annotations

import re

from bootstrap.api import structural
from bootstrap.api.errors import (
    FieldError,
    duplicate,
    forbidden_field,
    invalid_value,
    not_supported,
    required,
)

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUB = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_KIND = re.compile(r"^[A-Za-z]([A-Za-z0-9]*)$")
_VERSION = _DNS1035
_DNS1035_MSG = ("a lowercase RFC 1035 label must consist of lower case alphanumeric "
                "characters or '-', start with an alphabetic character, and end with an "
                "alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
                "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
_COLUMN_TYPES = ["integer", "number", "string", "boolean", "date"]


def validate_crd(obj: dict) -> list[FieldError]:
    out: list[FieldError] = []
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group") or ""
    name = (obj.get("metadata") or {}).get("name") or ""
    plural = names.get("plural") or ""
    if name != f"{plural}.{group}":
        out.append(invalid_value("metadata.name", name,
                                 "must be spec.names.plural+\".\"+spec.group"))
    if not group:
        out.append(required("spec.group"))
    elif "." not in group:
        out.append(invalid_value("spec.group", group, "should be a domain with at least "
                                 "one dot"))
    elif not _DNS1123_SUB.match(group):
        out.append(invalid_value("spec.group", group, "a lowercase RFC 1123 subdomain"))
    scope = spec.get("scope")
    if scope not in ("Namespaced", "Cluster"):
        out.append(not_supported("spec.scope", scope or "", ["Cluster", "Namespaced"]))
    out += _names(names, "spec.names")
    out += _versions(spec, "spec.versions")
    conv = (spec.get("conversion") or {}).get("strategy", "None")
    if conv != "None":
        out.append(not_supported("spec.conversion.strategy", conv, ["None"]))
    return out


def _names(names: dict, path: str) -> list[FieldError]:
    out: list[FieldError] = []
    for key in ("plural", "singular"):
        v = names.get(key) or ""
        if not v and key == "plural":
            out.append(required(f"{path}.{key}"))
        elif v and not _DNS1035.match(v):
            out.append(invalid_value(f"{path}.{key}", v, _DNS1035_MSG))
    for key in ("kind", "listKind"):
        v = names.get(key) or ""
        if not v and key == "kind":
            out.append(required(f"{path}.{key}"))
        elif v and not _KIND.match(v):
            out.append(invalid_value(f"{path}.{key}", v, "may have mixed case, but should "
                                     "otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?"))
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        out.append(invalid_value(f"{path}.listKind", names["listKind"],
                                 "kind and listKind may not be the same"))
    seen: set[str] = set()
    for i, s in enumerate(names.get("shortNames") or []):
        if not isinstance(s, str) or not _DNS1035.match(s):
            out.append(invalid_value(f"{path}.shortNames[{i}]", s, _DNS1035_MSG))
        elif s in seen:
            out.append(duplicate(f"{path}.shortNames[{i}]", s))
        seen.add(s if isinstance(s, str) else "")
    for i, c in enumerate(names.get("categories") or []):
        if not isinstance(c, str) or not _DNS1035.match(c):
            out.append(invalid_value(f"{path}.categories[{i}]", c, _DNS1035_MSG))
    return out


def _versions(spec: dict, path: str) -> list[FieldError]:
    out: list[FieldError] = []
    versions = spec.get("versions") or []
    if not versions:
        return [required(path, "must have exactly one version marked as storage version")]
    storage = [v for v in versions if isinstance(v, dict) and v.get("storage")]
    if len(storage) != 1:
        out.append(invalid_value(path, None, "must have exactly one version marked as "
                                 "storage version") if storage else
                   invalid_value(path, None, "must have exactly one version marked as "
                                 "storage version"))
    if not any(isinstance(v, dict) and v.get("served") for v in versions):
        out.append(invalid_value(path, None, "must have at least one version marked as "
                                 "served"))
    seen: set[str] = set()
    for i, v in enumerate(versions):
        vp = f"{path}[{i}]"
        if not isinstance(v, dict):
            continue
        vname = v.get("name") or ""
        if not vname:
            out.append(required(f"{vp}.name"))
        elif not _VERSION.match(vname):
            out.append(invalid_value(f"{vp}.name", vname, _DNS1035_MSG))
        elif vname in seen:
            out.append(duplicate(f"{vp}.name", vname))
        seen.add(vname)
        schema = (v.get("schema") or {}).get("openAPIV3Schema")
        if schema is None:
            out.append(required(f"{vp}.schema.openAPIV3Schema", "schemas are required"))
        else:
            out += structural.check_schema(schema, f"{vp}.schema.openAPIV3Schema")
        subs = v.get("subresources") or {}
        scale = subs.get("scale")
        if scale is not None:
            for key in ("specReplicasPath", "statusReplicasPath"):
                p = scale.get(key) or ""
                if not p:
                    out.append(required(f"{vp}.subresources.scale.{key}"))
                elif not p.startswith("." + ("spec" if key == "specReplicasPath"
                                             else "status") + "."):
                    out.append(invalid_value(f"{vp}.subresources.scale.{key}", p,
                                             "should be a json path under ."
                                             + ("spec" if key.startswith("spec")
                                                else "status")))
        for j, col in enumerate(v.get("additionalPrinterColumns") or []):
            cp = f"{vp}.additionalPrinterColumns[{j}]"
            if not col.get("name"):
                out.append(required(f"{cp}.name"))
            if col.get("type") not in _COLUMN_TYPES:
                out.append(not_supported(f"{cp}.type", col.get("type") or "", _COLUMN_TYPES))
            if not col.get("jsonPath"):
                out.append(required(f"{cp}.jsonPath"))
        out += _selectable_fields(v.get("selectableFields") or [], schema,
                                  f"{vp}.selectableFields")
        if v.get("deprecated") is False and v.get("deprecationWarning"):
            out.append(forbidden_field(f"{vp}.deprecationWarning",
                                       "can only be set for deprecated versions"))
    return out


def validate_crd_update(new: dict, old: dict) -> list[FieldError]:
    out: list[FieldError] = []
    ns, os_ = new.get("spec") or {}, old.get("spec") or {}
    if ns.get("group") != os_.get("group"):
        out.append(invalid_value("spec.group", ns.get("group"), "field is immutable"))
    if (ns.get("names") or {}).get("plural") != (os_.get("names") or {}).get("plural"):
        out.append(invalid_value("spec.names.plural", (ns.get("names") or {}).get("plural"),
                                 "field is immutable"))
    if ns.get("scope") != os_.get("scope"):
        out.append(invalid_value("spec.scope", ns.get("scope"), "field is immutable"))
    return out


def _schema_at(schema: dict | None, path: str) -> dict | None:
    node = schema
    for key in [k for k in path.split(".") if k]:
        if not isinstance(node, dict):
            return None
        node = (node.get("properties") or {}).get(key)
    return node if isinstance(node, dict) else None


def _selectable_fields(fields: list, schema: dict | None, path: str) -> list[FieldError]:
    out: list[FieldError] = []
    if len(fields) > 8:
        out.append(FieldError("FieldValueTooMany", path,
                              f"Too many: {len(fields)}: must have at most 8 items"))
    seen: set[str] = set()
    for i, f in enumerate(fields):
        jp = (f or {}).get("jsonPath") or ""
        fp = f"{path}[{i}].jsonPath"
        if not jp:
            out.append(required(fp))
            continue
        if not jp.startswith(".") or "[" in jp:
            out.append(invalid_value(fp, jp, "must be a simple json path starting with ."))
            continue
        node = _schema_at(schema, jp)
        if node is None:
            out.append(invalid_value(fp, jp, "is an invalid path: does not refer to a "
                                     "field in the schema"))
        elif node.get("type") not in ("string", "integer", "boolean") and \
                not node.get("x-kubernetes-int-or-string"):
            out.append(invalid_value(fp, jp, "must point to a field of type string, "
                                     "boolean or integer. Enum string fields and "
                                     "IntOrString fields are also allowed"))
        if jp in seen:
            out.append(duplicate(fp, jp))
        seen.add(jp)
    return out
