"""Discovery: legacy /api, /apis, per group-version lists, and aggregated discovery v2."""

from __future__ import annotations

import base64
import hashlib

from aiohttp import web

from bootstrap.api import errors
from bootstrap.api.resources import Resource, groups, in_group_version

from . import common

# kind, group, version and verbs each subresource answers with, as upstream.
_SUB = {
    "status": (None, None, None, ("get", "patch", "update")),
    "approval": (None, None, None, ("get", "patch", "update")),
    "scale": ("Scale", "autoscaling", "v1", ("get", "patch", "update")),
    "binding": ("Binding", "", "v1", ("create",)),
    "eviction": ("Eviction", "policy", "v1", ("create",)),
    "log": ("Pod", "", "v1", ("get",)),
    "exec": ("PodExecOptions", "", "v1", ("create", "get")),
    "attach": ("PodAttachOptions", "", "v1", ("create", "get")),
    "portforward": ("PodPortForwardOptions", "", "v1", ("create", "get")),
    "proxy": ("NodeProxyOptions", "", "v1", ("create", "delete", "get", "patch", "update")),
    "token": ("TokenRequest", "authentication.k8s.io", "v1", ("create",)),
    "finalize": ("Namespace", "", "v1", ("update",)),
}

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"


def _storage_hash(res: Resource) -> str:
    # Upstream hashes "<group>/<version>/<kind>" and keeps 8 bytes, base64.
    digest = hashlib.sha256(f"{res.group}/{res.version}/{res.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def _api_resource(res: Resource) -> dict:
    d = {"name": res.plural, "singularName": res.singular, "namespaced": res.namespaced,
         "kind": res.kind, "verbs": list(res.verbs)}
    if res.short_names:
        d["shortNames"] = list(res.short_names)
    if res.categories:
        d["categories"] = list(res.categories)
    if res.stored:
        d["storageVersionHash"] = _storage_hash(res)
    return d


def resource_list(group: str, version: str) -> dict:
    out = []
    for res in in_group_version(group, version):
        out.append(_api_resource(res))
        for sub in res.subresources:
            kind, g, v, verbs = _SUB[sub]
            d = {"name": f"{res.plural}/{sub}", "singularName": "", "namespaced": res.namespaced,
                 "kind": kind or res.kind, "verbs": list(verbs)}
            if g is not None and (g, v) != (res.group, res.version):
                d["group"], d["version"] = g, v
            out.append(d)
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": out}


def _groups(remote=None) -> dict[str, list[str]]:
    """Served group -> versions: ours, then the groups APIServices hand to extension
    servers (``remote``: the server's aggregator), a version once."""
    out = {g: list(v) for g, v in groups().items()}
    for g, versions in (remote.groups() if remote is not None else {}).items():
        mine = out.setdefault(g, [])
        mine.extend(v for v in versions if v not in mine)
    return out


def api_group(name: str, remote=None) -> dict:
    versions = [{"groupVersion": f"{name}/{v}", "version": v} for v in _groups(remote)[name]]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": versions,
            "preferredVersion": versions[0]}


def group_list(remote=None) -> dict:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [{k: v for k, v in api_group(g, remote).items()
                        if k not in ("kind", "apiVersion")}
                       for g in _groups(remote) if g]}


def _aggregated_resource(res: Resource) -> dict:
    d = {"resource": res.plural,
         "responseKind": {"group": res.group, "version": res.version, "kind": res.kind},
         "scope": "Namespaced" if res.namespaced else "Cluster",
         "singularResource": res.singular, "verbs": list(res.verbs)}
    if res.short_names:
        d["shortNames"] = list(res.short_names)
    if res.categories:
        d["categories"] = list(res.categories)
    subs = []
    for sub in res.subresources:
        kind, g, v, verbs = _SUB[sub]
        subs.append({"subresource": sub,
                     "responseKind": {"group": res.group if g is None else g,
                                      "version": res.version if v is None else v,
                                      "kind": kind or res.kind},
                     "verbs": list(verbs)})
    if subs:
        d["subresources"] = subs
    return d


def _aggregated_version(g: str, v: str, remote) -> dict | None:
    target = remote.target(g, v) if remote is not None and g else None
    if target is None:
        return {"version": v, "freshness": "Current",
                "resources": [_aggregated_resource(r) for r in in_group_version(g, v)]}
    doc = remote.resource_list(g, v)
    if doc is None:
        return None  # never fetched: left out until the extension answers, as upstream
    return {"version": v, "freshness": "Current",
            "resources": remote.aggregated_resources(doc)}


def aggregated(core: bool, version: str = "v2", remote=None) -> dict:
    items = []
    for g, versions in _groups(remote).items():
        if bool(g) == core:
            continue
        served = [d for v in versions if (d := _aggregated_version(g, v, remote)) is not None]
        if served:
            items.append({"metadata": {"name": g, "creationTimestamp": None},
                          "versions": served})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": f"apidiscovery.k8s.io/{version}",
            "metadata": {}, "items": items}


def _aggregated_wanted(request: web.Request) -> str | None:
    accept = request.headers.get("Accept", "")
    for part in accept.split(","):
        p = part.replace(" ", "")
        if "as=APIGroupDiscoveryList" in p and "g=apidiscovery.k8s.io" in p:
            if "v=v2beta1" in p:
                return "v2beta1"
            if "v=v2" in p:
                return "v2"
    return None


def handle(server, request: web.Request, parts: list[str]) -> web.Response | None:
    """Discovery documents for paths with at most /apis/<g>/<v>, else None."""
    if parts == ["api"] or parts == ["apis"]:
        version = _aggregated_wanted(request)
        if version:
            body = aggregated(parts == ["api"], version, server.aggregator)
            ctype = AGGREGATED_V2 if version == "v2" else AGGREGATED_V2BETA1
            resp = common.json_response(body)
            resp.headers["Content-Type"] = ctype
            return resp
        if parts == ["api"]:
            return common.json_response({
                "kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                "serverAddress": server.advertise}]})
        return common.json_response(group_list(server.aggregator))
    if len(parts) == 2 and parts[0] == "api":
        if parts[1] != "v1":
            raise errors.APIError(404, "NotFound", "the server could not find the requested "
                                                   "resource")
        return common.json_response(resource_list("", "v1"))
    if len(parts) == 2 and parts[0] == "apis":
        if parts[1] not in _groups(server.aggregator):
            raise errors.APIError(404, "NotFound", "the server could not find the requested "
                                                   "resource")
        return common.json_response(api_group(parts[1], server.aggregator))
    if len(parts) == 3 and parts[0] == "apis":
        if parts[2] not in groups().get(parts[1], []) or not parts[1]:
            raise errors.APIError(404, "NotFound", "the server could not find the requested "
                                                   "resource")
        return common.json_response(resource_list(parts[1], parts[2]))
    return None
