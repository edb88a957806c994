"""A set of equal-sized subnets carved from one cluster CIDR (upstream's cidrset).

Subnet ``i`` of ``10.244.0.0/16`` with mask 24 is ``10.244.i.0/24``. Allocation
walks from the subnet after the last one handed out, so a released subnet is
not reused at once (a node that comes back keeps seeing its old pods' routes go).
"""

from __future__ import annotations

import ipaddress

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Upstream refuses cluster CIDRs that would make more than 2^16 node subnets.
MAX_PREFIX_DIFF = 16


class CIDRSetError(ValueError):
    pass


class CIDRRangeNoCIDRsRemaining(CIDRSetError):
    def __init__(self, cluster: IPNetwork):
        super().__init__(f"CIDR allocation failed; there are no remaining CIDRs left to "
                         f"allocate in the accepted range {cluster}")


class CIDRSet:
    def __init__(self, cluster_cidr: str | IPNetwork, mask_size: int):
        self.cluster = ipaddress.ip_network(cluster_cidr, strict=False)
        bits = self.cluster.max_prefixlen
        if not self.cluster.prefixlen <= mask_size <= bits:
            raise CIDRSetError(f"node CIDR mask size {mask_size} does not fit in cluster "
                               f"CIDR {self.cluster}")
        if mask_size - self.cluster.prefixlen > MAX_PREFIX_DIFF:
            raise CIDRSetError(f"cluster CIDR {self.cluster} with node mask {mask_size} "
                               f"gives more than 2^{MAX_PREFIX_DIFF} subnets")
        self.mask_size = mask_size
        self.max = 1 << (mask_size - self.cluster.prefixlen)
        self._shift = bits - mask_size
        self._base = int(self.cluster.network_address)
        self._used: set[int] = set()
        self._next = 0

    def __len__(self) -> int:
        return len(self._used)

    def _index(self, cidr: str | IPNetwork) -> int:
        net = ipaddress.ip_network(cidr, strict=False)
        if net.version != self.cluster.version or not net.subnet_of(self.cluster):
            raise CIDRSetError(f"CIDR {net} is outside the cluster CIDR {self.cluster}")
        if net.prefixlen != self.mask_size:
            raise CIDRSetError(f"CIDR {net} does not have the node mask size "
                               f"/{self.mask_size}")
        return (int(net.network_address) - self._base) >> self._shift

    def _cidr(self, index: int) -> IPNetwork:
        addr = ipaddress.ip_address(self._base + (index << self._shift))
        return ipaddress.ip_network(f"{addr}/{self.mask_size}")

    def occupy(self, cidr: str | IPNetwork) -> None:
        """Mark an existing allocation (read back from Nodes after a restart)."""
        self._used.add(self._index(cidr))

    def occupy_overlapping(self, other: str | IPNetwork) -> None:
        """Mark every subnet that overlaps ``other`` (upstream's filterOutServiceRange:
        node subnets never cover the Service ClusterIP range)."""
        net = ipaddress.ip_network(other, strict=False)
        if net.version != self.cluster.version or not net.overlaps(self.cluster):
            return
        first = max(int(net.network_address), self._base)
        last = min(int(net.broadcast_address), int(self.cluster.broadcast_address))
        for index in range((first - self._base) >> self._shift,
                           ((last - self._base) >> self._shift) + 1):
            self._used.add(index)

    def release(self, cidr: str | IPNetwork) -> None:
        self._used.discard(self._index(cidr))

    def allocate_next(self) -> IPNetwork:
        for step in range(self.max):
            index = (self._next + step) % self.max
            if index not in self._used:
                self._used.add(index)
                self._next = (index + 1) % self.max
                return self._cidr(index)
        raise CIDRRangeNoCIDRsRemaining(self.cluster)

    def contains(self, cidr: str | IPNetwork) -> bool:
        try:
            return self._index(cidr) in self._used
        except CIDRSetError:
            return False
