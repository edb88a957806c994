"""From a CustomResourceDefinition to what the catalogue serves: one Resource per
served version, carrying a ``CustomVersion`` (schema, subresources, printer columns)
that the custom-resource strategy, tables and OpenAPI read."""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass, field
from typing import Any

from bootstrap.api.resources import Resource
from bootstrap.api.table_columns import Column, age, name_column, since

GROUP, VERSION, KIND, PLURAL = ("apiextensions.k8s.io", "v1", "CustomResourceDefinition",
                                "customresourcedefinitions")


@dataclass(frozen=True)
class CustomVersion:
    crd_name: str
    crd_uid: str
    version: str
    schema: dict
    status: bool
    scale: dict | None
    printer_columns: tuple = ()
    storage_api_version: str = ""
    selectable_fields: tuple[str, ...] = field(default=())
    # The CRD is being deleted: its objects may be read, updated and deleted, not created.
    terminating: bool = False

    def field_getters(self) -> dict:
        """Field selector labels of ``selectableFields`` (``spec.color`` for the path
        ``.spec.color``) and how to read each as a selector compares it."""
        out = {}
        for path in self.selectable_fields:
            out[path.lstrip(".")] = functools.partial(_selector_value, path=path)
        return out

    def columns(self) -> list[Column]:
        """Name, then additionalPrinterColumns; Age when none are declared (upstream's
        CRD table convertor)."""
        cols = [name_column()]
        declared = list(self.printer_columns)
        if not declared:
            cols.append(Column("Age", age, type="date",
                               description="CreationTimestamp is a timestamp representing "
                                           "the server time when this object was created."))
            return cols
        for c in declared:
            cols.append(Column(c.get("name", ""), _cell(c), type=c.get("type", "string"),
                               priority=int(c.get("priority") or 0),
                               description=c.get("description", ""),
                               format=c.get("format", "")))
        return cols


def _selector_value(obj: dict, path: str) -> str:
    value = json_path(obj, path)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _cell(col: dict):
    path = col.get("jsonPath", "")
    kind = col.get("type", "string")

    def cell(obj: dict, now) -> Any:
        value = json_path(obj, path)
        if value is None:
            return None
        if kind == "date":
            return since(value, now) if isinstance(value, str) else None
        if kind == "integer" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value)
        if kind == "number" and isinstance(value, (int, float)):
            return value
        if kind == "boolean" and isinstance(value, bool):
            return value
        if isinstance(value, (dict, list)):
            import orjson
            return orjson.dumps(value).decode()
        return value if kind == "string" and isinstance(value, str) else str(value)
    return cell


_SEGMENT = re.compile(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]|\['([^']+)'\]")


def json_path(obj: Any, path: str) -> Any:
    """The simple JSONPath subset printer columns use: ``.a.b[0]['c.d']``."""
    p = path.strip()
    if p.startswith("{") and p.endswith("}"):
        p = p[1:-1]
    p = p.lstrip("$")
    pos, cur = 0, obj
    while pos < len(p):
        m = _SEGMENT.match(p, pos)
        if m is None:
            return None
        key, idx, quoted = m.groups()
        if idx is not None:
            if not isinstance(cur, list) or int(idx) >= len(cur):
                return None
            cur = cur[int(idx)]
        else:
            if not isinstance(cur, dict):
                return None
            cur = cur.get(key if key is not None else quoted)
            if cur is None:
                return None
        pos = m.end()
    return cur


def established(crd: dict) -> bool:
    return any(c.get("type") == "Established" and c.get("status") == "True"
               for c in (crd.get("status") or {}).get("conditions") or [])


def resources_for(crd: dict) -> list[Resource]:
    """The Resources an Established CRD serves (one per served version)."""
    spec = crd["spec"]
    names = spec["names"]
    group = spec["group"]
    storage = next(v["name"] for v in spec["versions"] if v.get("storage"))
    out = []
    for v in spec["versions"]:
        if not v.get("served"):
            continue
        subs = v.get("subresources") or {}
        sub_names = tuple(s for s in ("status", "scale") if subs.get(s) is not None)
        cv = CustomVersion(
            crd_name=crd["metadata"]["name"], crd_uid=crd["metadata"].get("uid", ""),
            version=v["name"],
            schema=copy.deepcopy((v.get("schema") or {}).get("openAPIV3Schema") or {}),
            status="status" in sub_names, scale=subs.get("scale"),
            printer_columns=tuple(v.get("additionalPrinterColumns") or ()),
            storage_api_version=f"{group}/{storage}",
            selectable_fields=tuple(f.get("jsonPath", "")
                                    for f in v.get("selectableFields") or ()),
            terminating=bool(crd["metadata"].get("deletionTimestamp")))
        out.append(Resource(
            group=group, version=v["name"], kind=names["kind"], plural=names["plural"],
            singular=names.get("singular") or names["kind"].lower(),
            namespaced=spec.get("scope") == "Namespaced",
            short_names=tuple(names.get("shortNames") or ()),
            subresources=sub_names, categories=tuple(names.get("categories") or ()),
            list_kind=names.get("listKind") or names["kind"] + "List",
            storage_prefix=f"/registry/{group}/{names['plural']}", custom=cv))
    return out


def definition_name(group: str, version: str, kind: str) -> str:
    """OpenAPI definition name upstream gives a custom kind: the reversed group."""
    return ".".join(reversed(group.split("."))) + f".{version}.{kind}"


_OBJECT_META = "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_LIST_META = "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"


def definitions(res: Resource) -> dict[str, dict]:
    """The kind and list definitions (JSON-schema style, as bootstrap.api.schema holds
    them) of a custom resource version, for the OpenAPI documents."""
    cv: CustomVersion = res.custom
    kind_name = definition_name(res.group, res.version, res.kind)
    body = copy.deepcopy(cv.schema) or {"type": "object"}
    props = body.setdefault("properties", {})
    props["apiVersion"] = {"type": "string", "description": "APIVersion defines the "
                           "versioned schema of this representation of an object."}
    props["kind"] = {"type": "string", "description": "Kind is a string value "
                     "representing the REST resource this object represents."}
    props["metadata"] = {"$ref": _OBJECT_META}
    body["type"] = "object"
    body["x-kubernetes-group-version-kind"] = [{"group": res.group, "version": res.version,
                                                "kind": res.kind}]
    lst = {"type": "object", "required": ["items"],
           "description": f"{res.list_kind} is a list of {res.kind}",
           "properties": {"apiVersion": props["apiVersion"], "kind": props["kind"],
                          "metadata": {"$ref": _LIST_META},
                          "items": {"type": "array",
                                    "items": {"$ref": "#/$defs/" + kind_name}}},
           "x-kubernetes-group-version-kind": [{"group": res.group, "version": res.version,
                                                "kind": res.list_kind}]}
    return {kind_name: body, kind_name + "List": lst}
