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
        if out and ref_prefix.startswith("#/components/"):
            # Siblings of $ref are ignored by OpenAPI 3; upstream wraps the ref in allOf.
            out = {"allOf": [{"$ref": target}], **out}
        else:
            # Swagger 2.0 as upstream publishes it: description and extensions beside
            # the $ref (client-go's v2 model and kubectl explain read them there).
            out = {"$ref": target, **out}
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
        _v2_protobuf.cache_clear()


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


_DRY_RUN = ("When present, indicates that modifications should not be persisted. An invalid "
            "or unrecognized dryRun directive will result in an error response and no further "
            "processing of the request. Valid values are: - All: all dry run stages will be "
            "processed")
# Query parameters as upstream documents them (name -> (description, type)).
_QUERY = {
    "pretty": ("If 'true', then the output is pretty printed. Defaults to 'false' unless the "
               "user-agent indicates a browser or command-line HTTP tool (curl and wget).",
               "string"),
    "allowWatchBookmarks": ("allowWatchBookmarks requests watch events with type \"BOOKMARK\". "
                            "Servers that do not implement bookmarks may ignore this flag and "
                            "bookmarks are sent at the server's discretion.", "boolean"),
    "continue": ("The continue option should be set when retrieving more results from the "
                 "server. Since this value is server defined, clients may only use the "
                 "continue value from a previous query result with identical query "
                 "parameters (except for the value of continue).", "string"),
    "fieldSelector": ("A selector to restrict the list of returned objects by their fields. "
                      "Defaults to everything.", "string"),
    "labelSelector": ("A selector to restrict the list of returned objects by their labels. "
                      "Defaults to everything.", "string"),
    "limit": ("limit is a maximum number of responses to return for a list call. If more "
              "items exist, the server will set the `continue` field on the list metadata to "
              "a value that can be used with the same initial query to retrieve the next set "
              "of results.", "integer"),
    "resourceVersion": ("resourceVersion sets a constraint on what resource versions a "
                        "request may be served from. See "
                        "https://kubernetes.io/docs/reference/using-api/api-concepts/"
                        "#resource-versions for details. Defaults to unset", "string"),
    "resourceVersionMatch": ("resourceVersionMatch determines how resourceVersion is applied "
                             "to list calls. Defaults to unset", "string"),
    "sendInitialEvents": ("`sendInitialEvents=true` may be set together with `watch=true`. "
                          "In that case, the watch stream will begin with synthetic events to "
                          "produce the current state of objects in the collection.",
                          "boolean"),
    "timeoutSeconds": ("Timeout for the list/watch call. This limits the duration of the call, "
                       "regardless of any activity or inactivity.", "integer"),
    "watch": ("Watch for changes to the described resources and return them as a stream of "
              "add, update, and remove notifications. Specify resourceVersion.", "boolean"),
    "dryRun": (_DRY_RUN, "string"),
    "fieldManager": ("fieldManager is a name associated with the actor or entity that is "
                     "making these changes. The value must be less than or 128 characters "
                     "long, and only contain printable characters, as defined by "
                     "https://golang.org/pkg/unicode/#IsPrint.", "string"),
    "fieldValidation": ("fieldValidation instructs the server on how to handle objects in the "
                        "request (POST/PUT/PATCH) containing unknown or duplicate fields. "
                        "Valid values are: - Ignore - Warn - Strict", "string"),
    "force": ("Force is going to \"force\" Apply requests. It means user will re-acquire "
              "conflicting fields owned by other people. Force flag must be unset for non-apply "
              "patch requests.", "boolean"),
    "gracePeriodSeconds": ("The duration in seconds before the object should be deleted. "
                           "Value must be non-negative integer. The value zero indicates "
                           "delete immediately.", "integer"),
    "orphanDependents": ("Deprecated: please use the PropagationPolicy, this field will be "
                         "deprecated in 1.7. Should the dependent objects be orphaned.",
                         "boolean"),
    "propagationPolicy": ("Whether and how garbage collection will be performed. Either this "
                          "field or OrphanDependents may be set, but not both. Acceptable "
                          "values are: 'Orphan', 'Background', 'Foreground'.", "string"),
}
_LIST_QUERY = ("allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit",
               "resourceVersion", "resourceVersionMatch", "sendInitialEvents",
               "timeoutSeconds", "watch")
_DELETE_QUERY = ("dryRun", "gracePeriodSeconds", "orphanDependents", "propagationPolicy")
_DELETE_COLLECTION_QUERY = ("continue", "dryRun", "fieldSelector", "gracePeriodSeconds",
                            "labelSelector", "limit", "orphanDependents", "propagationPolicy",
                            "resourceVersion", "resourceVersionMatch", "sendInitialEvents",
                            "timeoutSeconds")


