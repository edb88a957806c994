"""Request decoding and response encoding shared by all handlers."""

from __future__ import annotations

import orjson
import yaml
from aiohttp import web

from bootstrap.api import errors, gojson, resources
from bootstrap.api.resources import Resource

from . import protobuf

JSON = "application/json"


def json_response(body, status: int = 200, warnings: list[str] | None = None,
                  content_type: str = JSON) -> web.Response:
    # Go's json.Encoder ends every document with a newline; clients diffing output
    # (and `curl`) see the same bytes as from upstream.
    resp = web.Response(body=orjson.dumps(body) + b"\n", status=status,
                        content_type=content_type)
    for w in warnings or []:
        text = w.replace("\\", "\\\\").replace('"', '\\"')
        resp.headers.add("Warning", f'299 - "{text}"')
    return resp


def wants_pretty(request: web.Request) -> bool:
    """Upstream indents JSON for ?pretty=true, and for curl and wget unless
    ?pretty=false (apiserver's handlers/responsewriters)."""
    value = request.query.get("pretty")
    if value is not None:
        return value.lower() in ("1", "true", "t", "yes", "")
    agent = request.headers.get("User-Agent", "")
    return agent.startswith(("curl", "Wget"))


def prettify(resp: web.StreamResponse) -> web.StreamResponse:
    """Re-indent a finished JSON response (two spaces, as json.Indent)."""
    if not isinstance(resp, web.Response) or resp.content_type != JSON or not resp.body:
        return resp
    try:
        doc = orjson.loads(resp.body)
    except orjson.JSONDecodeError:
        return resp
    resp.body = orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"
    return resp


def error_response(exc: errors.APIError) -> web.Response:
    resp = json_response(exc.status(), status=exc.code)
    retry = (exc.details or {}).get("retryAfterSeconds")
    if retry:
        resp.headers["Retry-After"] = str(retry)
    return resp


# Upstream's limits: 3 MiB request bodies (413 beyond), and a nesting depth our
# recursive model code (schemas, patches, defaults) stays well inside.
MAX_BODY = 3 * 1024 * 1024
MAX_DEPTH = 200
BODY_TYPES = ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]


async def read_raw(request: web.Request) -> bytes:
    """The request body, or 413 RequestEntityTooLarge past the limit."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise errors.APIError(413, "RequestEntityTooLarge",
                              f"Request entity too large: limit is {MAX_BODY}") from None


def loads(raw: bytes, yaml_body: bool = False):
    """JSON or YAML into Python values, with the depth bounded; ValueError on garbage."""
    try:
        value = yaml.safe_load(raw) if yaml_body else orjson.loads(raw)
    except (orjson.JSONDecodeError, yaml.YAMLError, RecursionError) as exc:
        raise ValueError(str(exc) if not isinstance(exc, RecursionError)
                         else "exceeded max depth") from None
    check_depth(value)
    return value


def check_depth(value) -> None:
    """Iterative, so an absurdly deep body cannot exhaust the stack while measuring."""
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if d > MAX_DEPTH:
            raise ValueError(f"exceeded max depth of {MAX_DEPTH}")
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)


def summarize_data(data: bytes, max_length: int = 30) -> str:
    """upstream's summarizeData: a JSON object's first bytes as text, anything else
    in hex."""
    if not data:
        return "<empty>"
    cut = data[:max_length]
    more = " ..." if len(data) > max_length else ""
    if data[:1] == b"{":
        return cut.decode("utf-8", "replace") + more
    return cut.hex() + more


# The struct encoding/json first reads a body into (the serializer's
# SimpleMetaFactory.Interpret), as reflect prints its type.
_FIND_KIND = ('struct { APIVersion string "json:\\"apiVersion,omitempty\\""; '
              'Kind string "json:\\"kind,omitempty\\"" }')


def json_kind(value) -> str:
    """A decoded JSON value's kind as encoding/json's UnmarshalTypeError names it."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "value")


def unrecognized(kind: str, err: str, raw: bytes) -> errors.APIError:
    """transformDecodeError for a body that named no kind (or could not be read)."""
    return errors.bad_request(f"the object provided is unrecognized (must be of type {kind}): "
                              f"{err} ({summarize_data(raw)})")


