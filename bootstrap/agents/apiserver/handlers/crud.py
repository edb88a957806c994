"""get/list/create/update/patch/delete/deletecollection on a resource collection."""

from __future__ import annotations

import copy
import dataclasses

from aiohttp import web

from bootstrap.api import errors, selectors
from bootstrap.api.resources import Resource

from ..registry import Ctx
from ..requestinfo import RequestInfo
from . import common, output

PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml")


def ctx_for(request: web.Request, user, subresource: str = "") -> Ctx:
    fm = request.query.get("fieldManager")
    if fm is not None and len(fm) > 128:
        raise errors.bad_request("fieldManager: Too long: must have at most 128 bytes")
    ctx = Ctx(user=user, dry_run=common.dry_run(request),
              field_manager=fm if fm is not None else _default_manager(request),
              field_validation=common.field_validation(request), subresource=subresource)
    request["audit_annotations"] = ctx.audit_annotations  # app's audit event logs them
    return ctx


def _default_manager(request: web.Request) -> str:
    # Upstream names the manager after the user agent's program name.
    ua = request.headers.get("User-Agent", "unknown")
    return ua.split("/", 1)[0][:128] or "unknown"


def matcher(request: web.Request, res: Resource):
    label = selectors.parse_label_selector(request.query.get("labelSelector"))
    if res.custom is not None:
        # Custom resources select by metadata and the CRD's selectableFields only.
        getters = res.custom.field_getters()
        field = selectors.parse_field_selector(
            request.query.get("fieldSelector"), res.plural,
            allowed={"metadata.name", "metadata.namespace", *getters})
        field = dataclasses.replace(field, getters=field.getters + tuple(getters.items()))
    else:
        field = selectors.parse_field_selector(request.query.get("fieldSelector"), res.plural)
    if label.empty() and field.empty():
        return None

    def match(obj: dict) -> bool:
        return (label.matches(obj.get("metadata", {}).get("labels"))
                and field.matches(obj))
    return match


async def get(server, request: web.Request, info: RequestInfo, user) -> web.Response:
    res = info.resource
    rv = common.resource_version(request)
    obj = await server.registry.get(res, info.namespace or None, info.name,
                                 from_cache=rv == "0", min_rv=int(rv or 0))
    return output.object_response(request, res, obj)


async def list_(server, request: web.Request, info: RequestInfo, user) -> web.Response:
    res = info.resource
    rv, match, limit = common.list_options(request, watch=False)
    min_rv = 0
    if match == "NotOlderThan":
        # A quorum read, never older than a revision etcd reached; storage refuses one
        # it has not (a client's from before an etcd restore).
        rv, min_rv = None, int(rv or 0)
    cont = request.query.get("continue") or None
    if cont and rv:
        raise errors.bad_request("specifying resource version is not allowed when using "
                                 "continue")
    items, list_rv, token, remaining = await server.registry.list(
        res, info.namespace or None, rv=rv, limit=limit, cont=cont,
        match=matcher(request, res), min_rv=min_rv)
    return output.list_response(request, res, items, list_rv, token, remaining)


async def create(server, request: web.Request, info: RequestInfo, user) -> web.Response:
    res = info.resource
    body = await common.read_body(request, res.kind)
    common.check_type(body, res)
    ctx = ctx_for(request, user)
    obj = await server.registry.create(res, info.namespace or None, body, ctx)
    return output.object_response(request, res, obj, status=201, warnings=ctx.warnings)


async def update(server, request: web.Request, info: RequestInfo, user) -> web.Response:
    res = info.resource
    body = await common.read_body(request, res.kind)
    common.check_type(body, res)
    ctx = ctx_for(request, user, info.subresource)
    rv = (body.get("metadata") or {}).get("resourceVersion") or None

    async def compute(current: dict) -> dict:
        return copy.deepcopy(body)

    try:
        obj = await server.registry.update(res, info.namespace or None, info.name, compute, ctx,
                                           precondition_rv=rv)
        status = 200
    except errors.APIError as exc:
        if exc.code != 404 or info.subresource or \
                not server.registry.strategy(res).allow_create_on_update:
            raise
        body.setdefault("metadata", {}).pop("resourceVersion", None)
        body["metadata"].setdefault("name", info.name)
        obj = await server.registry.create(res, info.namespace or None, body, ctx)
        status = 201
    return output.object_response(request, res, obj, status=status, warnings=ctx.warnings)


def parse_patch(request: web.Request, raw: bytes):
    ctype = (request.content_type or "").lower()
    if ctype not in PATCH_TYPES:
        raise errors.unsupported_media_type(ctype)
    try:
        body = common.loads(raw, yaml_body=ctype == "application/apply-patch+yaml")
    except ValueError as exc:
        raise errors.bad_request(f"error decoding patch: {exc}") from None
    if ctype == "application/json-patch+json":
        if not isinstance(body, list):
            raise errors.bad_request("json: cannot unmarshal object into Go value of type "
                                     "jsonpatch.Patch")
    elif not isinstance(body, dict):
        raise errors.bad_request("error decoding patch: the patch must be a JSON object")
    return ctype, body


def apply_patch(ctype: str, body, current: dict, res: Resource, ctx: Ctx, force: bool,
                gvk=None) -> dict:
    from bootstrap.api import patch as model_patch
    gvk = gvk or res.gvk
    if ctype == "application/json-patch+json":
        return model_patch.json_patch(current, body)
    if ctype == "application/merge-patch+json":
        return model_patch.merge_patch(current, body)
    if ctype == "application/strategic-merge-patch+json":
        return model_patch.strategic_merge_patch(current, body, gvk)
    return model_patch.apply(current, body, gvk, ctx.field_manager, force,
                             subresource=ctx.subresource if ctx.subresource == "status" else "")