def _query(names, v3: bool) -> list[dict]:
    return [_param(n, _QUERY[n][0], v3=v3, type_=_QUERY[n][1]) for n in names]


def _write_params(v3: bool, *, patch: bool) -> list[dict]:
    return _query(("dryRun", "fieldManager", "fieldValidation") + (("force",) if patch else ()),
                  v3)


def _op_name(r: resources.Resource) -> str:
    """Upstream's operation-id infix: CoreV1, AppsV1, RbacAuthorizationV1,
    StableExampleComV1 (k8s.io groups lose the suffix)."""
    group = r.group or "core"
    if group.endswith(".k8s.io"):
        group = group[:-len(".k8s.io")]
    return "".join(p[:1].upper() + p[1:] for p in group.split(".")) + \
        r.version[:1].upper() + r.version[1:]


class _PathBuilder:
    """Operations for one resource, shared by the v2 and v3 renderings."""

    def __init__(self, v3: bool, patch_types: tuple[str, ...] = _PATCH_TYPES, tag: str = ""):
        self.v3 = v3
        self.prefix = "#/components/schemas/" if v3 else "#/definitions/"
        # kubectl apply sends a strategic merge patch only where the operation lists it;
        # custom resources have no patch strategies, so theirs leave it out (upstream).
        self.patch_types = patch_types
        self.tag = tag

    def _ref(self, name: str) -> dict:
        return {"$ref": self.prefix + name}

    def _response(self, def_name: str, codes=("200",)) -> dict:
        if self.v3:
            out = {c: {"description": _CODES[c], "content": {
                "application/json": {"schema": self._ref(def_name)},
                "application/yaml": {"schema": self._ref(def_name)}}} for c in codes}
        else:
            out = {c: {"description": _CODES[c], "schema": self._ref(def_name)} for c in codes}
        out["401"] = {"description": "Unauthorized"}
        return out

    def _body(self, def_name: str, content_types=("*/*",), required: bool = True) -> dict:
        if self.v3:
            body = {"content": {ct: {"schema": self._ref(def_name)} for ct in content_types}}
            if required:
                body["required"] = True
            return {"requestBody": body}
        p = {"name": "body", "in": "body", "schema": self._ref(def_name)}
        if required:
            p["required"] = True
        return {"parameters_body": [p]}

    def op(self, action: str, kind_gvk: dict, op_id: str, def_name: str, *,
           description: str, params: list[dict] | None = None, body: str | None = None,
           patch: bool = False, codes=("200",), body_required: bool = True) -> dict:
        o: dict[str, Any] = {"operationId": op_id, "description": description,
                             "responses": self._response(def_name, codes),
                             "x-kubernetes-action": action,
                             "x-kubernetes-group-version-kind": kind_gvk}
        if self.tag:
            o["tags"] = [self.tag]
        params = list(params or [])
        if body:
            b = self._body(body, self.patch_types if patch else ("*/*",), body_required)
            if self.v3:
                o.update(b)
            else:
                params = b["parameters_body"] + params
        if params:
            o["parameters"] = params
        if not self.v3:
            o["consumes"] = list(self.patch_types) if patch else ["*/*"]
            o["produces"] = ["application/json", "application/yaml"] + (
                ["application/json;stream=watch"] if action == "list" else [])
            o["schemes"] = ["https"]
        return o


_CODES = {"200": "OK", "201": "Created", "202": "Accepted"}