def decode_body(raw: bytes, kind: str, yaml_body: bool = False) -> dict:
    """A JSON or YAML body as upstream's serializer decodes it into `kind`, or 400 in
    transformDecodeError's words."""
    if yaml_body:
        try:
            value = loads(raw, yaml_body=True) if raw else None
        except ValueError as exc:
            raise unrecognized(kind, f"error converting YAML to JSON: {exc}", raw) from None
    else:
        try:
            value = loads(raw)
        except ValueError as exc:
            # Go's checkValid words the error when it also refuses the body; what only
            # we refuse (our depth bound, invalid UTF-8) keeps our parser's words.
            syntax = gojson.syntax_error(raw)
            err = f"couldn't get version/kind; json parse error: {syntax}" if syntax else str(exc)
            raise unrecognized(kind, err, raw) from None
    if value is None:
        return {}  # null decodes into the zero object, as in Go
    if not isinstance(value, dict):
        raise unrecognized(kind, "couldn't get version/kind; json parse error: json: cannot "
                                 f"unmarshal {json_kind(value)} into Go value of type "
                                 f"{_FIND_KIND}", raw)
    for key in value:
        if key in ("apiVersion", "kind") and value[key] is not None \
                and not isinstance(value[key], str):
            raise unrecognized(kind, "couldn't get version/kind; json parse error: json: "
                                     f"cannot unmarshal {json_kind(value[key])} into Go "
                                     f"struct field .{key} of type string", raw)
    return value


async def read_body(request: web.Request, kind: str) -> dict:
    """The body decoded for an endpoint whose objects are `kind` (the kind upstream's
    errors name as the one the body must be of)."""
    raw = await read_raw(request)
    # No Content-Type at all means JSON, as upstream's negotiation defaults to it
    # (aiohttp would report application/octet-stream).
    ctype = (request.content_type if "Content-Type" in request.headers else JSON).lower()
    if ctype == protobuf.CONTENT_TYPE:
        if not raw:
            raise unrecognized(kind, "empty body", raw)
        return protobuf.decode(raw)
    if ctype not in (JSON, "application/yaml"):
        raise errors.unsupported_media_type(ctype, BODY_TYPES)
    return decode_body(raw, kind, yaml_body="yaml" in ctype)


# The scheme built-in kinds are registered in, as upstream's errors name it.
SCHEME = "pkg/api/legacyscheme/scheme.go:30"
# Kinds every group version registers besides its resources' (metav1.AddToGroupVersion).
_META_KINDS = frozenset({"Status", "WatchEvent", "ListOptions", "GetOptions", "DeleteOptions",
                         "CreateOptions", "UpdateOptions", "PatchOptions"})


def _registered(api_version: str, kind: str) -> bool:
    if kind in _META_KINDS or resources.by_api_version(api_version, kind) is not None:
        return True
    return kind.endswith("List") and resources.by_api_version(api_version, kind[:-4]) is not None


def _internal_package(group: str) -> str:
    """The Go package of a group's internal types (pkg/apis/<name>)."""
    return "core" if group in ("", "events.k8s.io") else group.split(".")[0]


def check_type(body: dict, res: Resource, kind: str | None = None,
               api_version: str | None = None) -> None:
    """A body's apiVersion/kind must name the endpoint's kind (or be empty)."""
    want_kind, want_gv = kind or res.kind, api_version or res.gv
    got_kind, got_gv = body.get("kind"), body.get("apiVersion")
    if got_kind and got_kind != want_kind and res.custom is None:
        # The codec makes the body's own kind (its apiVersion defaulted to the
        # endpoint's) and cannot convert it into the endpoint's internal type.
        gv = got_gv or want_gv
        version = gv.rpartition("/")[2]
        base = (f"converting ({version}.{got_kind}) to ({_internal_package(res.group)}."
                f"{want_kind}): unknown conversion" if _registered(gv, got_kind) else
                f'no kind "{got_kind}" is registered for version "{gv}" in scheme "{SCHEME}"')
        raise errors.bad_request(f'{got_kind} in version "{version}" cannot be handled as a '
                                 f"{want_kind}: {base}")
    if got_kind and got_kind != want_kind or got_gv and got_gv != want_gv:
        raise errors.bad_request(
            f"the API version in the data ({got_gv}) does not match the expected API version "
            f"({want_gv})" if got_gv and got_gv != want_gv else
            f"the kind in the data ({got_kind}) does not match the expected kind ({want_kind})")


