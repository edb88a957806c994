"""The API server process: wiring of storage, auth, admission and the HTTP app."""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

from aiohttp import web

from bootstrap.api import agentserver, errors, openapi, tlsconfig
from bootstrap.api.resources import CATALOGUE, Resource

from . import admission, app, bootstrap_objects, webhooks
from .aggregator import Aggregator
from .auth import escalation
from .auth.authn import MASTERS, Authenticator, UserInfo
from .auth.authz import Authorizer
from .auth.requestheader import RequestHeaderAuthenticator
from .crds import CRDController
from .endpoints import EndpointReconciler
from .flags import Config
from .metrics import Metrics
from .registry import Ctx, Registry
from .storage import alloc, encryption
from .storage.etcd import Etcd
from .storage.store import Store

log = logging.getLogger(__name__)

ETCD_START_TIMEOUT = 20.0
SYSTEM_USER = UserInfo(name="system:apiserver", groups=[MASTERS, "system:authenticated"])
# The storage version of each plural (core Events, not events.k8s.io's view of them).
_BY_PLURAL = {r.plural: r for r in reversed(CATALOGUE) if r.stored and not r.stored_as}


class AuthStore:
    """The read-only view AUTH's modules take: served from the watch caches."""

    def __init__(self, store: Store):
        self.store = store

    async def get(self, resource_plural: str, namespace: str | None, name: str) -> dict | None:
        res = _BY_PLURAL[resource_plural]
        obj = self.store.cache(res).get(res.key(namespace, name))
        if obj is None:
            # A miss may be a write the cache has not seen yet (a namespace created a
            # moment ago): confirm with a quorum read, as upstream's live lookup does.
            obj = await self.store.get_or_none(res, namespace, name)
        return obj

    async def list(self, resource_plural: str, namespace: str | None = None) -> list[dict]:
        res = _BY_PLURAL[resource_plural]
        items, _ = self.store.cache(res).list()
        if namespace and res.namespaced:
            items = [o for o in items if o["metadata"].get("namespace") == namespace]
        return items

    async def list_fresh(self, resource_plural: str, namespace: str | None = None
                         ) -> list[dict]:
        """A quorum list from etcd, for admission plugins that must not miss an object
        the cache has not seen yet (upstream's live lookups)."""
        res = _BY_PLURAL[resource_plural]
        items, _, _, _ = await self.store.list(res, namespace)
        return items

    async def write_if_unchanged(self, resource_plural: str, obj: dict) -> dict | None:
        """Write ``obj`` back if its resourceVersion is still the stored one (ResourceQuota
        admission charging usage); None when someone wrote first."""
        return await self.store.compare_and_put(_BY_PLURAL[resource_plural], obj)


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


