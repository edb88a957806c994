"""kube-proxy against the real API server, programming real iptables in a
throwaway network namespace (never the machine's own tables): traffic to a
ClusterIP and a NodePort reaches a local HTTP endpoint through the DNAT rules,
a Service without endpoints is rejected, node routes follow Node objects, and
cleanup leaves no chain and no route behind. Needs root."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import urllib.request

import pytest

from bootstrap.agents.proxy.app import ProxyServer
from bootstrap.agents.proxy.config import ProxyConfig
from bootstrap.agents.proxy.iptables import Runner
from bootstrap.agents.proxy.routes import NodeRoutes
from bootstrap.api.client import Client

from .cluster import eventually, free_port, running_cluster

pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")]
NS = f"pxit{os.getpid()}"
EP_IP, NODE_IP = "10.244.1.10", "10.88.0.2"


def sh(*argv, check=True, input=None):
    return subprocess.run(argv, check=check, capture_output=True, text=True, input=input,
                          timeout=30)


def inns(*argv, check=True):
    return sh("ip", "netns", "exec", NS, *argv, check=check)


@pytest.fixture(scope="module")
def netns():
    sh("ip", "netns", "add", NS)
    server = None
    try:
        inns("ip", "link", "set", "lo", "up")
        # No dummy module on this kind of machine: a veth pair inside the namespace.
        inns("ip", "link", "add", "dummy0", "type", "veth", "peer", "name", "dummy1")
        inns("ip", "link", "set", "dummy1", "up")
        inns("ip", "addr", "add", f"{NODE_IP}/24", "dev", "dummy0")
        inns("ip", "addr", "add", f"{EP_IP}/32", "dev", "dummy0")
        inns("ip", "link", "set", "dummy0", "up")
        # The service range needs a route for the first routing decision (DNAT
        # in OUTPUT happens after it), as a node's default route provides.
        inns("ip", "route", "add", "10.96.0.0/12", "dev", "dummy0")
        server = subprocess.Popen(["ip", "netns", "exec", NS, sys.executable, "-m",
                                   "http.server", "--bind", EP_IP, "8080"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        yield NS
    finally:
        if server is not None:
            server.kill()
            server.wait(10)
        sh("ip", "netns", "del", NS, check=False)


def curl(url, check=False):
    return inns("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3", url,
                check=check)


class RunningProxy:
    def __init__(self, cluster, cfg):
        self.cluster, self.cfg = cluster, cfg
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.server: ProxyServer | None = None

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self):
        client = Client.from_kubeconfig(self.cfg.kubeconfig)
        self.server = ProxyServer(self.cfg, client, Runner(["ip", "netns", "exec", NS]))
        self.task = asyncio.create_task(self.server.run())
        try:
            await self.task
        except asyncio.CancelledError:
            pass
        finally:
            await client.close()

    def __enter__(self):
        self.thread.start()
        assert eventually(lambda: hasattr(self, "task"), 30)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(30)


def kubectl(kc, *args, input=None):
    proc = sh("/usr/bin/kubectl", f"--kubeconfig={kc}", *args, input=input, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def apply(kc, obj):
    kubectl(kc, "apply", "-f", "-", input=json.dumps(obj))


def service(name, ports, type_="ClusterIP"):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": type_, "ports": ports}}


def eslice(name, svc, ips, port=8080):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "default",
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "nodeName": "node-a",
                           "conditions": {"ready": True}} for ip in ips]}


def node(name, ip, cidr):
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}


def kube_chains():
    out = inns("iptables-save").stdout
    return sorted(line.split()[0][1:] for line in out.splitlines()
                  if line.startswith(":KUBE-"))


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:                 # not listening yet
        return None, b""


def test_services_through_real_iptables(netns):
    with running_cluster() as cluster:
        kc = cluster.kubeconfig("system:kube-proxy")    # bound to system:node-proxier
        admin = cluster.admin
        healthz, metrics = free_port(), free_port()
        cfg = ProxyConfig(kubeconfig=str(kc), hostname_override="node-a",
                          cluster_cidr="10.244.0.0/16",
                          healthz_bind_address=f"127.0.0.1:{healthz}",
                          metrics_bind_address=f"127.0.0.1:{metrics}", min_sync_period=0.1)
        apply(admin, service("web", [{"name": "http", "port": 80, "targetPort": 8080}],
                             "NodePort"))
        apply(admin, eslice("web-1", "web", [EP_IP]))
        apply(admin, service("empty", [{"name": "http", "port": 81}]))
        apply(admin, node("node-a", NODE_IP, "10.244.1.0/24"))
        apply(admin, node("node-b", "10.88.0.3", "10.244.2.0/24"))
        web = json.loads(kubectl(admin, "get", "svc", "web", "-o", "json"))
        ip, node_port = web["spec"]["clusterIP"], web["spec"]["ports"][0]["nodePort"]
        empty_ip = json.loads(kubectl(admin, "get", "svc", "empty", "-o", "json"))["spec"][
            "clusterIP"]
        with RunningProxy(cluster, cfg):
            assert eventually(lambda: curl(f"http://{ip}/").stdout == "200", 60), \
                inns("iptables-save").stdout
            assert eventually(lambda: curl(f"http://{NODE_IP}:{node_port}/").stdout == "200")
            # no endpoints: REJECT (connection refused at once, not a timeout)
            rejected = curl(f"http://{empty_ip}:81/")
            assert rejected.stdout == "000" and rejected.returncode == 7
            # health and metrics as upstream
            status, body = get(f"http://127.0.0.1:{healthz}/healthz")
            doc = json.loads(body)
            assert status == 200 and doc["lastUpdated"].endswith("Z") and "currentTime" in doc
            _, text = get(f"http://127.0.0.1:{metrics}/metrics")
            assert b"kubeproxy_sync_proxy_rules_duration_seconds_count" in text
            # node routes: node-b's podCIDR via its InternalIP, ours not routed
            routes = lambda: inns("ip", "route", "show", "proto", "200").stdout  # noqa: E731
            assert eventually(lambda: "10.244.2.0/24 via 10.88.0.3" in routes())
            assert "10.244.1.0/24" not in routes()
            # the endpoint goes away: the Service rejects, its SEP chain is deleted
            def seps():
                return [c for c in kube_chains() if c.startswith("KUBE-SEP-")]
            before = seps()
            assert len(before) == 2          # web's and default/kubernetes's
            kubectl(admin, "delete", "endpointslice", "web-1")
            assert eventually(lambda: curl(f"http://{ip}/").returncode == 7)
            assert eventually(lambda: len(seps()) == 1)
            kubectl(admin, "delete", "node", "node-b")
            assert eventually(lambda: "10.244.2.0/24" not in routes())
            nat = inns("iptables-save", "-t", "nat").stdout
            assert "-s 10.244.0.0/16 -m comment --comment \"bootstrap pod egress masquerade\"" \
                " -j KUBE-POD-EGRESS" in nat
            assert "-A KUBE-POD-EGRESS -d 10.88.0.2/32 -j RETURN" in nat
        # upstream's --cleanup, aimed at the same namespace
        runner = Runner(["ip", "netns", "exec", NS])
        from bootstrap.agents.proxy.proxier import Proxier
        from bootstrap.agents.proxy.rules import Options
        Proxier("", Options(), runner).cleanup()
        NodeRoutes("", runner).cleanup()
        assert kube_chains() == []
        assert "-j KUBE" not in inns("iptables-save").stdout
        assert inns("ip", "route", "show", "proto", "200").stdout.strip() == ""


def test_sync_is_rate_limited_and_partial(netns):
    """Many changes in a burst collapse into few syncs; a one-service change
    rewrites only that service's chains."""
    from bootstrap.agents.proxy.proxier import Proxier
    from bootstrap.agents.proxy.rules import Options
    runner = Runner(["ip", "netns", "exec", NS])
    p = Proxier("node-a", Options(), runner)
    p.services_synced = p.slices_synced = True
    for i in range(20):
        p.on_service({"metadata": {"name": f"s{i}", "namespace": "default"},
                      "spec": {"clusterIP": f"10.96.1.{i + 1}", "ports": [{"port": 80}]}})
        p.on_slice(eslice(f"s{i}-1", f"s{i}", [f"10.244.3.{i + 1}"], 80) |
                   {"ports": [{"port": 80, "protocol": "TCP"}]})
    full = p.sync()
    assert full.full and full.services_written == 20
    p.on_slice(eslice("s3-1", "s3", ["10.244.3.100"], 80) |
               {"ports": [{"port": 80, "protocol": "TCP"}]})
    partial = p.sync()
    assert not partial.full and partial.services_written == 1
    declared = [line for line in partial.text.splitlines() if line.startswith(":KUBE-SVC")]
    assert len(declared) == 1
    nat = inns("iptables-save", "-t", "nat").stdout
    assert "10.244.3.100:80" in nat and "10.244.3.4:80" not in nat
    assert nat.count("-j KUBE-SVC-") == 20     # one KUBE-SERVICES jump per service
    # repeated full syncs find their jump rules and never add them twice
    p.sync(force_full=True)
    p.sync(force_full=True)
    from bootstrap.agents.proxy.rules import jump_rules
    saved = Runner(["ip", "netns", "exec", NS]).save()
    for jump in jump_rules(Options()):
        matching = [line for line in saved[jump.table]
                    if line.startswith(f"-A {jump.chain} ") and line.endswith(f"-j {jump.args[-1]}")]
        assert len(matching) == 1, (jump, matching)
    p.cleanup()
    assert kube_chains() == []


