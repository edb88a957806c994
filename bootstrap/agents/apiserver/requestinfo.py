"""Parse a request path and method into the attributes authorization and routing use.

Follows upstream's RequestInfoFactory: /api/v1/... and /apis/<group>/<version>/...
are resource requests; namespaces/<ns>/<plural> scopes by namespace; the verb
comes from the method plus whether a name is present and ?watch=true.
"""

from __future__ import annotations

from dataclasses import dataclass

from bootstrap.api.resources import Resource, by_gvr

_METHOD_VERB = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete",
                "GET": "get", "HEAD": "get"}


@dataclass
class RequestInfo:
    path: str
    verb: str
    resource_request: bool = False
    api_prefix: str = ""
    group: str = ""
    version: str = ""
    namespace: str = ""
    plural: str = ""
    subresource: str = ""
    name: str = ""
    resource: Resource | None = None
    parts: tuple[str, ...] = ()


def _truthy(v: str | None) -> bool:
    return v is not None and v.lower() in ("1", "true", "t", "yes", "y", "")


def parse(method: str, path: str, query) -> RequestInfo:
    parts = [p for p in path.strip("/").split("/") if p]
    info = RequestInfo(path=path, verb=method.lower(), parts=tuple(parts))
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return info
    if parts[0] == "api":
        info.api_prefix, info.group, info.version, rest = "api", "", parts[1], parts[2:]
    else:
        if len(parts) < 4:
            return info
        info.api_prefix, info.group, info.version, rest = "apis", parts[1], parts[2], parts[3:]
    info.resource_request = True
    verb = _METHOD_VERB.get(method, method.lower())
    legacy_watch = False
    if rest and rest[0] == "watch":
        legacy_watch, rest = True, rest[1:]
    if (len(rest) >= 3 and rest[0] == "namespaces"
            and (by_gvr(info.group, info.version, rest[2]) or rest[2] not in
                 ("status", "finalize"))):
        info.namespace = rest[1]
        rest = rest[2:]
    elif len(rest) >= 2 and rest[0] == "namespaces" and info.group == "":
        # /api/v1/namespaces/<name>: the namespace object itself, also its namespace.
        info.namespace = rest[1]
    info.plural = rest[0] if rest else ""
    if len(rest) >= 2:
        info.name = rest[1]
    if len(rest) >= 3:
        info.subresource = rest[2]
    if len(rest) > 3 and info.subresource != "proxy":
        info.resource_request = False
        info.verb = verb
        return info
    if info.name == "" and verb == "get":
        verb = "watch" if legacy_watch or _truthy(query.get("watch")) else "list"
    elif info.name == "" and verb == "delete":
        verb = "deletecollection"
    elif legacy_watch:
        verb = "watch"
    elif verb == "get" and _truthy(query.get("watch")):
        verb = "watch"
    info.verb = verb
    info.resource = by_gvr(info.group, info.version, info.plural)
    return info