def _paths_for(r: resources.Resource, v3: bool) -> dict[str, dict]:
    infix = _op_name(r)
    tag = (r.group.replace(".k8s.io", "").replace(".", "_") or "core") + "_" + r.version
    b = _PathBuilder(v3, _PATCH_TYPES if r.custom is None else tuple(
        t for t in _PATCH_TYPES if "strategic" not in t), tag)
    kind_def = schema.definition_name(r.gvk)
    list_def = schema.definition_name((r.group, r.version, r.list_kind)) or kind_def
    if kind_def is None:
        return {}
    gvk = _gvk(r.group, r.version, r.kind)
    base = "/" + _gv_path(r.group, r.version)
    ns_part = "/namespaces/{namespace}" if r.namespaced else ""
    coll = f"{base}{ns_part}/{r.plural}"
    item = coll + "/{name}"
    scoped = ("Namespaced" if r.namespaced else "") + r.kind
    pretty = _query(("pretty",), v3)
    ns_param = [_param("namespace", "object name and auth scope, such as for teams and projects",
                       in_="path", required=True, v3=v3)] if r.namespaced else []
    name_param = [_param("name", f"name of the {r.kind}", in_="path", required=True, v3=v3)]
    verbs = set(r.verbs)
    paths: dict[str, dict] = {}
    kind = r.kind

    coll_ops: dict[str, Any] = {}
    if "list" in verbs:
        coll_ops["get"] = b.op("list", gvk, f"list{infix}{scoped}", list_def,
                               description=f"list or watch objects of kind {kind}",
                               params=_query(_LIST_QUERY, v3))
    if "create" in verbs:
        coll_ops["post"] = b.op("post", gvk, f"create{infix}{scoped}", kind_def,
                                description=f"create {_article(kind)} {kind}",
                                params=_write_params(v3, patch=False), body=kind_def,
                                codes=("200", "201", "202"))
    if "deletecollection" in verbs:
        coll_ops["delete"] = b.op("deletecollection", gvk,
                                  f"deletecollection{infix}{scoped}", _META + "Status",
                                  description=f"delete collection of {kind}",
                                  params=_query(_DELETE_COLLECTION_QUERY, v3),
                                  body=_META + "DeleteOptions", body_required=False)
    if coll_ops:
        coll_ops["parameters"] = ns_param + pretty
        paths[coll] = coll_ops
    if r.namespaced and "list" in verbs:
        paths[f"{base}/{r.plural}"] = {
            "get": b.op("list", gvk, f"list{infix}{kind}ForAllNamespaces", list_def,
                        description=f"list or watch objects of kind {kind}",
                        params=_query(_LIST_QUERY, v3)),
            "parameters": pretty}

    if r.stored:
        item_ops: dict[str, Any] = {"parameters": name_param + ns_param + pretty}
        if "get" in verbs:
            item_ops["get"] = b.op("get", gvk, f"read{infix}{scoped}", kind_def,
                                   description=f"read the specified {kind}")
        if "update" in verbs:
            item_ops["put"] = b.op("put", gvk, f"replace{infix}{scoped}", kind_def,
                                   description=f"replace the specified {kind}",
                                   params=_write_params(v3, patch=False), body=kind_def,
                                   codes=("200", "201"))
        if "patch" in verbs:
            item_ops["patch"] = b.op("patch", gvk, f"patch{infix}{scoped}", kind_def,
                                     description=f"partially update the specified {kind}",
                                     params=_write_params(v3, patch=True),
                                     body=_META + "Patch", patch=True, codes=("200", "201"))
        if "delete" in verbs:
            item_ops["delete"] = b.op("delete", gvk, f"delete{infix}{scoped}", _META + "Status",
                                      description=f"delete {_article(kind)} {kind}",
                                      params=_query(_DELETE_QUERY, v3),
                                      body=_META + "DeleteOptions", body_required=False,
                                      codes=("200", "202"))
        paths[item] = item_ops

    # Subresources served with get/put/patch: name -> (operation suffix, gvk, schema).
    subs = {"status": ("Status", gvk, kind_def),
            "scale": ("Scale", _gvk("autoscaling", "v1", "Scale"), _SCALE)}
    for sub in r.subresources:
        if sub not in subs:
            continue
        op_suffix, sub_gvk, sub_def = subs[sub]
        paths[f"{item}/{sub}"] = {
            "parameters": name_param + ns_param + pretty,
            "get": b.op("get", sub_gvk, f"read{infix}{scoped}{op_suffix}", sub_def,
                        description=f"read {sub} of the specified {kind}"),
            "put": b.op("put", sub_gvk, f"replace{infix}{scoped}{op_suffix}", sub_def,
                        description=f"replace {sub} of the specified {kind}",
                        params=_write_params(v3, patch=False), body=sub_def,
                        codes=("200", "201")),
            "patch": b.op("patch", sub_gvk, f"patch{infix}{scoped}{op_suffix}", sub_def,
                          description=f"partially update {sub} of the specified {kind}",
                          params=_write_params(v3, patch=True), body=_META + "Patch",
                          patch=True, codes=("200", "201")),
        }
    return paths


def _article(kind: str) -> str:
    return "an" if kind[:1] in "AEIOU" else "a"


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


def openapi_v2_protobuf() -> bytes:
    """/openapi/v2 as gnostic's openapi.v2.Document protobuf (client-go's OpenAPISchema)."""
    _fresh()
    return _v2_protobuf()


@functools.lru_cache(maxsize=1)
def _v2_protobuf() -> bytes:
    from bootstrap.api import openapi_pb
    return openapi_pb.document(orjson.loads(_v2_document()))


def openapi_v2_protobuf_hash() -> str:
    _fresh()
    return hashlib.sha512(_v2_protobuf()).hexdigest().upper()


def warm() -> None:
    """Build every served document now, so no client request pays for it.

    The set is fixed by the catalogue (about 2 MB in all), so keeping them is bounded.
    """
    for p in gv_paths():
        openapi_v3_hash(p)
    openapi_v2_document()
    openapi_v2_protobuf()
