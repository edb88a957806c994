"""Answering a question from the cluster Index: pure, (name, type) in,
(rcode, answer, authority, additional) out, as dnslib resource records.

Names outside the cluster domain (and reverse names of IPs we do not know) are
``None``: the server forwards them to the host's resolvers.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from dnslib import CNAME, PTR, QTYPE, RCODE, RR, SOA, SRV, TXT, A

from bootstrap.agents.dns.records import Index, ServiceRecords

TTL = 5                    # CoreDNS kubernetes plugin default
SCHEMA_VERSION = "1.1.0"   # dns-version.<domain> TXT, from the DNS spec


@dataclass
class Answer:
    rcode: int = RCODE.NOERROR
    answer: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)


def soa(domain: str) -> RR:
    return RR(domain, QTYPE.SOA, ttl=TTL,
              rdata=SOA(f"ns.dns.{domain}", f"hostmaster.{domain}",
                        (1, 7200, 1800, 86400, TTL)))


def _nodata(domain: str) -> Answer:
    return Answer(RCODE.NOERROR, authority=[soa(domain)])


def _nxdomain(domain: str) -> Answer:
    return Answer(RCODE.NXDOMAIN, authority=[soa(domain)])


def _a(name: str, ips: list[str]) -> list[RR]:
    return [RR(name, QTYPE.A, ttl=TTL, rdata=A(ip)) for ip in ips]


def _reverse_ip(labels: list[str]) -> str | None:
    """``d.c.b.a.in-addr.arpa`` labels (without the suffix) -> a.b.c.d."""
    if len(labels) != 4:
        return None
    try:
        return str(ipaddress.IPv4Address(".".join(reversed(labels))))
    except ValueError:
        return None


class Resolver:
    def __init__(self, index: Index):
        self.index = index

    @property
    def domain(self) -> str:
        return self.index.domain

    def resolve(self, qname: str, qtype: int) -> Answer | None:
        name = qname.rstrip(".").lower()
        if name.endswith(".in-addr.arpa"):
            return self._reverse(name, qtype)
        d = self.domain
        if name != d and not name.endswith("." + d):
            return None
        rel = name[: -len(d)].rstrip(".")
        labels = rel.split(".") if rel else []
        if not labels:
            return self._apex(name, qtype)
        if labels == ["dns-version"]:
            if qtype in (QTYPE.TXT, QTYPE.ANY):
                return Answer(answer=[RR(name, QTYPE.TXT, ttl=TTL, rdata=TXT(SCHEMA_VERSION))])
            return _nodata(d)
        if labels[-1] == "svc":
            return self._service(name, labels[:-1], qtype)
        if labels[-1] == "pod":
            return self._pod(name, labels[:-1], qtype)
        return _nxdomain(d)

    def _apex(self, name: str, qtype: int) -> Answer:
        d = self.domain
        if qtype == QTYPE.SOA:
            return Answer(answer=[soa(d)])
        return _nodata(d)

    def _pod(self, name: str, labels: list[str], qtype: int) -> Answer:
        # "pods insecure" (kubeadm's Corefile): the address is read off the name.
        d = self.domain
        if len(labels) == 1:
            return _nodata(d)                     # <ns>.pod.<domain> exists, holds nothing
        if len(labels) != 2:
            return _nxdomain(d)
        try:
            ip = str(ipaddress.IPv4Address(labels[0].replace("-", ".")))
        except ValueError:
            return _nxdomain(d)
        if qtype in (QTYPE.A, QTYPE.ANY):
            return Answer(answer=_a(name, [ip]))
        return _nodata(d)

    def _service(self, name: str, labels: list[str], qtype: int) -> Answer:
        d = self.domain
        if not labels:
            return _nodata(d)                                     # svc.<domain>
        if len(labels) == 1:                                      # <ns>.svc.<domain>
            return _nodata(d) if labels[0] in self.index.namespaces else _nxdomain(d)
        if len(labels) == 4 and labels[0].startswith("_") and labels[1].startswith("_"):
            return self._srv(name, labels, qtype)
        if len(labels) == 3:                                      # <host>.<svc>.<ns>
            rec = self.index.get(labels[2], labels[1])
            if rec is None or not rec.headless:
                return _nxdomain(d)
            ips = [h.ip for h in rec.hosts if h.label == labels[0]]
            if not ips:
                return _nxdomain(d)
            return Answer(answer=_a(name, ips)) if qtype in (QTYPE.A, QTYPE.ANY) \
                else _nodata(d)
        if len(labels) != 2:
            return _nxdomain(d)
        rec = self.index.get(labels[1], labels[0])
        if rec is None:
            return _nxdomain(d)
        if rec.external_name:
            return Answer(answer=[RR(name, QTYPE.CNAME, ttl=TTL,
                                     rdata=CNAME(rec.external_name))])
        if qtype in (QTYPE.A, QTYPE.ANY):
            ips = rec.addresses()
            return Answer(answer=_a(name, ips)) if ips else _nodata(d)
        if qtype == QTYPE.SRV:
            return self._srv_all(name, rec)
        return _nodata(d)

    def _srv_records(self, name: str, rec: ServiceRecords, port: str | None,
                     proto: str | None) -> tuple[list[RR], list[RR]]:
        fqdn = rec.fqdn(self.domain)
        answer, extra = [], []
        if rec.headless:
            hosts = [(h, p) for h in rec.hosts for p in h.ports
                     if (port is None or p.name == port) and (proto is None or p.protocol == proto)]
            weight = max(1, 100 // len(hosts)) if hosts else 100
            for h, p in hosts:
                target = f"{h.label}.{fqdn}"
                answer.append(RR(name, QTYPE.SRV, ttl=TTL, rdata=SRV(0, weight, p.port, target)))
                extra += _a(target, [h.ip])
        else:
            for p in rec.ports:
                if (port is None or p.name == port) and (proto is None or p.protocol == proto):
                    answer.append(RR(name, QTYPE.SRV, ttl=TTL, rdata=SRV(0, 100, p.port, fqdn)))
            if answer:
                extra = _a(fqdn, rec.cluster_ips)
        return answer, extra

    def _srv(self, name: str, labels: list[str], qtype: int) -> Answer:
        d = self.domain
        port, proto = labels[0][1:], labels[1][1:]
        rec = self.index.get(labels[3], labels[2])
        if rec is None or rec.external_name:
            return _nxdomain(d)
        answer, extra = self._srv_records(name, rec, port, proto)
        if not answer:
            return _nxdomain(d)
        if qtype not in (QTYPE.SRV, QTYPE.ANY):
            return _nodata(d)
        return Answer(answer=answer, additional=extra)

    def _srv_all(self, name: str, rec: ServiceRecords) -> Answer:
        answer, extra = self._srv_records(name, rec, None, None)
        return Answer(answer=answer, additional=extra) if answer else _nodata(self.domain)

    def _reverse(self, name: str, qtype: int) -> Answer | None:
        ip = _reverse_ip(name[: -len(".in-addr.arpa")].split("."))
        target = self.index.reverse.get(ip) if ip else None
        if target is None:
            return None          # not ours: the host's resolvers may know it
        if qtype in (QTYPE.PTR, QTYPE.ANY):
            return Answer(answer=[RR(name, QTYPE.PTR, ttl=TTL, rdata=PTR(target))])
        return Answer(RCODE.NOERROR)
