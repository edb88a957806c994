"""Request decoding and response encoding shared by all handlers."""

from __future__ import annotations

import orjson
import yaml
from aiohttp import web

from bootstrap.api import errors
from bootstrap.api.resources import Resource

from . import protobuf

JSON = "application/json"


def json_response(body, status: int = 200, warnings: list[str] | None = None,
                  content_type: str = JSON) -> web.Response:
    resp = web.Response(body=orjson.dumps(body), status=status, content_type=content_type)
    for w in warnings or []:
        text = w.replace("\\", "\\\\").replace('"', '\\"')
        resp.headers.add("Warning", f'299 - "{text}"')
    return resp


def error_response(exc: errors.APIError) -> web.Response:
    resp = json_response(exc.status(), status=exc.code)
    retry = (exc.details or {}).get("retryAfterSeconds")
    if retry:
        resp.headers["Retry-After"] = str(retry)
    return resp


async def read_body(request: web.Request) -> dict:
    raw = await request.read()
    if not raw:
        raise errors.bad_request("the body of the request was empty")
    ctype = (request.content_type or JSON).lower()
    if ctype == protobuf.CONTENT_TYPE:
        return protobuf.decode(raw)
    try:
        if "yaml" in ctype:
            body = yaml.safe_load(raw)
        else:
            body = orjson.loads(raw)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise errors.bad_request(f"the object provided is unrecognized: {exc}") from None
    if not isinstance(body, dict):
        raise errors.bad_request("the object provided is unrecognized: expected an object")
    return body


def check_type(body: dict, res: Resource, kind: str | None = None,
               api_version: str | None = None) -> None:
    """A body's apiVersion/kind must name the endpoint's kind (or be empty)."""
    want_kind, want_gv = kind or res.kind, api_version or res.gv
    got_kind, got_gv = body.get("kind"), body.get("apiVersion")
    if got_kind and got_kind != want_kind or got_gv and got_gv != want_gv:
        raise errors.bad_request(
            f"the API version in the data ({got_gv}) does not match the expected API version "
            f"({want_gv})" if got_gv and got_gv != want_gv else
            f"the kind in the data ({got_kind}) does not match the expected kind ({want_kind})")


def query_bool(request: web.Request, name: str) -> bool:
    v = request.query.get(name)
    return v is not None and v.lower() in ("1", "true", "t", "yes", "")


def query_int(request: web.Request, name: str) -> int | None:
    v = request.query.get(name)
    if v in (None, ""):
        return None
    try:
        return int(v)
    except ValueError:
        raise errors.bad_request(f"invalid value for {name}: {v!r}") from None


def dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    for v in values:
        if v != "All":
            raise errors.bad_request(f"Invalid dryRun value: {v!r}; only 'All' is supported")
    return bool(values)


def field_validation(request: web.Request) -> str:
    v = request.query.get("fieldValidation", "")
    if v == "":
        # Upstream's default for requests that do not ask is Warn.
        return "Warn"
    if v not in ("Strict", "Warn", "Ignore"):
        raise errors.bad_request(f"fieldValidation must be one of Strict, Warn, Ignore, got {v}")
    return v


def wants(request: web.Request) -> str:
    """Which representation the client asked for: Table, PartialObjectMetadata or object."""
    accept = request.headers.get("Accept", "")
    for part in accept.split(","):
        params = dict(p.strip().split("=", 1) for p in part.split(";")[1:] if "=" in p)
        if params.get("g") == "meta.k8s.io" and params.get("as") in (
                "Table", "PartialObjectMetadata", "PartialObjectMetadataList"):
            return params["as"] + ":" + params.get("v", "v1")
    return ""


def partial_metadata(obj: dict, version: str = "v1") -> dict:
    return {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{version}",
            "metadata": obj.get("metadata", {})}


def list_body(res: Resource, items: list[dict], rv: int, cont: str | None,
              remaining: int | None = None) -> dict:
    meta: dict = {"resourceVersion": str(rv)}
    if cont:
        meta["continue"] = cont
    if remaining is not None:
        meta["remainingItemCount"] = remaining
    return {"kind": res.list_kind, "apiVersion": res.gv, "metadata": meta, "items": items}
