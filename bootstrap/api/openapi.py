"""Served OpenAPI documents (/openapi/v2 and /openapi/v3/<group-version>),
built from the same upstream schemas used for validation.

What kubectl 1.32 reads: `kubectl explain` fetches the /openapi/v3 index, then the
group-version document, and looks up the schema whose
x-kubernetes-group-version-kind matches; `kubectl create/apply` decide whether
the server validates fields by finding the PATCH operation carrying the kind's
x-kubernetes-group-version-kind and a `fieldValidation` query parameter; apply's
patch builder reads x-kubernetes-patch-merge-key / -strategy from the schemas.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import orjson

from bootstrap.api import resources, schema

_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_ALWAYS = (_META + "Status", _META + "DeleteOptions", _META + "WatchEvent", _META + "Patch",
           _META + "APIResourceList")
_SCALE = "io.k8s.api.autoscaling.v1.Scale"
_DROPPED_KEYS = {"$schema", "$id", "additionalProperties", "oneOf"}
_PATCH_TYPES = ("application/apply-patch+yaml", "application/json-patch+json",
                "application/merge-patch+json", "application/strategic-merge-patch+json")


def _single_type(t: Any) -> str | None:
    if isinstance(t, list):
        ts = [x for x in t if x != "null"]
        return ts[0] if len(ts) == 1 else None
    return t


def _convert(node: Any, ref_prefix: str, *, prop_name: str = "") -> Any:
    """JSON-schema (2020-12, nullable unions) -> OpenAPI schema as upstream publishes it."""
    if isinstance(node, list):
        return [_convert(n, ref_prefix) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    ref = node.get("$ref")
    for k, v in node.items():
        if k in _DROPPED_KEYS or k == "$ref":
            continue
        if k == "additionalProperties" and isinstance(v, dict):
            out[k] = _convert(v, ref_prefix)
        elif k == "type":
            t = _single_type(v)
            if t:
                out[k] = t
        elif k == "enum":
            # kind/apiVersion enums are added by the JSON-schema conversion, not upstream.
            if prop_name in ("kind", "apiVersion"):
                continue
            out[k] = [e for e in v if e is not None]
        elif k == "properties":
            out[k] = {pk: _convert(pv, ref_prefix, prop_name=pk) for pk, pv in v.items()}
        elif k in ("items", "allOf", "anyOf", "not"):
            out[k] = _convert(v, ref_prefix)
        else:
            out[k] = v
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _convert(node["additionalProperties"], ref_prefix)
    if ref:
        target = ref_prefix + ref.rsplit("/", 1)[-1]
        if out:
            # Siblings of $ref are ignored by OpenAPI; upstream wraps the ref in allOf.
            out = {"allOf": [{"$ref": target}], **out}
        else:
            out = {"$ref": target}
    return out


# Types with OpenAPIV3OneOfTypes upstream: v3 publishes them as oneOf without a
# type (kubectl explain then shows <IntOrString>, <Quantity>); v2 as plain strings.
_ONE_OF_TYPES = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": (["integer", "string"], "int-or-string"),
    "io.k8s.apimachinery.pkg.api.resource.Quantity": (["string", "number"], ""),
}


def _scalar_overrides(name: str, converted: dict, v3: bool) -> dict:
    if name not in _ONE_OF_TYPES:
        return converted
    types, fmt = _ONE_OF_TYPES[name]
    out: dict[str, Any] = {"description": converted.get("description", "")}
    if fmt:
        out["format"] = fmt
    if v3:
        out["oneOf"] = [{"type": t} for t in types]
    else:
        out["type"] = "string"
    return out


def _refs(node: Any, acc: set[str]) -> None:
    if isinstance(node, dict):
        r = node.get("$ref")
        if isinstance(r, str):
            acc.add(r.rsplit("/", 1)[-1])
        for v in node.values():
            _refs(v, acc)
    elif isinstance(node, list):
        for v in node:
            _refs(v, acc)


def _closure(roots: list[str]) -> list[str]:
    defs = schema.definitions()
    seen: set[str] = set()
    todo = [r for r in roots if r in defs]
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        found: set[str] = set()
        _refs(defs[n], found)
        todo.extend(f for f in found if f in defs and f not in seen)
    return sorted(seen)


def _schemas(names: list[str], ref_prefix: str) -> dict[str, dict]:
    defs = schema.definitions()
    v3 = ref_prefix.startswith("#/components/")
    return {n: _scalar_overrides(n, _convert(defs[n], ref_prefix), v3) for n in names}


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


_built_for = [resources.generation()]


def _fresh() -> None:
    """Drop the built documents once the catalogue changed (a CRD came or went)."""
    gen = resources.generation()
    if _built_for[0] != gen:
        _built_for[0] = gen
        _v3_document.cache_clear()
        _v3_hash.cache_clear()
        _v2_document.cache_clear()


def gv_paths() -> list[str]:
    _fresh()
    return [_gv_path(g, v) for g, versions in resources.groups().items() for v in versions]


def _gvk(group: str, version: str, kind: str) -> dict:
    return {"group": group, "kind": kind, "version": version}


def _param(name: str, description: str, *, in_: str = "query", required: bool = False,
           v3: bool = True, type_: str = "string", unique: bool = True) -> dict:
    p: dict[str, Any] = {"name": name, "in": in_, "description": description}
    if required:
        p["required"] = True
    if v3:
        p["schema"] = {"type": type_, "uniqueItems": unique} if in_ != "path" else {"type": type_}
    else:
        p["type"] = type_
        if unique and in_ != "path":
            p["uniqueItems"] = True
    return p


def _write_params(v3: bool, *, patch: bool) -> list[dict]:
    ps = [
        _param("dryRun", "When present, indicates that modifications should not be persisted. "
               "An invalid or unrecognized dryRun directive will result in an error response and no "
               "further processing of the request. Valid values are: - All: all dry run stages will be processed",
               v3=v3),
        _param("fieldManager", "fieldManager is a name associated with the actor or entity that is "
               "making these changes.", v3=v3),
        _param("fieldValidation", "fieldValidation instructs the server on how to handle objects in "
               "the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: "
               "- Ignore - Warn - Strict", v3=v3),
    ]
    if patch:
        ps.append(_param("force", "Force is going to \"force\" Apply requests. It means user will "
                         "re-acquire conflicting fields owned by other people.", v3=v3, type_="boolean"))
    return ps


class _PathBuilder:
    """Operations for one resource, shared by the v2 and v3 renderings."""

    def __init__(self, v3: bool, patch_types: tuple[str, ...] = _PATCH_TYPES):
        self.v3 = v3
        self.prefix = "#/components/schemas/" if v3 else "#/definitions/"
        # kubectl apply sends a strategic merge patch only where the operation lists it;
        # custom resources have no patch strategies, so theirs leave it out (upstream).
        self.patch_types = patch_types

    def _ref(self, name: str) -> dict:
        return {"$ref": self.prefix + name}

    def _response(self, def_name: str) -> dict:
        if self.v3:
            return {"200": {"description": "OK", "content": {
                "application/json": {"schema": self._ref(def_name)},
                "application/yaml": {"schema": self._ref(def_name)}}}}
        return {"200": {"description": "OK", "schema": self._ref(def_name)}}

    def _body(self, def_name: str, content_types=("*/*",)) -> dict:
        if self.v3:
            return {"requestBody": {"required": True, "content": {
                ct: {"schema": self._ref(def_name)} for ct in content_types}}}
        return {"parameters_body": [{"name": "body", "in": "body", "required": True,
                                     "schema": self._ref(def_name)}]}

    def op(self, action: str, kind_gvk: dict, op_id: str, def_name: str, *,
           params: list[dict] | None = None, body: str | None = None, patch: bool = False) -> dict:
        o: dict[str, Any] = {"operationId": op_id, "description": f"{action} {kind_gvk['kind']}",
                             "responses": self._response(def_name),
                             "x-kubernetes-action": action,
                             "x-kubernetes-group-version-kind": kind_gvk}
        params = list(params or [])
        if body:
            b = self._body(body, self.patch_types if patch else ("*/*",))
            if self.v3:
                o.update(b)
            else:
                params = b["parameters_body"] + params
        if params:
            o["parameters"] = params
        if not self.v3:
            o["consumes"] = list(self.patch_types) if patch else ["*/*"]
            o["produces"] = ["application/json", "application/yaml"]
        return o


def _paths_for(r: resources.Resource, v3: bool) -> dict[str, dict]:
    b = _PathBuilder(v3, _PATCH_TYPES if r.custom is None else tuple(
        t for t in _PATCH_TYPES if "strategic" not in t))
    kind_def = schema.definition_name(r.gvk)
    list_def = schema.definition_name((r.group, r.version, r.list_kind)) or kind_def
    if kind_def is None:
        return {}
    gvk = _gvk(r.group, r.version, r.kind)
    base = "/" + _gv_path(r.group, r.version)
    ns_part = "/namespaces/{namespace}" if r.namespaced else ""
    coll = f"{base}{ns_part}/{r.plural}"
    item = coll + "/{name}"
    op_kind = r.kind + ("" if not r.group else "")
    ns_param = [_param("namespace", "object name and auth scope, such as for teams and projects",
                       in_="path", required=True, v3=v3)] if r.namespaced else []
    name_param = [_param("name", f"name of the {r.kind}", in_="path", required=True, v3=v3)]
    verbs = set(r.verbs)
    paths: dict[str, dict] = {}

    coll_ops: dict[str, Any] = {}
    if "list" in verbs:
        coll_ops["get"] = b.op("list", gvk, f"list{op_kind}", list_def)
    if "create" in verbs:
        coll_ops["post"] = b.op("post", gvk, f"create{op_kind}", kind_def,
                                params=_write_params(v3, patch=False), body=kind_def)
    if "deletecollection" in verbs:
        coll_ops["delete"] = b.op("deletecollection", gvk, f"deletecollection{op_kind}", _META + "Status")
    if coll_ops:
        if ns_param:
            coll_ops["parameters"] = ns_param
        paths[coll] = coll_ops
    if r.namespaced and "list" in verbs:
        paths[f"{base}/{r.plural}"] = {"get": b.op("list", gvk, f"list{op_kind}ForAllNamespaces", list_def)}

    if r.stored:
        item_ops: dict[str, Any] = {"parameters": ns_param + name_param}
        if "get" in verbs:
            item_ops["get"] = b.op("get", gvk, f"read{op_kind}", kind_def)
        if "update" in verbs:
            item_ops["put"] = b.op("put", gvk, f"replace{op_kind}", kind_def,
                                   params=_write_params(v3, patch=False), body=kind_def)
        if "patch" in verbs:
            item_ops["patch"] = b.op("patch", gvk, f"patch{op_kind}", kind_def,
                                     params=_write_params(v3, patch=True), body=_META + "Patch", patch=True)
        if "delete" in verbs:
            item_ops["delete"] = b.op("delete", gvk, f"delete{op_kind}", _META + "Status")
        paths[item] = item_ops

    # Subresources served with get/put/patch: name -> (operation suffix, gvk, schema).
    subs = {"status": ("Status", gvk, kind_def),
            "scale": ("Scale", _gvk("autoscaling", "v1", "Scale"), _SCALE)}
    for sub in r.subresources:
        if sub not in subs:
            continue
        op_suffix, sub_gvk, sub_def = subs[sub]
        paths[f"{item}/{sub}"] = {
            "parameters": ns_param + name_param,
            "get": b.op("get", sub_gvk, f"read{op_kind}{op_suffix}", sub_def),
            "put": b.op("put", sub_gvk, f"replace{op_kind}{op_suffix}", sub_def,
                        params=_write_params(v3, patch=False), body=sub_def),
            "patch": b.op("patch", sub_gvk, f"patch{op_kind}{op_suffix}", sub_def,
                          params=_write_params(v3, patch=True), body=_META + "Patch", patch=True),
        }
    return paths


def _roots_for(rs: list[resources.Resource]) -> list[str]:
    roots = list(_ALWAYS)
    for r in rs:
        for kind in (r.kind, r.list_kind):
            n = schema.definition_name((r.group, r.version, kind))
            if n:
                roots.append(n)
        if "scale" in r.subresources:
            roots.append(_SCALE)
    return roots


def _info() -> dict:
    return {"title": "Kubernetes", "version": schema.SCHEMA_VERSION}


def openapi_v3_document(gv_path: str) -> bytes:
    """The /openapi/v3/<gv_path> document (gv_path like "api/v1" or "apis/apps/v1")."""
    _fresh()
    return _v3_document(gv_path)


@functools.cache
def _v3_document(gv_path: str) -> bytes:
    parts = gv_path.strip("/").split("/")
    if parts[0] == "api" and len(parts) == 2:
        group, version = "", parts[1]
    elif parts[0] == "apis" and len(parts) == 3:
        group, version = parts[1], parts[2]
    else:
        raise KeyError(gv_path)
    rs = resources.in_group_version(group, version)
    if not rs:
        raise KeyError(gv_path)
    paths: dict[str, dict] = {}
    for r in rs:
        paths.update(_paths_for(r, v3=True))
    doc = {
        "openapi": "3.0.0",
        "info": _info(),
        "paths": paths,
        "components": {
            "schemas": _schemas(_closure(_roots_for(rs)), "#/components/schemas/"),
            "securitySchemes": {"BearerToken": {"type": "apiKey", "name": "authorization",
                                                "in": "header",
                                                "description": "Bearer Token authentication"}},
        },
    }
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def openapi_v3_hash(gv_path: str) -> str:
    """Content hash used in the index's serverRelativeURL and as the ETag."""
    _fresh()
    return _v3_hash(gv_path)