async def patch(server, request: web.Request, info: RequestInfo, user) -> web.Response:
    res = info.resource
    raw = await common.read_raw(request)
    ctype, body = parse_patch(request, raw)
    if ctype == "application/strategic-merge-patch+json" and res.custom is not None:
        # Custom resources have no Go struct tags to merge by, so upstream refuses.
        raise errors.unsupported_media_type(ctype, [t for t in PATCH_TYPES if t != ctype])
    ctx = ctx_for(request, user, info.subresource)
    ctx.apply = ctype == "application/apply-patch+yaml"
    force = common.query_bool(request, "force")
    if ctx.apply:
        if not request.query.get("fieldManager"):
            raise errors.bad_request("PATCH, application/apply-patch+yaml requires "
                                     "fieldManager to be set")
    elif request.query.get("force") is not None:
        raise errors.bad_request("force: Invalid value: true: may not be specified for "
                                 "non-apply patch")

    async def compute(current: dict) -> dict:
        out = apply_patch(ctype, body, current, res, ctx, force)
        if not isinstance(out, dict):
            raise errors.bad_request("the patch did not produce an object")
        return out

    try:
        obj = await server.registry.update(res, info.namespace or None, info.name, compute,
                                           ctx)
        status = 200
    except errors.APIError as exc:
        if exc.code != 404 or ctype != "application/apply-patch+yaml" or info.subresource:
            raise
        obj = apply_patch(ctype, body, None, res, ctx, force)
        obj.setdefault("metadata", {}).setdefault("name", info.name)
        obj = await server.registry.create(res, info.namespace or None, obj, ctx)
        status = 201
    return output.object_response(request, res, obj, status=status, warnings=ctx.warnings)


async def delete(server, request: web.Request, info: RequestInfo, user) -> web.Response:
    res = info.resource
    options = await _delete_options(request)
    ctx = ctx_for(request, user)
    ctx.dry_run = common.dry_run(request, options)
    obj, gone = await server.registry.delete(res, info.namespace or None, info.name, ctx,
                                             options)
    # Upstream answers 200 even when finalizers or a grace period keep the object; 202
    # only for the old orphanDependents=false form (changing that would break clients).
    accepted = not gone and options.get("orphanDependents") is False
    return output.object_response(request, res, obj, status=202 if accepted else 200)


async def _delete_options(request: web.Request) -> dict:
    raw = await common.read_raw(request) if request.can_read_body else b""
    options: dict = {}
    if raw:
        try:
            options = common.loads(raw, yaml_body="yaml" in (request.content_type or ""))
        except ValueError as exc:
            raise errors.bad_request(f"invalid DeleteOptions: {exc}") from None
        if not isinstance(options, dict):
            raise errors.bad_request("json: cannot unmarshal array into Go value of type "
                                     "v1.DeleteOptions" if isinstance(options, list) else
                                     "the body of the request was not a DeleteOptions object")
        _check_delete_options(options)
    for q in ("gracePeriodSeconds",):
        v = common.query_int(request, q)
        if v is not None:
            options[q] = v
    if request.query.get("propagationPolicy"):
        options["propagationPolicy"] = request.query["propagationPolicy"]
    if options.get("propagationPolicy") not in (None, "Orphan", "Foreground", "Background"):
        raise errors.bad_request(
            f"propagationPolicy: Unsupported value: \"{options['propagationPolicy']}\": "
            'supported values: "Foreground", "Background", "Orphan", "nil"')
    return options


# DeleteOptions fields and the JSON types Go decodes them into.
_DELETE_OPTION_TYPES = {"gracePeriodSeconds": int, "propagationPolicy": str,
                        "orphanDependents": bool, "dryRun": list, "preconditions": dict,
                        "kind": str, "apiVersion": str, "ignoreStoreReadErrorWithClusterBreakingPotential": bool}


def _check_delete_options(options: dict) -> None:
    for key, want in _DELETE_OPTION_TYPES.items():
        value = options.get(key)
        if value is None:
            continue
        ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
        if not ok:
            raise errors.bad_request(f"json: cannot unmarshal {common.json_kind(value)} into Go "
                                     f"struct field DeleteOptions.{key} of type "
                                     f"{_GO_TYPES[want]}")
    pre = options.get("preconditions") or {}
    for key in ("uid", "resourceVersion"):
        if pre.get(key) is not None and not isinstance(pre[key], str):
            raise errors.bad_request(f"json: cannot unmarshal {common.json_kind(pre[key])} into Go "
                                     f"struct field Preconditions.preconditions.{key} of "
                                     f"type string")


_GO_TYPES = {int: "int64", str: "string", bool: "bool", list: "[]string",
             dict: "v1.Preconditions"}


async def delete_collection(server, request: web.Request, info: RequestInfo,
                            user) -> web.Response:
    res = info.resource
    options = await _delete_options(request)
    ctx = ctx_for(request, user)
    ctx.dry_run = common.dry_run(request, options)
    items, rv, _, _ = await server.registry.list(res, info.namespace or None,
                                              match=matcher(request, res))
    deleted = []
    for obj in items:
        md = obj["metadata"]
        try:
            out, _ = await server.registry.delete(res, md.get("namespace"), md["name"], ctx,
                                                  options)
            deleted.append(out)
        except errors.APIError as exc:
            if exc.code != 404:
                raise
    return output.list_response(request, res, deleted, rv, None, None)
