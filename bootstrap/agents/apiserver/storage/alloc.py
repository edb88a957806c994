"""ClusterIP and NodePort allocation, safe with several API servers.

Each allocated IP or port is its own etcd key (/registry/ranges/serviceips/<ip>,
/registry/ranges/servicenodeports/<port>, value "<namespace>/<name>"), created
in the same transaction as the Service that holds it with a compare on the
key's absence, and deleted in the transaction that deletes or changes the
Service. Two servers racing for one address cannot both win, and nothing lives
outside etcd.
"""

from __future__ import annotations

import ipaddress
import random

from bootstrap.api import errors

from .etcd import Etcd

IP_PREFIX = "/registry/ranges/serviceips/"
PORT_PREFIX = "/registry/ranges/servicenodeports/"
NODEPORT_RANGE = (30000, 32767)


def ip_key(ip: str) -> str:
    return IP_PREFIX + ip


def port_key(port: int, protocol: str = "TCP") -> str:
    # Upstream keeps one range per protocol family; the port number alone is
    # what conflicts for TCP and UDP alike in our iptables proxy, so key on it.
    return PORT_PREFIX + str(port)


class Allocator:
    def __init__(self, etcd: Etcd, service_cidr: str):
        self.etcd = etcd
        self.network = ipaddress.ip_network(service_cidr, strict=False)

    @property
    def kubernetes_ip(self) -> str:
        """The first address of the range is the kubernetes Service's, as upstream."""
        return str(self.network.network_address + 1)

    def check_ip(self, ip: str) -> None:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            raise errors.invalid("Service", "", [errors.invalid_value(
                "spec.clusterIPs[0]", ip, "must be a valid IP address")]) from None
        if addr not in self.network or addr in (self.network.network_address,
                                                self.network.broadcast_address):
            raise errors.invalid("Service", "", [errors.invalid_value(
                "spec.clusterIPs[0]", ip,
                f"failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid "
                f"range. The range of valid IPs is {self.network}")])

    async def _taken(self, prefix: str) -> set[str]:
        kvs, _, _ = await self.etcd.range(prefix)
        return {kv.key[len(prefix):] for kv in kvs}

    async def pick_ip(self, exclude: set[str] = frozenset()) -> str:
        taken = await self._taken(IP_PREFIX) | set(exclude)
        size = self.network.num_addresses
        # Random probing keeps concurrent allocators from colliding on one address.
        first = 2  # network address and the kubernetes Service address are reserved
        last = size - 2 if self.network.version == 4 else min(size - 1, 1 << 20)
        if last < first:
            raise errors.internal_error("service-cluster-ip-range is too small")
        for _ in range(256):
            ip = str(self.network.network_address + random.randint(first, last))
            if ip not in taken:
                return ip
        for off in range(first, last + 1):
            ip = str(self.network.network_address + off)
            if ip not in taken:
                return ip
        raise errors.internal_error("failed to allocate a serviceIP: range is full")

    async def pick_ports(self, count: int, exclude: set[int] = frozenset()) -> list[int]:
        taken = {int(p) for p in await self._taken(PORT_PREFIX)} | set(exclude)
        free = [p for p in range(NODEPORT_RANGE[0], NODEPORT_RANGE[1] + 1) if p not in taken]
        if len(free) < count:
            raise errors.internal_error("failed to allocate a nodePort: range is full")
        return random.sample(free, count)

    # Transaction fragments.
    def claim(self, key: str, owner: str):
        return [self.etcd.cmp_absent(key)], [self.etcd.op_put(key, owner.encode())]

    def release(self, key: str):
        return self.etcd.op_delete(key)


def service_ips(svc: dict) -> list[str]:
    spec = svc.get("spec") or {}
    ips = list(spec.get("clusterIPs") or [])
    if not ips and spec.get("clusterIP"):
        ips = [spec["clusterIP"]]
    return [ip for ip in ips if ip and ip != "None"]


def service_node_ports(svc: dict) -> list[int]:
    return [p["nodePort"] for p in (svc.get("spec") or {}).get("ports") or []
            if p.get("nodePort")]


def wants_node_ports(svc: dict) -> bool:
    return (svc.get("spec") or {}).get("type") in ("NodePort", "LoadBalancer")
