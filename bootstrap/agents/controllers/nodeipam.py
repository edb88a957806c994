"""nodeipam: each Node gets spec.podCIDR / spec.podCIDRs from --cluster-cidr
(upstream's RangeAllocator); subnets overlapping --service-cluster-ip-range are
never handed out.

Allocations live only on the Nodes themselves, so the allocator is rebuilt from
the cache before the first assignment: a restarted (or newly elected) manager
never hands out a subnet a Node already holds.
"""

from __future__ import annotations

import ipaddress

from bootstrap.api.controller import Controller
from bootstrap.api.errors import APIError
from bootstrap.api.events import NORMAL
from bootstrap.api.resources import by_gvr
from bootstrap.errors import UserError

from .cidrset import CIDRRangeNoCIDRsRemaining, CIDRSet, CIDRSetError
from .util import object_ref

NODES = by_gvr("", "v1", "nodes")
CIDR_NOT_AVAILABLE = "CIDRNotAvailable"
CIDR_ASSIGNMENT_FAILED = "CIDRAssignmentFailed"
RETRY_EXHAUSTED = 30.0


def cidr_sets(options) -> list[CIDRSet]:
    """One CIDRSet per --cluster-cidr entry (one per IP family), masks as upstream:
    --node-cidr-mask-size for single stack, the -ipv4/-ipv6 variants otherwise."""
    cidrs = [c.strip() for c in (options.cluster_cidr or "").split(",") if c.strip()]
    if not cidrs:
        raise UserError("--allocate-node-cidrs needs a cluster CIDR", where="--cluster-cidr",
                        hint="e.g. --cluster-cidr=10.244.0.0/16")
    sets = []
    for cidr in cidrs:
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise UserError(f"invalid CIDR {cidr!r}", where="--cluster-cidr",
                            hint="e.g. 10.244.0.0/16 or 10.244.0.0/16,fd00:10:244::/56") from None
        if net.version == 4:
            mask = options.node_cidr_mask_size_ipv4 or (
                options.node_cidr_mask_size if len(cidrs) == 1 else 0) or 24
        else:
            mask = options.node_cidr_mask_size_ipv6 or (
                options.node_cidr_mask_size if len(cidrs) == 1 else 0) or 64
        try:
            sets.append(CIDRSet(net, mask))
        except CIDRSetError as exc:
            raise UserError(str(exc), where="--node-cidr-mask-size") from None
    if len({s.cluster.version for s in sets}) != len(sets):
        raise UserError("at most one CIDR per IP family", where="--cluster-cidr")
    for svc in (c.strip() for c in (options.service_cluster_ip_range or "").split(",")):
        if not svc:
            continue
        try:
            for s in sets:
                s.occupy_overlapping(svc)
        except ValueError:
            raise UserError(f"invalid CIDR {svc!r}", where="--service-cluster-ip-range",
                            hint="e.g. 10.96.0.0/12") from None
    return sets


def node_cidrs(node: dict) -> list[str]:
    spec = node.get("spec") or {}
    return list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))


class NodeIpamController(Controller):
    name = "nodeipam"

    def __init__(self, client, factory, recorder=None, sets: list[CIDRSet] | None = None):
        super().__init__(client, factory, recorder)
        self.sets = sets or []
        self.nodes = factory.informer(NODES)
        self.nodes.add_handler(on_add=self.enqueue, on_update=lambda o, n: self.enqueue(n),
                               on_delete=self._deleted)
        self._primed = False

    @classmethod
    def from_options(cls, client, factory, recorder, options):
        if not options.allocate_node_cidrs:
            return None  # upstream does not start nodeipam without --allocate-node-cidrs
        return cls(client, factory, recorder, cidr_sets(options))

    def _set_for(self, cidr: str) -> CIDRSet | None:
        try:
            version = ipaddress.ip_network(cidr, strict=False).version
        except ValueError:
            return None
        return next((s for s in self.sets if s.cluster.version == version), None)

    def _occupy(self, node: dict) -> None:
        for cidr in node_cidrs(node):
            s = self._set_for(cidr)
            if s is None:
                continue
            try:
                s.occupy(cidr)
            except CIDRSetError as exc:  # assigned by someone else outside our range
                self.log.info("node %s: %s", node["metadata"]["name"], exc)

    def _deleted(self, node: dict) -> None:
        for cidr in node_cidrs(node):
            s = self._set_for(cidr)
            if s is not None and s.contains(cidr):
                s.release(cidr)

    def _prime(self) -> None:
        if not self._primed:
            for node in self.nodes.list():
                self._occupy(node)
            self._primed = True

    async def reconcile(self, key: str) -> float | None:
        self._prime()
        node = self.nodes.get(key)
        if node is None:
            return None
        if node_cidrs(node):
            self._occupy(node)
            return None
        picked = []
        try:
            for s in self.sets:
                picked.append((s, s.allocate_next()))
        except CIDRRangeNoCIDRsRemaining as exc:
            for s, cidr in picked:
                s.release(cidr)
            self.log.warning("node %s: %s", key, exc)
            self._event(node, CIDR_NOT_AVAILABLE)
            return RETRY_EXHAUSTED
        cidrs = [str(c) for _, c in picked]
        # The cached resourceVersion makes a stale cache a 409, never a second CIDR.
        patch = {"metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
                 "spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs}}
        try:
            await self.client.patch(NODES, key, patch, patch_type="merge")
        except APIError as exc:
            for s, cidr in picked:
                s.release(cidr)
            if exc.code == 404:
                return None
            if exc.code != 409:
                self._event(node, CIDR_ASSIGNMENT_FAILED)
            raise
        self.log.info("node %s: assigned pod CIDRs %s", key, ",".join(cidrs))
        return None

    def _event(self, node: dict, status: str) -> None:
        if self.recorder is not None:
            # RecordNodeStatusChange: a Normal event whose reason is the new status.
            self.recorder.event(object_ref(node, "Node"), NORMAL, status,
                                f"Node {node['metadata']['name']} status is now: {status}")