@functools.cache
def _v3_hash(gv_path: str) -> str:
    return hashlib.sha512(_v3_document(gv_path)).hexdigest().upper()


def openapi_v3_index() -> dict:
    """/openapi/v3: where each group-version document lives."""
    return {"paths": {p: {"serverRelativeURL": f"/openapi/v3/{p}?hash={openapi_v3_hash(p)}"}
                      for p in gv_paths()}}


def openapi_v2_document() -> bytes:
    """/openapi/v2 (Swagger 2.0, JSON) covering every served group-version."""
    _fresh()
    return _v2_document()


@functools.lru_cache(maxsize=1)
def _v2_document() -> bytes:
    paths: dict[str, dict] = {}
    for r in resources.CATALOGUE:
        paths.update(_paths_for(r, v3=False))
    doc = {
        "swagger": "2.0",
        "info": _info(),
        "paths": paths,
        "definitions": _schemas(_closure(_roots_for(resources.CATALOGUE)), "#/definitions/"),
        "securityDefinitions": {"BearerToken": {"type": "apiKey", "name": "authorization",
                                                "in": "header",
                                                "description": "Bearer Token authentication"}},
        "security": [{"BearerToken": []}],
    }
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def openapi_v2_hash() -> str:
    _fresh()
    return hashlib.sha512(_v2_document()).hexdigest().upper()


def warm() -> None:
    """Build every served document now, so no client request pays for it.

    The set is fixed by the catalogue (about 2 MB in all), so keeping them is bounded.
    """
    for p in gv_paths():
        openapi_v3_hash(p)
    openapi_v2_document()