MAX_INT64 = 2 ** 63 - 1


def _go_int(name: str, value: str, parser: str) -> int:
    """A query integer as Go's strconv parses it into an int64, or 400."""
    try:
        number = int(value)
    except ValueError:
        raise errors.bad_request(f'{name}: Invalid value: "{value}": strconv.{parser}: '
                                 f'parsing "{value}": invalid syntax') from None
    if not -MAX_INT64 - 1 <= number <= MAX_INT64 or value.strip() != value or "_" in value:
        raise errors.bad_request(f'{name}: Invalid value: "{value}": strconv.{parser}: '
                                 f'parsing "{value}": value out of range')
    return number


def resource_version(request: web.Request) -> str | None:
    """resourceVersion, validated as an etcd revision ("" and unset mean none)."""
    rv = request.query.get("resourceVersion") or None
    if rv is not None and (not rv.isdigit() or int(rv) > MAX_INT64):
        if rv.isdigit():
            raise errors.bad_request(f'resourceVersion: Invalid value: "{rv}": '
                                     f'strconv.ParseUint: parsing "{rv}": value out of range')
        raise errors.bad_request(f"invalid resource version: {rv}")
    return rv


def list_options(request: web.Request, watch: bool) -> tuple[str | None, str, int]:
    """(resourceVersion, resourceVersionMatch, limit) after upstream's
    ValidateListOptions; 422 Invalid on a bad combination. limit <= 0 means no limit."""
    q = request.query
    rv = resource_version(request)
    match = q.get("resourceVersionMatch") or ""
    cont = q.get("continue") or ""
    initial = q.get("sendInitialEvents")
    limit = _go_int("limit", q["limit"], "ParseInt") if q.get("limit") else 0
    causes: list[errors.FieldError] = []
    field = "resourceVersionMatch"
    if watch:
        if initial is not None and match != "NotOlderThan":
            causes.append(errors.forbidden_field(field, "sendInitialEvents requires setting "
                                                        "resourceVersionMatch to NotOlderThan"))
        if match:
            if initial is None:
                causes.append(errors.forbidden_field(
                    field, "resourceVersionMatch is forbidden for watch unless "
                           "sendInitialEvents is provided"))
            if match != "NotOlderThan":
                causes.append(errors.not_supported(field, match, ["NotOlderThan"]))
            if cont:
                causes.append(errors.forbidden_field(
                    field, "resourceVersionMatch is forbidden when continue is provided"))
    else:
        if match:
            if not rv:
                causes.append(errors.forbidden_field(
                    field, "resourceVersionMatch is forbidden unless resourceVersion is "
                           "provided"))
            if cont:
                causes.append(errors.forbidden_field(
                    field, "resourceVersionMatch is forbidden when continue is provided"))
            if match not in ("Exact", "NotOlderThan"):
                causes.append(errors.not_supported(field, match, ["Exact", "NotOlderThan", ""]))
            if match == "Exact" and rv == "0":
                causes.append(errors.forbidden_field(
                    field, 'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'))
        if initial is not None:
            causes.append(errors.forbidden_field("sendInitialEvents",
                                                 "sendInitialEvents is forbidden for list"))
    if causes:
        raise errors.invalid("ListOptions", "", causes, "meta.k8s.io")
    return rv, match, max(limit, 0)


def query_bool(request: web.Request, name: str) -> bool:
    v = request.query.get(name)
    return v is not None and v.lower() in ("1", "true", "t", "yes", "")


def query_int(request: web.Request, name: str) -> int | None:
    v = request.query.get(name)
    if v in (None, ""):
        return None
    return _go_int(name, v, "ParseInt")


def dry_run(request: web.Request, options: dict | None = None) -> bool:
    """dryRun from the query, or from DeleteOptions in a body (DELETE, Eviction)."""
    values = list(request.query.getall("dryRun", []))
    values += list((options or {}).get("dryRun") or [])
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
