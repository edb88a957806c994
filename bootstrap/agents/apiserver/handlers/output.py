"""Representations a client can ask for: the object, a Table, or metadata only."""

from __future__ import annotations

from aiohttp import web

from bootstrap.api import conversion
from bootstrap.api.resources import Resource

from . import common


def _include_object(request: web.Request) -> str:
    return request.query.get("includeObject", "Metadata")


def to_table(objs: list[dict], res: Resource, request: web.Request,
             list_meta: dict | None) -> dict:
    from bootstrap.api import tables
    if res.stored_as:
        # Columns are written once per kind, for the storage version (upstream prints
        # the internal type, whatever version was asked for).
        objs = [conversion.convert(o, res.stored_as) for o in objs]
    return tables.to_table(objs, res, include_object=_include_object(request),
                           list_meta=list_meta)


def served_as(res: Resource, obj: dict) -> dict:
    """An object read from the watch cache (at its storage version) as the version
    asked for: converted for built-ins served at several versions, apiVersion
    rewritten for custom resources (conversion strategy None)."""
    if obj.get("apiVersion") != res.gv and (res.custom is not None or res.stored_as):
        return conversion.convert(obj, res.gv)
    return obj


def convert_one(request: web.Request, res: Resource, obj: dict) -> dict:
    obj = served_as(res, obj)
    want = common.wants(request)
    if want.startswith("Table"):
        return to_table([obj], res, request, {"resourceVersion":
                                              obj["metadata"].get("resourceVersion", "")})
    if want.startswith("PartialObjectMetadata"):
        return common.partial_metadata(obj, want.split(":")[1])
    return obj


def object_response(request: web.Request, res: Resource, obj: dict, status: int = 200,
                    warnings: list[str] | None = None) -> web.Response:
    return common.json_response(convert_one(request, res, obj), status=status,
                                warnings=warnings)


def list_response(request: web.Request, res: Resource, items: list[dict], rv: int,
                  cont: str | None, remaining: int | None) -> web.Response:
    if res.custom is not None or res.stored_as:
        items = [served_as(res, o) for o in items]
    want = common.wants(request)
    if want.startswith("Table"):
        meta = {"resourceVersion": str(rv)}
        if cont:
            meta["continue"] = cont
        return common.json_response(to_table(items, res, request, meta))
    if want.startswith("PartialObjectMetadata"):
        version = want.split(":")[1]
        body = common.list_body(res, [common.partial_metadata(o, version) for o in items], rv,
                                cont, remaining)
        body["kind"], body["apiVersion"] = "PartialObjectMetadataList", f"meta.k8s.io/{version}"
        return common.json_response(body)
    return common.json_response(common.list_body(res, items, rv, cont, remaining))
