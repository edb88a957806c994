"""bootstrap-dns as a real process against the real API server on loopback:
answers Service, headless, SRV, pod and PTR names over UDP and TCP (dnslib's
client), forwards other names to a fake upstream on loopback (never to the
machine's resolvers) and SERVFAILs when it is down, registers itself as an
endpoint of the selector-less kube-dns Service only once synced, and removes
that endpoint on SIGTERM. A user without the DNS role never becomes ready."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import urllib.request

import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from bootstrap.flows.apiobjects import dns_rbac as rbac_objects

from .cluster import ROOT, eventually, free_port, running_cluster

pytestmark = pytest.mark.timeout(180)
LISTEN = "127.0.0.77"


def kubectl(kc, *args, input=None, check=True):
    proc = subprocess.run(["/usr/bin/kubectl", f"--kubeconfig={kc}", *args], input=input,
                          capture_output=True, text=True, timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


class FakeUpstream:
    """A loopback resolver that knows one name: what "the host's resolvers" are here."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.78", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                data, addr = self.sock.recvfrom(4096)
            except OSError:
                return
            q = DNSRecord.parse(data)
            r = q.reply()
            if str(q.q.qname) == "example.org.":
                r.add_answer(RR("example.org", QTYPE.A, rdata=A("192.0.2.1"), ttl=60))
            else:
                r.header.rcode = RCODE.NXDOMAIN
            try:
                self.sock.sendto(r.pack(), addr)
            except OSError:        # closed while answering
                return

    def close(self):
        self.sock.close()


def query(name, qtype="A", port=53, tcp=False):
    return DNSRecord.parse(DNSRecord.question(name, qtype).send(LISTEN, port, tcp=tcp,
                                                                 timeout=5))


def ips(reply):
    return sorted(str(rr.rdata) for rr in reply.rr)


def start_dns(kc, tmp_path, dns_port, health, metrics, resolv, *extra):
    log = open(tmp_path / f"dns-{dns_port}.log", "wb")
    return subprocess.Popen([sys.executable, "-m", "bootstrap.agents.dns", "--kubeconfig",
                             str(kc), "--listen", f"{LISTEN}:{dns_port}",
                             "--resolv-conf", str(resolv), "--forward-timeout", "500ms",
                             "--health-address", f"127.0.0.1:{health}",
                             "--metrics-address", f"127.0.0.1:{metrics}",
                             "--node-name", "cp-1", *extra],
                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def http(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return None, b""


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        raise


def test_dns_answers_forwards_and_registers(tmp_path):
    upstream = FakeUpstream()
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(f"nameserver 127.0.0.78#{upstream.port}\n")
    with running_cluster() as cluster:
        admin = cluster.admin
        for obj in rbac_objects():
            kubectl(admin, "apply", "-f", "-", input=json.dumps(obj))
        kc = cluster.kubeconfig("system:bootstrap-dns")
        kubectl(admin, "create", "service", "clusterip", "web", "--tcp=80:8080")
        kubectl(admin, "apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}))
        kubectl(admin, "apply", "-f", "-", input=json.dumps({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "db-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4", "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.244.1.5"], "hostname": "db-0",
                           "conditions": {"ready": True}},
                          {"addresses": ["10.244.1.6"], "conditions": {"ready": False}}]}))
        web_ip = json.loads(kubectl(admin, "get", "svc", "web", "-o", "json").stdout)[
            "spec"]["clusterIP"]
        port, health, metrics = free_port(), free_port(), free_port()
        proc = start_dns(kc, tmp_path, port, health, metrics, resolv,
                         "--register-address", LISTEN, "--service-cluster-ip", "10.96.0.10")
        try:
            assert eventually(lambda: http(health, "/ready")[0] == 200, 60), \
                (tmp_path / f"dns-{port}.log").read_text()
            assert eventually(lambda: ips(query("web.default.svc.cluster.local",
                                                port=port)) == [web_ip])
            assert ips(query("web.default.svc.cluster.local", port=port, tcp=True)) == [web_ip]
            assert ips(query("db.default.svc.cluster.local", port=port)) == ["10.244.1.5"]
            assert ips(query("db-0.db.default.svc.cluster.local", port=port)) == ["10.244.1.5"]
            srv = query("_pg._tcp.db.default.svc.cluster.local", "SRV", port)
            assert [str(r.rdata) for r in srv.rr] == ["0 100 5432 db-0.db.default.svc.cluster.local."]
            assert ips(query("10-244-9-9.default.pod.cluster.local", port=port)) == ["10.244.9.9"]
            rev = ".".join(reversed(web_ip.split("."))) + ".in-addr.arpa"
            assert ips(query(rev, "PTR", port)) == ["web.default.svc.cluster.local."]
            nx = query("nope.default.svc.cluster.local", port=port)
            assert nx.header.rcode == RCODE.NXDOMAIN and nx.auth[0].rtype == QTYPE.SOA
            # the kubernetes Service, kept by the API server itself
            assert ips(query("kubernetes.default.svc.cluster.local", port=port)) == ["10.96.0.1"]
            # other names: the host's resolvers (here: the fake on loopback)
            assert ips(query("example.org", port=port)) == ["192.0.2.1"]
            # registration: the kube-dns Service and this server's ready endpoint
            svc = json.loads(kubectl(admin, "get", "svc", "-n", "kube-system", "kube-dns",
                                     "-o", "json").stdout)
            assert svc["spec"]["clusterIP"] == "10.96.0.10" and "selector" not in svc["spec"]
            sl = json.loads(kubectl(admin, "get", "endpointslice", "-n", "kube-system",
                                    "kube-dns-cp-1", "-o", "json").stdout)
            assert sl["endpoints"][0]["addresses"] == [LISTEN]
            assert sl["endpoints"][0]["conditions"]["ready"] is True
            assert {p["name"]: p["port"] for p in sl["ports"]} == {
                "dns": port, "dns-tcp": port, "metrics": metrics}
            # the DNS Service resolves through itself
            assert ips(query("kube-dns.kube-system.svc.cluster.local", port=port)) == \
                ["10.96.0.10"]
            status, text = http(metrics, "/metrics")
            assert status == 200 and b"coredns_dns_requests_total" in text
            # upstream down: SERVFAIL, not a hang
            upstream.close()
            assert query("example.org", port=port).header.rcode == RCODE.SERVFAIL
        finally:
            code = stop(proc)
            upstream.close()
        assert code == 0
        # a clean stop withdraws the endpoint
        gone = kubectl(admin, "get", "endpointslice", "-n", "kube-system", "kube-dns-cp-1",
                       check=False)
        assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_dns_without_rights_never_ready(tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("")
    with running_cluster() as cluster:
        kc = cluster.kubeconfig("mallory")
        port, health, metrics = free_port(), free_port(), free_port()
        proc = start_dns(kc, tmp_path, port, health, metrics, resolv)
        try:
            assert eventually(lambda: http(health, "/healthz")[0] == 200, 60)
            status, _ = http(health, "/ready")
            assert status == 503
            # cluster names: nothing is known, so nothing is claimed to exist
            assert query("kubernetes.default.svc.cluster.local", port=port).header.rcode == \
                RCODE.NXDOMAIN
        finally:
            stop(proc)


def test_dns_bad_flags_one_line(tmp_path):
    for args in (["--listen", "nonsense"], ["--forward-timeout", "5d"]):
        proc = subprocess.run([sys.executable, "-m", "bootstrap.agents.dns", "--kubeconfig",
                               str(tmp_path / "none"), *args], capture_output=True, text=True,
                              timeout=60, cwd=ROOT)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
