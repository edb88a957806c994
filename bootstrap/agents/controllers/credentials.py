"""--use-service-account-credentials: each controller writes as its own service account
(system:serviceaccount:kube-system:<name>), as upstream's SA client builder.

The manager's own credentials create the ServiceAccount when missing and ask the
TokenRequest API for a bound token; the token lives in a private file the
controller's Client re-reads per request, and is renewed at 80% of its lifetime.
Informers keep the manager's credentials (upstream's shared informers do too).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import shutil
import tempfile
from pathlib import Path

import yaml

from bootstrap.api.client import Client
from bootstrap.api.errors import APIError
from bootstrap.api.resources import by_gvr

log = logging.getLogger(__name__)

SERVICE_ACCOUNTS = by_gvr("", "v1", "serviceaccounts")
NAMESPACE = "kube-system"
TOKEN_SECONDS = 3600
RENEW_FRACTION = 0.8


def _cluster_of(kubeconfig: str) -> dict:
    """The current context's cluster entry (server, CA), without the user part."""
    path = Path(kubeconfig)
    config = yaml.safe_load(path.read_text()) or {}
    ctx_name = config.get("current-context")
    ctx = next((c.get("context") or {} for c in config.get("contexts") or []
                if c.get("name") == ctx_name), {})
    cluster = next((c.get("cluster") or {} for c in config.get("clusters") or []
                    if c.get("name") == ctx.get("cluster")), {})
    out = {"server": cluster.get("server", ""),
           "insecure": bool(cluster.get("insecure-skip-tls-verify")),
           "tls_server_name": cluster.get("tls-server-name")}
    if cluster.get("certificate-authority-data"):
        out["ca_data"] = base64.b64decode(cluster["certificate-authority-data"])
    elif cluster.get("certificate-authority"):
        out["ca_file"] = str((path.parent / cluster["certificate-authority"]).resolve())
    return out


class ServiceAccountClients:
    def __init__(self, root: Client, kubeconfig: str | None):
        self.root = root
        if kubeconfig:
            self._cluster = _cluster_of(kubeconfig)
        else:  # in cluster: the mounted CA
            self._cluster = {"server": root.server,
                             "ca_file": "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"}
        self._cluster["server"] = root.server
        self._dir = Path(tempfile.mkdtemp(prefix="controller-tokens-"))
        os.chmod(self._dir, 0o700)
        self._clients: dict[str, Client] = {}
        self._tasks: list[asyncio.Task] = []

    async def client(self, sa: str) -> Client:
        if sa in self._clients:
            return self._clients[sa]
        await self._ensure_account(sa)
        path = self._dir / sa
        seconds = await self._refresh(sa, path)
        c = Client(token_file=str(path), **self._cluster)
        self._clients[sa] = c
        self._tasks.append(asyncio.create_task(self._renew(sa, path, seconds),
                                               name=f"token-{sa}"))
        return c

    async def _ensure_account(self, sa: str) -> None:
        try:
            await self.root.create(SERVICE_ACCOUNTS, {
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": sa, "namespace": NAMESPACE}}, NAMESPACE)
        except APIError as exc:
            if exc.code != 409:
                raise

    async def _refresh(self, sa: str, path: Path) -> float:
        review = await self.root.create(
            SERVICE_ACCOUNTS, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                               "spec": {"expirationSeconds": TOKEN_SECONDS}},
            NAMESPACE, subresource="token", name=sa)
        tmp = path.with_suffix(".new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(review["status"]["token"])
        os.replace(tmp, path)
        return float((review.get("spec") or {}).get("expirationSeconds") or TOKEN_SECONDS)

    async def _renew(self, sa: str, path: Path, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds * RENEW_FRACTION)
            try:
                try:
                    seconds = await self._refresh(sa, path)
                except APIError as exc:
                    if exc.code != 404:
                        raise
                    # Someone deleted the account (its tokens died with it): make it again.
                    await self._ensure_account(sa)
                    seconds = await self._refresh(sa, path)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # retried soon; the old token may still be valid
                log.warning("renewing the token of %s: %s", sa, exc)
                seconds = 30.0 / RENEW_FRACTION

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for c in self._clients.values():
            await c.close()
        shutil.rmtree(self._dir, ignore_errors=True)
