"""Services and EndpointSlices as the proxy sees them (upstream pkg/proxy's
ServicePort and Endpoint): plain frozen values, so the rule generator is a pure
function of them and a changed Service is found by comparing values.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# Services with this label belong to another proxy; kube-proxy ignores them.
PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"
DEFAULT_AFFINITY_SECONDS = 10800


def port_proto_hash(text: str) -> str:
    """Upstream's chain-name hash: base32 of sha256, first 16 characters (iptables
    chain names are at most 28 characters)."""
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int
    node_name: str = ""
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    is_local: bool = False

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class ServicePort:
    namespace: str
    name: str
    port_name: str
    protocol: str                 # TCP, UDP, SCTP
    cluster_ip: str
    port: int
    node_port: int = 0
    affinity_seconds: int = 0     # 0: sessionAffinity None
    external_local: bool = False  # externalTrafficPolicy Local (only when externally accessible)
    internal_local: bool = False  # internalTrafficPolicy Local
    external_ips: tuple[str, ...] = field(default=())

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.namespace, self.name, self.port_name, self.protocol)

    @property
    def name_string(self) -> str:
        # ServicePortName.String(): "ns/name" plus ":port" only for named ports.
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{self.port_name}" if self.port_name else base

    @property
    def proto(self) -> str:
        return self.protocol.lower()

    def _chain(self, prefix: str) -> str:
        return prefix + port_proto_hash(self.name_string + self.proto)

    @property
    def cluster_chain(self) -> str:
        return self._chain("KUBE-SVC-")

    @property
    def local_chain(self) -> str:
        return self._chain("KUBE-SVL-")

    @property
    def external_chain(self) -> str:
        return self._chain("KUBE-EXT-")

    def endpoint_chain(self, ep: Endpoint) -> str:
        return "KUBE-SEP-" + port_proto_hash(self.name_string + self.proto + str(ep))

    @property
    def externally_accessible(self) -> bool:
        return self.node_port != 0 or bool(self.external_ips)

    @property
    def uses_cluster_endpoints(self) -> bool:
        return not self.internal_local or (self.externally_accessible and not self.external_local)

    @property
    def uses_local_endpoints(self) -> bool:
        return self.internal_local or (self.externally_accessible and self.external_local)


def _should_skip(service: dict) -> bool:
    spec = service.get("spec") or {}
    ip = spec.get("clusterIP") or ""
    labels = (service.get("metadata") or {}).get("labels") or {}
    return (ip in ("", "None") or spec.get("type") == "ExternalName"
            or PROXY_NAME_LABEL in labels)


def service_ports(service: dict) -> list[ServicePort]:
    """One ServicePort per spec.ports entry of a proxied IPv4 Service."""
    if _should_skip(service):
        return []
    meta, spec = service.get("metadata") or {}, service.get("spec") or {}
    ip = spec["clusterIP"]
    if ":" in ip:           # IPv6 is out of scope (single-stack IPv4 proxy)
        return []
    affinity = 0
    if spec.get("sessionAffinity") == "ClientIP":
        cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
        affinity = int(cfg.get("timeoutSeconds") or DEFAULT_AFFINITY_SECONDS)
    external_ips = tuple(a for a in spec.get("externalIPs") or () if ":" not in a)
    out = []
    for p in spec.get("ports") or []:
        node_port = int(p.get("nodePort") or 0) if spec.get("type") in (
            "NodePort", "LoadBalancer") else 0
        accessible = bool(node_port or external_ips)
        out.append(ServicePort(
            namespace=meta.get("namespace", "default"), name=meta["name"],
            port_name=p.get("name") or "", protocol=p.get("protocol") or "TCP",
            cluster_ip=ip, port=int(p["port"]), node_port=node_port,
            affinity_seconds=affinity,
            external_local=accessible and spec.get("externalTrafficPolicy") == "Local",
            internal_local=spec.get("internalTrafficPolicy") == "Local",
            external_ips=external_ips))
    return out


def slice_endpoints(slice_: dict, node_name: str) -> dict[tuple[str, str, str, str], list[Endpoint]]:
    """Endpoints of one EndpointSlice per (namespace, service, port name, protocol)."""
    if slice_.get("addressType", "IPv4") != "IPv4":
        return {}
    meta = slice_.get("metadata") or {}
    service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not service:
        return {}
    ns = meta.get("namespace", "default")
    out: dict[tuple[str, str, str, str], list[Endpoint]] = {}
    for port in slice_.get("ports") or []:
        if port.get("port") is None:
            continue
        key = (ns, service, port.get("name") or "", port.get("protocol") or "TCP")
        eps = out.setdefault(key, [])
        for ep in slice_.get("endpoints") or []:
            addrs = ep.get("addresses") or []
            if not addrs:
                continue
            cond = ep.get("conditions") or {}
            # Upstream: nil ready means ready; nil serving means "as ready".
            ready = cond.get("ready") is not False
            serving = cond.get("serving") if cond.get("serving") is not None else ready
            node = ep.get("nodeName") or ""
            eps.append(Endpoint(ip=addrs[0], port=int(port["port"]), node_name=node,
                                ready=ready, serving=bool(serving),
                                terminating=bool(cond.get("terminating")),
                                is_local=bool(node_name) and node == node_name))
    return out


def endpoints_map(slices: list[dict], node_name: str
                  ) -> dict[tuple[str, str, str, str], tuple[Endpoint, ...]]:
    """Every service port's endpoints from all of its slices, de-duplicated by
    ip:port (a pod moving between slices may briefly be in two) and sorted, so
    equal inputs give equal rules."""
    merged: dict[tuple[str, str, str, str], dict[str, Endpoint]] = {}
    for s in slices:
        for key, eps in slice_endpoints(s, node_name).items():
            bucket = merged.setdefault(key, {})
            for ep in eps:
                bucket.setdefault(str(ep), ep)
    return {k: tuple(v[s] for s in sorted(v)) for k, v in merged.items()}


def categorize(sp: ServicePort, endpoints: tuple[Endpoint, ...]
               ) -> tuple[list[Endpoint], list[Endpoint], list[Endpoint], bool]:
    """Upstream's CategorizeEndpoints (without topology hints): (cluster, local,
    all reachable, has any usable endpoint). Ready endpoints win; when none is
    ready, serving-and-terminating ones carry traffic so connections drain."""
    def fallback(eps):
        ready = [e for e in eps if e.ready]
        return ready or [e for e in eps if e.serving and e.terminating]

    cluster: list[Endpoint] = []
    local: list[Endpoint] = []
    has_any = False
    if sp.uses_cluster_endpoints:
        cluster = fallback(endpoints)
        has_any = bool(cluster)
    if not sp.uses_local_endpoints:
        return cluster, local, cluster, has_any
    has_any = has_any or any(e.ready or (e.serving and e.terminating) for e in endpoints)
    local = fallback([e for e in endpoints if e.is_local])
    if not sp.uses_cluster_endpoints:
        return cluster, local, local, has_any
    seen = {str(e) for e in cluster}
    reachable = cluster + [e for e in local if str(e) not in seen]
    return cluster, local, reachable, has_any