class Server:
    def __init__(self, cfg: Config, *, primary: bool = True):
        self.cfg = cfg
        # With --processes > 1 every process serves; only the primary runs the
        # process-wide singletons (they are idempotent, but N copies are just load).
        self.primary = primary
        self.metrics = Metrics()
        self.etcd = Etcd(cfg.etcd_servers, _read(cfg.etcd_cafile), _read(cfg.etcd_certfile),
                         _read(cfg.etcd_keyfile), metrics=self.metrics)
        self.store = Store(self.etcd, encryption.load(cfg.encryption_provider_config))
        self.auth_store = AuthStore(self.store)
        self.allocator = alloc.Allocator(self.etcd, cfg.service_cluster_ip_range)
        self.registry = Registry(self.store, self.allocator, self._admit)
        from .serviceaccount import load_public_keys, load_signing_key
        self.sa_keys = load_public_keys(cfg.service_account_key_files) \
            if cfg.service_account_key_files else []
        self.sa_signing_key = load_signing_key(cfg.service_account_signing_key_file) \
            if cfg.service_account_signing_key_file else None
        self.sa_issuer = cfg.service_account_issuer[0]
        self.authenticator = Authenticator(
            cfg.client_ca_file, self.sa_keys, cfg.service_account_issuer,
            cfg.enable_bootstrap_token_auth, cfg.anonymous_auth, self.auth_store,
            api_audiences=cfg.api_audiences or None,
            request_header=RequestHeaderAuthenticator(
                cfg.requestheader_client_ca_file, cfg.requestheader_allowed_names,
                cfg.requestheader_username_headers, cfg.requestheader_uid_headers,
                cfg.requestheader_group_headers, cfg.requestheader_extra_headers_prefix)
            if cfg.requestheader_client_ca_file else None)
        self.api_audiences = self.authenticator.audiences
        self.authorizer = Authorizer(cfg.authorization_mode, self.auth_store)
        self.audit = None
        if cfg.audit_log_path:
            from .audit import AuditLogger
            self.audit = AuditLogger(cfg.audit_log_path, max_size_mb=cfg.audit_log_maxsize,
                                     max_backups=cfg.audit_log_maxbackup,
                                     max_age_days=cfg.audit_log_maxage)
        self.advertise_ip = cfg.advertise_address or (
            cfg.bind_address if cfg.bind_address not in ("0.0.0.0", "::") else "127.0.0.1")
        self.advertise = f"{self.advertise_ip}:{cfg.secure_port}"
        self.runner: web.AppRunner | None = None
        # Set on SIGTERM: /readyz fails from then on (upstream's ShutdownInitiated).
        self.shutting_down = False
        self._endpoint_removed = False
        self._endpoint_task: asyncio.Task | None = None
        self.port = cfg.secure_port
        self._tasks: list[asyncio.Task] = []
        self._kubelet_ssl: ssl.SSLContext | None = None
        self.endpoints = EndpointReconciler(self)
        self.crds = CRDController(self)
        self.aggregator = Aggregator(self)

    async def _admit(self, op: str, res: Resource, obj: dict | None, old: dict | None,
                     ctx: Ctx) -> dict | None:
        if not res.stored:
            return obj
        await escalation.check(op, res.plural, res.group, obj, ctx.user or SYSTEM_USER,
                               self.authorizer)
        return await admission.admit(op, res, obj if op != "DELETE" else None, old,
                                     ctx.user or SYSTEM_USER, self.auth_store,
                                     subresource=ctx.subresource, authorizer=self.authorizer,
                                     enabled=self.cfg.admission_plugins, dry_run=ctx.dry_run,
                                     warnings=ctx.warnings, annotations=ctx.audit_annotations)

    def kubelet_ssl_context(self) -> ssl.SSLContext | None:
        if self._kubelet_ssl is None and self.cfg.kubelet_client_certificate:
            ctx = ssl.create_default_context(
                cafile=self.cfg.kubelet_certificate_authority or None)
            if not self.cfg.kubelet_certificate_authority:
                # Upstream also skips kubelet serving-cert checks without a CA flag.
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            ctx.load_cert_chain(self.cfg.kubelet_client_certificate,
                                self.cfg.kubelet_client_key)
            self._kubelet_ssl = ctx
        return self._kubelet_ssl

    def ssl_context(self) -> ssl.SSLContext:
        """The secure port is always TLS: without --tls-cert-file a self-signed
        certificate is made under --cert-dir (and reused), as upstream does."""
        cfg = self.cfg
        ctx = agentserver.serving_context("apiserver", cfg.bind_address, cfg.tls_cert_file,
                                          cfg.tls_private_key_file, cfg.cert_dir,
                                          cfg.client_ca_file,
                                          cfg.requestheader_client_ca_file)
        tlsconfig.apply(ctx, cfg.tls_cipher_suites, cfg.tls_min_version)
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    async def start(self) -> None:
        await self.etcd.connect()
        await self._wait_for_etcd(ETCD_START_TIMEOUT)
        await self.store.start(compact=self.primary)
        # Established CRDs are served before the first request, then kept live.
        await self.crds.sync_all()
        self.crds.start()
        self.aggregator.start()
        if self.primary:
            await bootstrap_objects.ensure(self)
            await self.endpoints.start()
            self._endpoint_task = asyncio.create_task(self.endpoints.run())
            self._tasks.append(self._endpoint_task)
        # In a worker thread: the event loop keeps serving while the documents build.
        self._tasks.append(asyncio.create_task(asyncio.to_thread(openapi.warm)))
        application = app.build(self)
        application.on_response_prepare.append(self._close_when_shutting_down)
        application.on_shutdown.append(self._end_watches)
        # keepalive_timeout also closes a connection that never finishes its request
        # headers: aiohttp drops a handler still waiting for its first message.
        # shutdown_timeout: requests in flight when the listener closes get as long as
        # any request may take (upstream waits for them too), then are cancelled.
        self.runner = web.AppRunner(application, handle_signals=False, access_log=None,
                                    shutdown_timeout=self.cfg.request_timeout,
                                    keepalive_timeout=self.cfg.idle_connection_timeout)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.cfg.bind_address, self.cfg.secure_port,
                           ssl_context=self.ssl_context(), reuse_address=True,
                           reuse_port=self.cfg.processes > 1)
        await site.start()
        log.info("serving on %s:%s", self.cfg.bind_address, self.cfg.secure_port)

    async def _wait_for_etcd(self, timeout: float) -> None:
        # etcd often starts alongside us (stacked control plane): give it a moment.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                await asyncio.wait_for(self.etcd.status(), 5)
                return
            except (TimeoutError, errors.APIError) as exc:
                if loop.time() >= deadline:
                    raise RuntimeError(f"cannot reach etcd at "
                                       f"{','.join(self.cfg.etcd_servers)}: {exc}") from None
                await asyncio.sleep(0.5)

    async def shutdown(self, delay: float) -> None:
        """Upstream's graceful termination, before ``stop``: /readyz fails at once and
        every response asks its client to reconnect (Connection: close), so a load
        balancer takes this server out and keep-alive clients move to another one,
        while it keeps serving for ``delay`` seconds (--shutdown-delay-duration)."""
        self.shutting_down = True
        log.info("shutdown initiated; serving for %gs more", delay)
        # As upstream at ShutdownInitiated: in-cluster clients of the kubernetes
        # Service stop being sent here while we still answer.
        await self._remove_endpoint()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _remove_endpoint(self) -> None:
        if self.runner is None or not self.primary or self._endpoint_removed:
            return
        self._endpoint_removed = True
        if self._endpoint_task is not None:
            self._endpoint_task.cancel()  # it would put the lease back
        try:
            await asyncio.wait_for(self.endpoints.stop(), 3)
        except Exception as exc:  # our lease expires by itself within its TTL
            log.warning("could not remove our endpoint: %s", exc)

    async def _close_when_shutting_down(self, request: web.Request,
                                        response: web.StreamResponse) -> None:
        if self.shutting_down:
            # The hook runs after aiohttp chose the Connection header: set both.
            response.force_close()
            response.headers["Connection"] = "close"

    async def _end_watches(self, application: web.Application) -> None:
        # The listener is closed by now: watch streams end with a proper last chunk
        # (the client re-watches from its resourceVersion elsewhere) instead of being
        # cut when the in-flight wait runs out.
        for cache in self.store.caches.values():
            for watcher in list(cache.watchers):
                watcher.push(None)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await self._remove_endpoint()
        if self.runner is not None:
            await self.runner.cleanup()
        await self.crds.stop()
        await self.aggregator.stop()
        await webhooks.close()
        await self.store.stop()
        await self.etcd.close()
        if self.audit is not None:
            self.audit.close()

    def system_ctx(self) -> Ctx:
        return Ctx(user=SYSTEM_USER, field_manager="kube-apiserver",
                   field_validation="Ignore")
