"""The kube-proxy process: informers -> proxier -> rate-limited syncer, plus the
node routes controller, /healthz and /metrics."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import logging
import socket

from bootstrap.agents.proxy import rules
from bootstrap.agents.proxy.config import ProxyConfig
from bootstrap.agents.proxy.iptables import Runner
from bootstrap.agents.proxy.proxier import Proxier
from bootstrap.agents.proxy.routes import NodeRoutes, internal_ip
from bootstrap.agents.proxy.server import Health, Metrics, healthz_app, metrics_app, serve
from bootstrap.agents.proxy.syncer import SyncRunner
from bootstrap.api.client import Client
from bootstrap.api.controller import Controller
from bootstrap.api.informer import SharedInformerFactory

log = logging.getLogger("bootstrap.kube-proxy")

SERVICES = ("", "v1", "services")
SLICES = ("discovery.k8s.io", "v1", "endpointslices")
NODES = ("", "v1", "nodes")
# Upstream kube-proxy's informer filter: services of other proxies, and the
# slices of headless services, are never its business.
SELECTOR = "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless"
NODES_KEY = "nodes"


class NodeRoutesController(Controller):
    """One key for the whole node set: any Node change re-plans all routes."""
    name = "node-routes"

    def __init__(self, client, factory, recorder=None, *, routes: NodeRoutes):
        super().__init__(client, factory, recorder)
        self.routes = routes
        self.nodes = factory.informer(NODES)
        self.nodes.add_handler(on_add=self._changed, on_update=lambda _o, _n: self._changed(),
                               on_delete=self._changed)

    def _changed(self, *_):
        self.enqueue(NODES_KEY)

    async def reconcile(self, key: str) -> float | None:
        cmds = await asyncio.to_thread(self.routes.reconcile, self.nodes.list())
        for cmd in cmds:
            log.info("node routes: %s", " ".join(cmd))
        return None


def local_addresses(runner: Runner) -> list[str]:
    out = runner.run(["ip", "-j", "-4", "addr", "show"]).stdout
    return [a["local"] for link in json.loads(out or "[]") for a in link.get("addr_info", [])
            if a.get("family") == "inet"]


def nodeport_ips(cfg: ProxyConfig, runner: Runner, node: dict | None) -> tuple[str, ...] | None:
    """nodePortAddresses -> the local IPs NodePorts answer on (None: all of them)."""
    if not cfg.nodeport_addresses:
        return None
    ips = []
    nets = [ipaddress.ip_network(c) for c in cfg.nodeport_addresses if c != "primary"]
    for ip in local_addresses(runner):
        if any(ipaddress.ip_address(ip) in n for n in nets):
            ips.append(ip)
    if "primary" in cfg.nodeport_addresses and node is not None and internal_ip(node):
        ips.append(internal_ip(node))
    return tuple(dict.fromkeys(ips))


class ProxyServer:
    def __init__(self, cfg: ProxyConfig, client: Client, runner: Runner | None = None):
        self.cfg = cfg
        self.client = client
        self.runner = runner or Runner()
        self.node_name = cfg.hostname_override or socket.gethostname()
        self.opts = rules.Options(masquerade_bit=cfg.masquerade_bit,
                                  masquerade_all=cfg.masquerade_all,
                                  cluster_cidr=cfg.cluster_cidr,
                                  localhost_nodeports=cfg.localhost_nodeports,
                                  conntrack_tcp_liberal=cfg.conntrack_tcp_be_liberal)
        self.proxier = Proxier(self.node_name, self.opts, self.runner)
        self.metrics = Metrics()
        self.health = Health(2 * cfg.sync_period)
        self.syncer = SyncRunner(self._sync, cfg.min_sync_period, cfg.sync_period)
        self.factory = SharedInformerFactory(client)

    async def _sync(self, full: bool) -> None:
        if not self.proxier.ready:
            return       # never write rules from a half-filled cache
        plan = self.proxier.prepare(force_full=full)
        try:
            text = await asyncio.to_thread(self.proxier.apply, plan)
        except Exception:
            self.proxier.finish(plan, False)
            self.metrics.restore_failures.inc()
            raise
        self.proxier.finish(plan, True)
        seconds = self.proxier.clock() - plan.start
        self.metrics.observe(plan.full, seconds, text)
        self.health.updated()
        log.debug("synced %s: %d services in %.3fs", "fully" if plan.full else "partially",
                  plan.services, seconds)

    def _changed(self, fn):
        def handler(*objs):
            fn(objs[-1])
            self.health.queued()
            self.syncer.request()
        return handler

    def wire(self) -> None:
        p = self.proxier
        svcs = self.factory.informer(SERVICES, label_selector=SELECTOR)
        slices = self.factory.informer(SLICES, label_selector=SELECTOR)
        svcs.add_handler(self._changed(p.on_service), self._changed(p.on_service),
                         self._changed(p.on_service_delete))
        slices.add_handler(self._changed(p.on_slice), self._changed(p.on_slice),
                           self._changed(p.on_slice_delete))

    async def _resolve_nodeport_addresses(self) -> None:
        """nodePortAddresses -> IPs, once at start (``primary`` needs our Node)."""
        if not self.cfg.nodeport_addresses:
            return
        node = None
        if "primary" in self.cfg.nodeport_addresses:
            try:
                node = await self.client.get(NODES, self.node_name)
            except Exception as exc:   # no Node yet: the CIDRs still apply
                log.warning("nodePortAddresses primary: cannot read Node %s: %s",
                            self.node_name, exc)
        ips = await asyncio.to_thread(nodeport_ips, self.cfg, self.runner, node)
        self.opts = dataclasses.replace(self.opts, nodeport_ips=ips)
        self.proxier.opts = self.opts
        log.info("NodePorts answer on %s", ", ".join(ips) or "no address")

    async def run(self) -> None:
        self._sysctls()
        await self._resolve_nodeport_addresses()
        self.wire()
        controllers = []
        if self.cfg.pod_routes:
            routes = NodeRoutes(self.node_name, self.runner, self.cfg.cluster_cidr,
                                self.cfg.non_masquerade_cidrs)
            controllers.append(NodeRoutesController(self.client, self.factory, routes=routes))
        servers = []
        if self.cfg.healthz_bind_address:
            servers.append(await serve(healthz_app(self.health), self.cfg.healthz_bind_address))
        if self.cfg.metrics_bind_address:
            servers.append(await serve(metrics_app(self.metrics.registry),
                                       self.cfg.metrics_bind_address))
        self.factory.start()
        tasks = [asyncio.create_task(self.syncer.run(), name="proxy-syncer")]
        try:
            await self.factory.wait_synced()
            self.proxier.services_synced = self.proxier.slices_synced = True
            log.info("caches synced; programming iptables for node %s", self.node_name)
            self.syncer.request()
            tasks += [asyncio.create_task(c.run(), name=c.name) for c in controllers]
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.factory.stop()
            for s in servers:
                await s.cleanup()

    def _sysctls(self) -> None:
        if self.cfg.localhost_nodeports:
            # NodePorts on 127.0.0.1 are DNATed off the loopback: upstream sets this.
            self.runner.sysctl("net.ipv4.conf.all.route_localnet", "1")
        # Bridged pod traffic must traverse iptables for ClusterIPs between pods
        # on one node; the module may be absent (then the sysctl is too).
        self.runner.run(["modprobe", "br_netfilter"], check=False)
        try:
            self.runner.sysctl("net.bridge.bridge-nf-call-iptables", "1")
        except Exception as exc:
            log.warning("cannot set net.bridge.bridge-nf-call-iptables: %s", exc)
