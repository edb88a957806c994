"""Cluster DNS resolution as data: Services and EndpointSlices in, answers out;
then the wire handler (dnslib packets in and out) with a fake forwarder."""

from __future__ import annotations

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from bootstrap.agents.dns.forward import read_resolv_conf
from bootstrap.agents.dns.records import Index, service_records
from bootstrap.agents.dns.resolve import Resolver
from bootstrap.agents.dns.server import DNSHandler


def svc(name, ip, ports=(), ns="default", **spec):
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "clusterIPs": [ip], "ports": list(ports), **spec}}


def eslice(svc_name, endpoints, ports=(), ns="default"):
    return {"metadata": {"name": svc_name + "-x", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": svc_name}},
            "addressType": "IPv4", "endpoints": endpoints, "ports": list(ports)}


def ep(ip, ready=True, hostname=None):
    e = {"addresses": [ip], "conditions": {"ready": ready}}
    if hostname:
        e["hostname"] = hostname
    return e


@pytest.fixture
def resolver():
    idx = Index("cluster.local")
    idx.put(service_records(svc("web", "10.96.0.20", [
        {"name": "http", "port": 80, "protocol": "TCP"}, {"port": 81}]), []))
    idx.put(service_records(svc("db", "None", [{"name": "pg", "port": 5432}]), [
        eslice("db", [ep("10.244.1.5", hostname="db-0"), ep("10.244.2.6"),
                      ep("10.244.3.7", ready=False)],
               [{"name": "pg", "port": 5432, "protocol": "TCP"}])]))
    idx.put(service_records(svc("ext", "", type="ExternalName",
                                externalName="example.org."), []))
    return Resolver(idx)


def rdatas(answer):
    return sorted(str(rr.rdata) for rr in answer.answer)


def test_cluster_ip_a_record(resolver):
    a = resolver.resolve("web.default.svc.cluster.local.", QTYPE.A)
    assert a.rcode == RCODE.NOERROR and rdatas(a) == ["10.96.0.20"]
    assert a.answer[0].ttl == 5
    # case-insensitive
    assert rdatas(resolver.resolve("WEB.Default.SVC.cluster.local", QTYPE.A)) == ["10.96.0.20"]


def test_headless_returns_ready_endpoints_and_hostnames(resolver):
    a = resolver.resolve("db.default.svc.cluster.local", QTYPE.A)
    assert rdatas(a) == ["10.244.1.5", "10.244.2.6"]
    assert rdatas(resolver.resolve("db-0.db.default.svc.cluster.local", QTYPE.A)) == \
        ["10.244.1.5"]
    assert rdatas(resolver.resolve("10-244-2-6.db.default.svc.cluster.local", QTYPE.A)) == \
        ["10.244.2.6"]
    assert resolver.resolve("10-244-3-7.db.default.svc.cluster.local", QTYPE.A).rcode == \
        RCODE.NXDOMAIN


def test_srv_named_ports(resolver):
    a = resolver.resolve("_http._tcp.web.default.svc.cluster.local", QTYPE.SRV)
    assert rdatas(a) == ["0 100 80 web.default.svc.cluster.local."]
    assert [str(r.rdata) for r in a.additional] == ["10.96.0.20"]
    h = resolver.resolve("_pg._tcp.db.default.svc.cluster.local", QTYPE.SRV)
    assert rdatas(h) == ["0 50 5432 10-244-2-6.db.default.svc.cluster.local.",
                         "0 50 5432 db-0.db.default.svc.cluster.local."]
    assert resolver.resolve("_http._udp.web.default.svc.cluster.local",
                            QTYPE.SRV).rcode == RCODE.NXDOMAIN


def test_pod_names_and_ptr(resolver):
    assert rdatas(resolver.resolve("10-244-1-9.default.pod.cluster.local", QTYPE.A)) == \
        ["10.244.1.9"]
    assert resolver.resolve("10-244-1.default.pod.cluster.local", QTYPE.A).rcode == \
        RCODE.NXDOMAIN
    assert rdatas(resolver.resolve("20.0.96.10.in-addr.arpa", QTYPE.PTR)) == \
        ["web.default.svc.cluster.local."]
    assert rdatas(resolver.resolve("5.1.244.10.in-addr.arpa", QTYPE.PTR)) == \
        ["db-0.db.default.svc.cluster.local."]
    assert resolver.resolve("9.9.9.9.in-addr.arpa", QTYPE.PTR) is None    # forwarded


def test_nxdomain_and_nodata_carry_soa(resolver):
    nx = resolver.resolve("nope.default.svc.cluster.local", QTYPE.A)
    assert nx.rcode == RCODE.NXDOMAIN and nx.authority[0].rtype == QTYPE.SOA
    assert str(nx.authority[0].rname) == "cluster.local."
    nodata = resolver.resolve("web.default.svc.cluster.local", QTYPE.AAAA)
    assert nodata.rcode == RCODE.NOERROR and not nodata.answer and nodata.authority
    assert resolver.resolve("default.svc.cluster.local", QTYPE.A).rcode == RCODE.NOERROR
    assert resolver.resolve("nosuchns.svc.cluster.local", QTYPE.A).rcode == RCODE.NXDOMAIN
    assert resolver.resolve("x.cluster.local", QTYPE.A).rcode == RCODE.NXDOMAIN
    assert rdatas(resolver.resolve("dns-version.cluster.local", QTYPE.TXT)) == ['"1.1.0"']


def test_external_name_and_outside_names(resolver):
    a = resolver.resolve("ext.default.svc.cluster.local", QTYPE.A)
    assert a.answer[0].rtype == QTYPE.CNAME and str(a.answer[0].rdata) == "example.org."
    assert resolver.resolve("example.org", QTYPE.A) is None
    assert resolver.resolve("cluster.local.example.org", QTYPE.A) is None


def test_index_updates_and_removals():
    idx = Index("k8s.test")
    idx.put(service_records(svc("a", "10.96.0.5"), []))
    r = Resolver(idx)
    assert rdatas(r.resolve("a.default.svc.k8s.test", QTYPE.A)) == ["10.96.0.5"]
    idx.put(service_records(svc("a", "10.96.0.6"), []))
    assert r.resolve("5.0.96.10.in-addr.arpa", QTYPE.PTR) is None
    idx.remove("default", "a")
    assert r.resolve("a.default.svc.k8s.test", QTYPE.A).rcode == RCODE.NXDOMAIN
    assert "default" not in idx.namespaces and not idx.reverse


class FakeForwarder:
    def __init__(self, reply=None):
        self.reply, self.seen = reply, []

    async def forward(self, packet, tcp=False):
        self.seen.append((packet, tcp))
        return self.reply


async def test_handler_answers_forwards_and_servfails(resolver):
    fwd = FakeForwarder()
    h = DNSHandler(resolver, fwd)
    q = DNSRecord.question("web.default.svc.cluster.local", "A")
    r = DNSRecord.parse(await h.handle(q.pack()))
    assert r.header.id == q.header.id and r.header.aa and r.header.rcode == RCODE.NOERROR
    assert [str(x.rdata) for x in r.rr] == ["10.96.0.20"]
    # outside: forwarded unchanged; no upstream answer -> SERVFAIL
    out = DNSRecord.question("example.org", "A")
    r = DNSRecord.parse(await h.handle(out.pack(), tcp=True))
    assert r.header.rcode == RCODE.SERVFAIL and fwd.seen == [(out.pack(), True)]
    upstream = out.reply()
    fwd.reply = upstream.pack()
    assert await h.handle(out.pack()) == upstream.pack()


async def test_handler_bad_input(resolver):
    h = DNSHandler(resolver, FakeForwarder())
    assert await h.handle(b"\x01\x02") is None                     # too short to answer
    junk = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff"
    r = await h.handle(junk)
    assert r[:2] == b"\x12\x34" and r[3] & 0x0F == RCODE.FORMERR
    reply = DNSRecord.question("web.default.svc.cluster.local").reply().pack()
    assert await h.handle(reply) is None                           # never answer answers


async def test_handler_truncates_big_udp_answers():
    idx = Index()
    idx.put(service_records(svc("big", "None"), [
        eslice("big", [ep(f"10.244.{i // 200}.{i % 200 + 1}") for i in range(100)])]))
    h = DNSHandler(Resolver(idx), FakeForwarder())
    q = DNSRecord.question("big.default.svc.cluster.local", "A")
    r = DNSRecord.parse(await h.handle(q.pack()))
    assert r.header.tc and not r.rr
    r = DNSRecord.parse(await h.handle(q.pack(), tcp=True))
    assert len(r.rr) == 100


def test_resolv_conf(tmp_path):
    p = tmp_path / "resolv.conf"
    p.write_text("search x\nnameserver 127.0.0.53\nnameserver 127.0.0.9#5353\n"
                 "nameserver bogus\nnameserver 10.96.0.10\n")
    ups = read_resolv_conf(p, exclude={"10.96.0.10"})
    assert [(u.host, u.port) for u in ups] == [("127.0.0.53", 53), ("127.0.0.9", 5353)]
    assert read_resolv_conf(tmp_path / "missing") == []
