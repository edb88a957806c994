"""kube-system/extension-apiserver-authentication: how extension servers trust us.

Upstream's ClusterAuthenticationTrustController publishes the client CA and the
request-header (front-proxy) settings in this ConfigMap, and extension API
servers (metrics-server, the sample apiserver) read it, through the
``extension-apiserver-authentication-reader`` Role, to authenticate the
aggregator's proxied requests. Written at start by the primary process, replaced
when the flags changed.
"""

from __future__ import annotations

import json
from pathlib import Path

from bootstrap.api import errors
from bootstrap.api.resources import by_gvr

NAMESPACE, NAME = "kube-system", "extension-apiserver-authentication"
CONFIGMAPS = by_gvr("", "v1", "configmaps")


def data(cfg) -> dict[str, str]:
    """The ConfigMap's data for these flags (upstream's keys; lists as JSON arrays)."""
    out: dict[str, str] = {}
    if cfg.client_ca_file:
        out["client-ca-file"] = Path(cfg.client_ca_file).read_text()
    if cfg.requestheader_client_ca_file:
        out["requestheader-client-ca-file"] = Path(cfg.requestheader_client_ca_file).read_text()
        for key, values in (("username-headers", cfg.requestheader_username_headers),
                            ("group-headers", cfg.requestheader_group_headers),
                            ("extra-headers-prefix", cfg.requestheader_extra_headers_prefix),
                            ("allowed-names", cfg.requestheader_allowed_names)):
            out[f"requestheader-{key}"] = json.dumps(list(values))
        if cfg.requestheader_uid_headers:
            out["requestheader-uid-headers"] = json.dumps(list(cfg.requestheader_uid_headers))
    return out


async def publish(server) -> None:
    wanted = data(server.cfg)
    if not wanted:
        return
    ctx = server.system_ctx()
    try:
        await server.registry.create(CONFIGMAPS, NAMESPACE, {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": NAME, "namespace": NAMESPACE}, "data": wanted}, ctx)
        return
    except errors.APIError as exc:
        if exc.code != 409:
            raise

    async def compute(current: dict) -> dict:
        current["data"] = wanted
        return current

    await server.registry.update(CONFIGMAPS, NAMESPACE, NAME, compute, ctx)