def test_proxy_without_rights_writes_nothing_and_is_unhealthy(netns):
    """A credential the API knows but RBAC does not allow (not system:kube-proxy):
    the informers never sync, so no rule is written and /healthz says 503."""
    with running_cluster() as cluster:
        healthz = free_port()
        cfg = ProxyConfig(kubeconfig=str(cluster.kubeconfig("mallory")),
                          hostname_override="node-a", healthz_bind_address=f"127.0.0.1:{healthz}",
                          metrics_bind_address="", pod_routes=False)
        with RunningProxy(cluster, cfg) as proxy:
            assert eventually(lambda: get(f"http://127.0.0.1:{healthz}/healthz")[0] == 503)
            assert eventually(lambda: proxy.server is not None
                              and proxy.server.factory.informers
                              and all(i.lists == 0 for i in proxy.server.factory.informers)
                              and not proxy.server.proxier.ready)
            assert kube_chains() == []


def test_stale_udp_conntrack_entries_are_flushed(netns):
    """A UDP client keeps its DNAT target in conntrack; when that endpoint goes,
    kube-proxy deletes the entry so the next packet picks a live one."""
    from bootstrap.agents.proxy.proxier import Proxier
    from bootstrap.agents.proxy.rules import Options
    runner = Runner(["ip", "netns", "exec", NS])
    p = Proxier("node-a", Options(), runner)
    p.services_synced = p.slices_synced = True
    vip = "10.96.5.5"
    p.on_service({"metadata": {"name": "dns", "namespace": "default"},
                  "spec": {"clusterIP": vip, "ports": [{"port": 53, "protocol": "UDP"}]}})
    ep = {"metadata": {"name": "dns-1", "namespace": "default",
                       "labels": {"kubernetes.io/service-name": "dns"}},
          "addressType": "IPv4", "ports": [{"port": 5353, "protocol": "UDP"}],
          "endpoints": [{"addresses": [EP_IP], "conditions": {"ready": True}}]}
    p.on_slice(ep)
    p.sync()
    try:
        inns(sys.executable, "-c", "import socket; socket.socket(socket.AF_INET, "
             f"socket.SOCK_DGRAM).sendto(b'q', ('{vip}', 53))")

        def entries():
            return inns("conntrack", "-L", "-p", "udp", "--orig-dst", vip, check=False).stdout
        assert f"dst={EP_IP}" in entries() or f"src={EP_IP}" in entries(), entries()
        p.on_slice(ep | {"endpoints": []})
        p.sync()
        assert vip not in entries()
    finally:
        p.cleanup()
