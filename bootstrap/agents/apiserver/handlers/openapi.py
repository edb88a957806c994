"""Serving the OpenAPI v2 and v3 documents the shared model builds (bootstrap.api.openapi)."""

from __future__ import annotations

from aiohttp import web

from bootstrap.api import errors, openapi

from . import common

_NOT_FOUND = "the server could not find the requested resource"


# What kube-openapi's v2 handler offers: JSON and the protobuf, asked for under either
# name; an Accept naming none of them is 406. The answer is always labelled with the
# ".v1.0" name: Go's mime parser (client-go reads every Content-Type) rejects the "@".
_PB_TYPES = ("application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
             "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
_PB_RETURNED = _PB_TYPES[1]


def _bytes(request: web.Request, body: bytes, etag: str,
           content_type: str = common.JSON) -> web.Response:
    if request.headers.get("If-None-Match") == f'"{etag}"':
        return web.Response(status=304, headers={"ETag": f'"{etag}"'})
    headers = {"ETag": f'"{etag}"', "Content-Type": content_type}
    if request.query.get("hash"):
        # Hash-addressed documents never change: clients may cache them for good.
        headers["Cache-Control"] = "public, immutable"
    return web.Response(body=body, headers=headers)


def _v2_type(accept: str) -> str | None:
    """The v2 representation an Accept header asks for first (None: nothing we have)."""
    if not accept.strip():
        return common.JSON
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media in _PB_TYPES:
            return media
        if media in (common.JSON, "application/*", "*/*"):
            return common.JSON
    return None


def handle(request: web.Request, parts: list[str], remote=None) -> web.Response:
    """``remote``: the aggregator, whose extension servers' v3 documents join ours."""
    if parts == ["openapi", "v2"]:
        wanted = _v2_type(request.headers.get("Accept", ""))
        if wanted is None:
            raise errors.not_acceptable(["application/json", _PB_TYPES[0]])
        if wanted != common.JSON:
            return _bytes(request, openapi.openapi_v2_protobuf(),
                          openapi.openapi_v2_protobuf_hash(), _PB_RETURNED)
        return _bytes(request, openapi.openapi_v2_document(), openapi.openapi_v2_hash())
    if parts == ["openapi", "v3"]:
        index = openapi.openapi_v3_index()
        if remote is not None:
            for path, (_, digest) in remote.openapi_v3().items():
                index["paths"][path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
        return common.json_response(index)
    if len(parts) >= 3 and parts[:2] == ["openapi", "v3"]:
        gv = "/".join(parts[2:])
        extension = remote.openapi_v3().get(gv) if remote is not None else None
        if extension is not None:
            return _bytes(request, *extension)
        try:
            return _bytes(request, openapi.openapi_v3_document(gv), openapi.openapi_v3_hash(gv))
        except KeyError:
            raise errors.APIError(404, "NotFound", _NOT_FOUND) from None
    raise errors.APIError(404, "NotFound", _NOT_FOUND)
