"""Async REST client for the agents (scheduler, controllers, kubelet, proxy).

One aiohttp session per client, TLS with the cluster CA, authenticated by a
client certificate (mTLS) or a bearer token; JSON in and out through orjson.
Failures come back as ``bootstrap.api.errors.APIError`` built from the server's
Status body, so callers branch on ``.code`` / ``.reason`` the way client-go
callers use ``apierrors.IsNotFound``. Reads (GET/list) are retried on connection
errors; writes never are, since a lost response may hide a successful write.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

from bootstrap.api.errors import APIError
from bootstrap.api.resources import Resource, by_gvr

PATCH_TYPES = {
    "json": "application/json-patch+json",
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}
_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
            405: "MethodNotAllowed", 406: "NotAcceptable", 409: "Conflict", 410: "Expired",
            415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests",
            500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}
READ_RETRIES = 3
USER_AGENT = "bootstrap-agent/0.1"

ResourceRef = Resource | tuple[str, str, str]


class KubeconfigError(Exception):
    """The kubeconfig is missing or does not name a usable cluster/user."""


def _resource(ref: ResourceRef) -> Resource:
    if isinstance(ref, Resource):
        return ref
    found = by_gvr(*ref)
    if found is None:
        raise ValueError(f"unknown resource {ref!r}")
    return found


def error_from_response(code: int, body: bytes) -> APIError:
    """APIError from a Status body, or a synthetic one when the body is not a Status."""
    try:
        status = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        status = None
    if isinstance(status, dict) and status.get("kind") == "Status":
        return APIError(int(status.get("code") or code),
                        status.get("reason") or _REASONS.get(code, "Unknown"),
                        status.get("message") or "", status.get("details"))
    text = body.decode(errors="replace").strip() if body else ""
    return APIError(code, _REASONS.get(code, "Unknown"),
                    text or f"the server responded with status {code}")


class Client:
    def __init__(self, server: str, *, ca_file: str | None = None, ca_data: bytes | None = None,
                 cert_file: str | None = None, key_file: str | None = None,
                 cert_data: bytes | None = None, key_data: bytes | None = None,
                 token: str | None = None, token_file: str | None = None,
                 insecure: bool = False, tls_server_name: str | None = None,
                 namespace: str = "default", timeout: float = 30.0,
                 user_agent: str = USER_AGENT):
        self.server = server.rstrip("/")
        self.namespace = namespace
        self._token = token
        self._token_file = token_file
        self._timeout = timeout
        self._user_agent = user_agent
        self._server_hostname = tls_server_name
        self._ssl = self._ssl_context(ca_file, ca_data, cert_file, key_file, cert_data,
                                      key_data, insecure) if server.startswith("https") else None
        self._session: aiohttp.ClientSession | None = None

    # construction ----------------------------------------------------------------

    @staticmethod
    def _ssl_context(ca_file, ca_data, cert_file, key_file, cert_data, key_data,
                     insecure) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if ca_file:
            ctx.load_verify_locations(cafile=ca_file)
        if ca_data:
            ctx.load_verify_locations(cadata=ca_data.decode())
        if cert_file and key_file:
            ctx.load_cert_chain(cert_file, key_file)
        elif cert_data and key_data:
            # ssl only loads key pairs from files: a private 0700 directory that is
            # removed right after loading keeps the key off shared paths.
            with tempfile.TemporaryDirectory(prefix="bootstrap-client-") as tmp:
                cert_path, key_path = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
                for path, data in ((cert_path, cert_data), (key_path, key_data)):
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(data)
                ctx.load_cert_chain(str(cert_path), str(key_path))
        return ctx

    @classmethod
    def from_kubeconfig(cls, path: str | Path, context: str | None = None, **kwargs) -> Client:
        path = Path(path)
        try:
            config = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise KubeconfigError(f"{path}: cannot read kubeconfig: {exc.strerror}") from exc
        base = path.parent

        def named(section: str, name: str) -> dict:
            for item in config.get(section) or []:
                if item.get("name") == name:
                    return item.get(section[:-1]) or {}
            raise KubeconfigError(f"{path}: no {section[:-1]} named {name!r}")

        ctx_name = context or config.get("current-context")
        if not ctx_name:
            raise KubeconfigError(f"{path}: no current-context and no context given")
        ctx = named("contexts", ctx_name)
        cluster = named("clusters", ctx.get("cluster", ""))
        user = named("users", ctx.get("user", "")) if ctx.get("user") else {}

        def file_ref(value: str | None) -> str | None:
            # kubeconfig file references are relative to the kubeconfig's directory.
            return str((base / value).resolve()) if value else None

        def data_ref(value: str | None) -> bytes | None:
            return base64.b64decode(value) if value else None

        if not cluster.get("server"):
            raise KubeconfigError(f"{path}: cluster {ctx.get('cluster')!r} has no server")
        return cls(
            cluster["server"],
            ca_file=file_ref(cluster.get("certificate-authority")),
            ca_data=data_ref(cluster.get("certificate-authority-data")),
            insecure=bool(cluster.get("insecure-skip-tls-verify")),
            tls_server_name=cluster.get("tls-server-name"),
            cert_file=file_ref(user.get("client-certificate")),
            key_file=file_ref(user.get("client-key")),
            cert_data=data_ref(user.get("client-certificate-data")),
            key_data=data_ref(user.get("client-key-data")),
            token=user.get("token"),
            token_file=file_ref(user.get("tokenFile")),
            namespace=ctx.get("namespace") or "default",
            **kwargs,
        )

    @classmethod
    def in_cluster(cls, sa_dir: str | Path = "/var/run/secrets/kubernetes.io/serviceaccount",
                   **kwargs) -> Client:
        """From a pod: KUBERNETES_SERVICE_HOST/PORT and the projected token volume
        (the token file is re-read per request, so rotation needs no restart)."""
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise KubeconfigError("not running in a pod: KUBERNETES_SERVICE_HOST is not set")
        sa_dir = Path(sa_dir)
        if ":" in host:
            host = f"[{host}]"
        namespace = (sa_dir / "namespace").read_text().strip() \
            if (sa_dir / "namespace").exists() else "default"
        return cls(f"https://{host}:{port}", ca_file=str(sa_dir / "ca.crt"),
                   token_file=str(sa_dir / "token"), namespace=namespace, **kwargs)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else False,
                                             limit=100)
            self._session = aiohttp.ClientSession(
                connector=connector, json_serialize=lambda o: orjson.dumps(o).decode(),
                headers={"User-Agent": self._user_agent})
        return self._session

    def _headers(self, extra: dict | None = None) -> dict:
        headers = {"Accept": "application/json"}
        token = self._token
        if self._token_file:
            # Projected tokens rotate on disk; reading per request picks up the new one.
            try:
                token = Path(self._token_file).read_text().strip()
            except OSError:
                pass
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if extra:
            headers.update(extra)
        return headers

    # raw requests ---------------------------------------------------------------

    async def request(self, method: str, path: str, *, params: dict | None = None,
                      body: Any = None, content_type: str = "application/json",
                      headers: dict | None = None, timeout: float | None = None) -> Any:
        """One API call; returns the decoded JSON body (or text for non-JSON bodies)."""
        data = None
        hdrs = self._headers(headers)
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else orjson.dumps(body)
            hdrs["Content-Type"] = content_type
        params = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        attempts = READ_RETRIES if method == "GET" else 1
        for attempt in range(attempts):
            try:
                async with self._get_session().request(
                        method, self.server + path, params=params, data=data, headers=hdrs,
                        server_hostname=self._server_hostname,
                        timeout=aiohttp.ClientTimeout(total=timeout or self._timeout)) as resp:
                    raw = await resp.read()
                    if resp.status >= 400:
                        raise error_from_response(resp.status, raw)
                    if "json" in resp.headers.get("Content-Type", "") and raw:
                        return orjson.loads(raw)
                    return raw.decode(errors="replace")
            except (TimeoutError, aiohttp.ClientConnectionError):
                if attempt + 1 >= attempts:
                    raise
                await asyncio.sleep(0.2 * 2 ** attempt)
        raise AssertionError("unreachable")

    # typed verbs -----------------------------------------------------------------

    def _ns(self, res: Resource, namespace: str | None) -> str | None:
        return (namespace or None) if res.namespaced else None

    async def get(self, resource: ResourceRef, name: str, namespace: str | None = None,
                  *, subresource: str | None = None, params: dict | None = None) -> dict:
        res = _resource(resource)
        return await self.request("GET", res.url(self._ns(res, namespace), name, subresource),
                                  params=params)

    async def list(self, resource: ResourceRef, namespace: str | None = None, *,
                   label_selector: str | None = None, field_selector: str | None = None,
                   limit: int | None = None, continue_: str | None = None,
                   resource_version: str | None = None,
                   resource_version_match: str | None = None) -> dict:
        """One page (or the whole list without ``limit``); ``namespace=None`` lists all
        namespaces of a namespaced resource."""
        res = _resource(resource)
        params = {"labelSelector": label_selector, "fieldSelector": field_selector,
                  "limit": limit, "continue": continue_, "resourceVersion": resource_version,
                  "resourceVersionMatch": resource_version_match}
        return await self.request("GET", res.url(self._ns(res, namespace)), params=params)

    async def list_all(self, resource: ResourceRef, namespace: str | None = None, *,
                       page_size: int = 500, **selectors) -> dict:
        """Every page of a list joined into one List (metadata of the last page)."""
        items: list[dict] = []
        token = None
        while True:
            page = await self.list(resource, namespace, limit=page_size, continue_=token,
                                   **selectors)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                page["items"] = items
                return page

    async def create(self, resource: ResourceRef, obj: dict, namespace: str | None = None, *,
                     subresource: str | None = None, name: str | None = None,
                     dry_run: bool = False, field_manager: str | None = None) -> dict:
        res = _resource(resource)
        ns = self._ns(res, namespace or (obj.get("metadata") or {}).get("namespace"))
        if subresource:
            name = name or (obj.get("metadata") or {}).get("name")
        url = res.url(ns, name if subresource else None, subresource)
        params = {"dryRun": "All" if dry_run else None, "fieldManager": field_manager}
        return await self.request("POST", url, params=params, body=obj)

    async def update(self, resource: ResourceRef, obj: dict, namespace: str | None = None, *,
                     subresource: str | None = None, dry_run: bool = False,
                     field_manager: str | None = None) -> dict:
        res = _resource(resource)
        meta = obj.get("metadata") or {}
        ns = self._ns(res, namespace or meta.get("namespace"))
        params = {"dryRun": "All" if dry_run else None, "fieldManager": field_manager}
        return await self.request("PUT", res.url(ns, meta["name"], subresource), params=params,
                                  body=obj)

    async def patch(self, resource: ResourceRef, name: str, patch: Any,
                    namespace: str | None = None, *, patch_type: str = "strategic",
                    subresource: str | None = None, field_manager: str | None = None,
                    force: bool | None = None, dry_run: bool = False) -> dict:
        res = _resource(resource)
        if patch_type not in PATCH_TYPES:
            raise ValueError(f"patch_type must be one of {', '.join(PATCH_TYPES)}")
        if patch_type == "apply" and not field_manager:
            raise ValueError("server-side apply needs a field_manager")
        params = {"fieldManager": field_manager, "force": force,
                  "dryRun": "All" if dry_run else None}
        return await self.request("PATCH", res.url(self._ns(res, namespace), name, subresource),
                                  params=params, body=patch,
                                  content_type=PATCH_TYPES[patch_type])

    async def delete(self, resource: ResourceRef, name: str, namespace: str | None = None, *,
                     propagation_policy: str | None = None,
                     grace_period_seconds: int | None = None,
                     preconditions: dict | None = None, dry_run: bool = False) -> dict:
        res = _resource(resource)
        body: dict = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        if preconditions:
            body["preconditions"] = preconditions
        if dry_run:
            body["dryRun"] = ["All"]
        return await self.request("DELETE", res.url(self._ns(res, namespace), name), body=body)

    async def watch(self, resource: ResourceRef, namespace: str | None = None, *,
                    resource_version: str | None = None, label_selector: str | None = None,
                    field_selector: str | None = None, timeout_seconds: int | None = None,
                    allow_bookmarks: bool = True,
                    send_initial_events: bool | None = None) -> AsyncIterator[dict]:
        """Yield watch events ``{"type": ADDED|MODIFIED|DELETED|BOOKMARK, "object": ...}``
        until the server ends the stream. An ERROR event raises its Status as APIError
        (410 Expired means: list again)."""
        res = _resource(resource)
        params = {"watch": "true", "resourceVersion": resource_version,
                  "labelSelector": label_selector, "fieldSelector": field_selector,
                  "timeoutSeconds": timeout_seconds,
                  "allowWatchBookmarks": "true" if allow_bookmarks else None,
                  "sendInitialEvents": send_initial_events}
        params = {k: _param(v) for k, v in params.items() if v is not None}
        # No total timeout: the stream lives as long as the server keeps it; a read
        # timeout a bit past timeoutSeconds catches a silently dead connection.
        read_timeout = (timeout_seconds + 30) if timeout_seconds else None
        async with self._get_session().get(
                self.server + res.url(self._ns(res, namespace)), params=params,
                headers=self._headers(), server_hostname=self._server_hostname,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._timeout,
                                              sock_read=read_timeout)) as resp:
            if resp.status >= 400:
                raise error_from_response(resp.status, await resp.read())
            buf = b""
            async for chunk in resp.content.iter_any():
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield _event(line)
            if buf.strip():
                yield _event(buf)


def _event(line: bytes) -> dict:
    event = orjson.loads(line)
    if event.get("type") == "ERROR":
        obj = event.get("object") or {}
        raise APIError(int(obj.get("code") or 500), obj.get("reason") or "InternalError",
                       obj.get("message") or "watch error", obj.get("details"))
    return event


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
