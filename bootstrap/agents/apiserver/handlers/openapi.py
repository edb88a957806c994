"""Serving the OpenAPI v2 and v3 documents the shared model builds (bootstrap.api.openapi)."""

from __future__ import annotations

from aiohttp import web

from bootstrap.api import errors, openapi

from . import common

_NOT_FOUND = "the server could not find the requested resource"


def _bytes(request: web.Request, body: bytes, etag: str) -> web.Response:
    if request.headers.get("If-None-Match") == f'"{etag}"':
        return web.Response(status=304, headers={"ETag": f'"{etag}"'})
    headers = {"ETag": f'"{etag}"'}
    if request.query.get("hash"):
        # Hash-addressed documents never change: clients may cache them for good.
        headers["Cache-Control"] = "public, immutable"
    return web.Response(body=body, content_type=common.JSON, headers=headers)


def handle(request: web.Request, parts: list[str]) -> web.Response:
    if parts == ["openapi", "v2"]:
        accept = request.headers.get("Accept", "")
        if "protobuf" in accept and "json" not in accept and "*/*" not in accept:
            raise errors.not_acceptable(["application/json"])
        return _bytes(request, openapi.openapi_v2_document(), openapi.openapi_v2_hash())
    if parts == ["openapi", "v3"]:
        return common.json_response(openapi.openapi_v3_index())
    if len(parts) >= 3 and parts[:2] == ["openapi", "v3"]:
        gv = "/".join(parts[2:])
        try:
            return _bytes(request, openapi.openapi_v3_document(gv), openapi.openapi_v3_hash(gv))
        except KeyError:
            raise errors.APIError(404, "NotFound", _NOT_FOUND) from None
    raise errors.APIError(404, "NotFound", _NOT_FOUND)
