"""The bootstrap-dns process: informers -> Index -> DNS listeners, plus
/healthz, /ready and /metrics, and (optionally) its own kube-dns endpoint."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import socket

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bootstrap.agents.dns.forward import Forwarder, read_resolv_conf
from bootstrap.agents.dns.records import SERVICE_NAME_LABEL, Index, service_records
from bootstrap.agents.dns.registration import Registration
from bootstrap.agents.dns.resolve import Resolver
from bootstrap.agents.dns.server import DNSHandler, DNSServer, Metrics
from bootstrap.api.agent import add_version_flag
from bootstrap.api.informer import SharedInformerFactory
from bootstrap.config.duration import parse_duration
from bootstrap.errors import UserError

log = logging.getLogger("bootstrap.dns")
SERVICES = ("", "v1", "services")
SLICES = ("discovery.k8s.io", "v1", "endpointslices")
BY_SERVICE = "service"


def _slice_service(obj: dict) -> list[str]:
    md = obj.get("metadata") or {}
    name = (md.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return [f"{md.get('namespace', 'default')}/{name}"] if name else []


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UserError(message, where=self.prog, hint=f"see {self.prog} --help")


def host_port(value: str, where: str, default_port: int | None = None) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep and default_port is not None:
        host, port = value, str(default_port)
    try:
        ipaddress.ip_address(host.strip("[]"))
        number = int(port)
        if not 0 <= number <= 65535:
            raise ValueError
    except ValueError:
        raise UserError(f"invalid address {value!r}", where=where,
                        hint="use IP:port, for example 10.0.0.2:53") from None
    return host.strip("[]"), number


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="bootstrap-dns", description="cluster DNS for Services and Pods")
    add_version_flag(p)
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--cluster-domain", default="cluster.local")
    p.add_argument("--listen", action="append", default=[],
                   help="IP:port to serve DNS on, UDP and TCP (repeatable; default 0.0.0.0:53)")
    p.add_argument("--resolv-conf", default="/etc/resolv.conf",
                   help="where the upstream resolvers for other names are read")
    p.add_argument("--forward-timeout", default="2s")
    p.add_argument("--health-address", default="0.0.0.0:8080",
                   help="IP:port for /healthz and /ready")
    p.add_argument("--metrics-address", default="0.0.0.0:9153", help="IP:port for /metrics")
    p.add_argument("--node-name", default="", help="this node's name (default: the hostname)")
    p.add_argument("--register-address", default="",
                   help="publish this IP as an endpoint of the DNS Service (empty: do not)")
    p.add_argument("--service-namespace", default="kube-system")
    p.add_argument("--service-name", default="kube-dns")
    p.add_argument("--service-cluster-ip", default="",
                   help="also apply the selector-less DNS Service with this ClusterIP")
    p.add_argument("-v", "--v", type=int, default=0, dest="verbosity")
    return p


class DNSApp:
    def __init__(self, args: argparse.Namespace, client):
        self.args = args
        self.client = client
        self.listen = [host_port(a, "--listen", 53) for a in (args.listen or ["0.0.0.0:53"])]
        self.index = Index(args.cluster_domain)
        self.factory = SharedInformerFactory(client)
        self.services = self.factory.informer(SERVICES)
        self.slices = self.factory.informer(SLICES)
        self.slices.add_indexers({BY_SERVICE: _slice_service})
        exclude = {f"{h}:{p}" for h, p in self.listen}
        if args.service_cluster_ip:      # our own Service IP DNATs back to us
            exclude.add(f"{args.service_cluster_ip}:53")
        upstreams = read_resolv_conf(args.resolv_conf, exclude)
        timeout = parse_duration(args.forward_timeout).total_seconds()
        self.metrics = Metrics()
        self.handler = DNSHandler(Resolver(self.index),
                                  Forwarder(upstreams, timeout), self.metrics)
        self.server = DNSServer(self.handler)
        self.registration = None
        if args.register_address:
            port = self.listen[0][1]
            metrics_port = host_port(args.metrics_address, "--metrics-address")[1]
            self.registration = Registration(
                client, args.service_namespace, args.service_name,
                args.node_name or socket.gethostname(), args.register_address,
                cluster_ip=args.service_cluster_ip, dns_port=port, metrics_port=metrics_port)
        self.synced = False

    def _refresh(self, namespace: str, name: str) -> None:
        svc = self.services.get(name, namespace)
        if svc is None:
            self.index.remove(namespace, name)
            return
        slices = self.slices.indexer.by_index(BY_SERVICE, f"{namespace}/{name}")
        self.index.put(service_records(svc, slices))

    def _on_service(self, *objs) -> None:
        md = objs[-1]["metadata"]
        self._refresh(md.get("namespace", "default"), md["name"])

    def _on_slice(self, *objs) -> None:
        md = objs[-1]["metadata"]
        name = (md.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if name:
            self._refresh(md.get("namespace", "default"), name)

    def wire(self) -> None:
        self.services.add_handler(self._on_service, self._on_service, self._on_service)
        self.slices.add_handler(self._on_slice, self._on_slice, self._on_slice)

    def http_apps(self) -> tuple[web.Application, web.Application]:
        async def healthz(_r):
            return web.Response(text="ok")

        async def ready(_r):
            return web.Response(text="ok") if self.synced else \
                web.Response(status=503, text="informers not synced")

        async def metrics(_r):
            return web.Response(body=generate_latest(self.metrics.registry),
                                headers={"Content-Type": CONTENT_TYPE_LATEST})
        health = web.Application()
        health.router.add_get("/healthz", healthz)
        health.router.add_get("/health", healthz)
        health.router.add_get("/ready", ready)
        mets = web.Application()
        mets.router.add_get("/metrics", metrics)
        return health, mets

    async def run(self) -> None:
        self.wire()
        runners = []
        for app, address in zip(self.http_apps(), (self.args.health_address,
                                                    self.args.metrics_address), strict=True):
            host, port = host_port(address, "--health-address/--metrics-address")
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, host, port).start()
            runners.append(runner)
        await self.server.start(self.listen)
        log.info("serving DNS for %s on %s", self.index.domain,
                 ", ".join(f"{h}:{p}" for h, p in self.listen))
        self.factory.start()
        try:
            if self.registration is not None:
                await self.registration.ensure_service()
                await self.registration.publish(ready=False)
            await self.factory.wait_synced()
            self.synced = True
            if self.registration is not None:
                await self.registration.publish(ready=True)
            await asyncio.Event().wait()
        finally:
            self.synced = False
            if self.registration is not None:
                try:
                    await asyncio.wait_for(self.registration.withdraw(), 5)
                except Exception as exc:  # stopping anyway; the next start repairs it
                    log.warning("could not remove our endpoint: %s", exc)
            await self.server.stop()
            await self.factory.stop()
            for r in runners:
                await r.cleanup()
