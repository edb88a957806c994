"""Cluster DNS records from Services and EndpointSlices, following the
Kubernetes DNS-based service discovery specification (as CoreDNS's kubernetes
plugin serves it). Pure: objects in, record sets out.

One ``ServiceRecords`` per Service, recomputed when the Service or one of its
slices changes; the ``Index`` joins them and keeps the reverse (PTR) map.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def dashed(ip: str) -> str:
    return ip.replace(".", "-")


@dataclass(frozen=True)
class Port:
    name: str
    protocol: str   # lower case, as in _http._tcp
    port: int


@dataclass(frozen=True)
class Host:
    """A ready endpoint of a headless Service: ``<label>.<svc>.<ns>.svc.<domain>``."""
    label: str      # hostname, or the dashed IP
    ip: str
    ports: tuple[Port, ...]


@dataclass
class ServiceRecords:
    namespace: str
    name: str
    cluster_ips: list[str] = field(default_factory=list)
    headless: bool = False
    external_name: str = ""
    ports: list[Port] = field(default_factory=list)     # service ports (ClusterIP services)
    hosts: list[Host] = field(default_factory=list)     # ready endpoints (headless)

    def fqdn(self, domain: str) -> str:
        return f"{self.name}.{self.namespace}.svc.{domain}"

    def addresses(self) -> list[str]:
        if self.headless:
            return sorted({h.ip for h in self.hosts})
        return list(self.cluster_ips)

    def ptrs(self, domain: str) -> dict[str, str]:
        if self.headless:
            return {h.ip: f"{h.label}.{self.fqdn(domain)}" for h in self.hosts}
        return {ip: self.fqdn(domain) for ip in self.cluster_ips}


def service_records(service: dict, slices: list[dict]) -> ServiceRecords:
    md, spec = service.get("metadata") or {}, service.get("spec") or {}
    rec = ServiceRecords(md.get("namespace", "default"), md["name"])
    if spec.get("type") == "ExternalName":
        rec.external_name = (spec.get("externalName") or "").rstrip(".").lower()
        return rec
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    rec.headless = spec.get("clusterIP") == "None"
    if not rec.headless:
        rec.cluster_ips = [ip for ip in ips if ip and ip != "None" and ":" not in ip]
        rec.ports = [Port(p["name"], (p.get("protocol") or "TCP").lower(), int(p["port"]))
                     for p in spec.get("ports") or [] if p.get("name")]
        return rec
    seen: dict[str, Host] = {}
    for s in slices:
        if s.get("addressType", "IPv4") != "IPv4":
            continue
        ports = tuple(Port(p["name"], (p.get("protocol") or "TCP").lower(), int(p["port"]))
                      for p in s.get("ports") or [] if p.get("name") and p.get("port"))
        for ep in s.get("endpoints") or []:
            # Ready only (publishNotReadyAddresses makes the controller mark all ready).
            if (ep.get("conditions") or {}).get("ready") is False or not ep.get("addresses"):
                continue
            ip = ep["addresses"][0]
            label = (ep.get("hostname") or dashed(ip)).lower()
            seen.setdefault(ip, Host(label, ip, ports))
    rec.hosts = [seen[ip] for ip in sorted(seen)]
    return rec


class Index:
    """Every Service's records by name, and the reverse map, kept incrementally."""

    def __init__(self, domain: str = "cluster.local"):
        self.domain = domain.rstrip(".").lower()
        self.services: dict[tuple[str, str], ServiceRecords] = {}
        self.namespaces: dict[str, int] = {}        # namespace -> services in it
        self.reverse: dict[str, str] = {}

    def put(self, rec: ServiceRecords) -> None:
        self.remove(rec.namespace, rec.name)
        self.services[(rec.namespace, rec.name)] = rec
        self.namespaces[rec.namespace] = self.namespaces.get(rec.namespace, 0) + 1
        for ip, name in rec.ptrs(self.domain).items():
            self.reverse[ip] = name

    def remove(self, namespace: str, name: str) -> None:
        old = self.services.pop((namespace, name), None)
        if old is None:
            return
        self.namespaces[namespace] -= 1
        if not self.namespaces[namespace]:
            del self.namespaces[namespace]
        for ip, ptr in old.ptrs(self.domain).items():
            if self.reverse.get(ip) == ptr:
                del self.reverse[ip]

    def get(self, namespace: str, name: str) -> ServiceRecords | None:
        return self.services.get((namespace, name))
