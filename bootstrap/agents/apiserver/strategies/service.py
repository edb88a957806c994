"""Service: ClusterIP and NodePort allocation carried in the write's own etcd
transaction, so several API servers never hand out one address twice."""

from __future__ import annotations

from bootstrap.api import errors

from ..storage import alloc
from .base import Extras, Strategy


class RetryAllocation(Exception):
    """A racing API server took the address we picked: pick again."""


class ServiceStrategy(Strategy):
    def __init__(self, res, allocator: alloc.Allocator):
        super().__init__(res)
        self.alloc = allocator

    async def create_extras(self, obj: dict, retry: bool = False) -> Extras:
        # The address the client asked for, before allocation fills one in.
        user_ip = None if retry else (obj.get("spec") or {}).get("clusterIP")
        cmps, ops = await self._allocate(obj, None, retry=retry)

        async def on_conflict():
            if user_ip and user_ip != "None":
                raise errors.invalid("Service", obj["metadata"]["name"], [errors.invalid_value(
                    "spec.clusterIPs", [user_ip],
                    f"failed to allocate IP {user_ip}: provided IP is already allocated")])
            raise RetryAllocation()
        return Extras(cmps, ops, on_conflict)

    async def update_extras(self, new: dict, old: dict) -> Extras:
        cmps, ops = await self._allocate(new, old)
        return Extras(cmps, ops)

    def removal_extras(self, obj: dict) -> Extras:
        ops = [self.alloc.release(alloc.ip_key(ip)) for ip in alloc.service_ips(obj)]
        ops += [self.alloc.release(alloc.port_key(p)) for p in alloc.service_node_ports(obj)]
        return Extras([], ops)

    async def _allocate(self, svc: dict, old: dict | None, retry: bool = False):
        """Claims for new ClusterIPs/NodePorts, releases for dropped ones."""
        spec = svc.setdefault("spec", {})
        name = f"{svc['metadata'].get('namespace')}/{svc['metadata']['name']}"
        cmps, ops = [], []
        if old is None:
            if spec.get("type") == "ExternalName":
                spec.pop("clusterIP", None)
            elif spec.get("clusterIP") == "None":
                spec["clusterIPs"] = ["None"]
            else:
                ip = spec.get("clusterIP") if not retry else None
                if ip and ip == self.alloc.kubernetes_ip and name == "default/kubernetes":
                    pass
                elif ip:
                    self.alloc.check_ip(ip)
                else:
                    ip = await self.alloc.pick_ip()
                spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
                c, o = self.alloc.claim(alloc.ip_key(ip), name)
                cmps += c
                ops += o
        else:
            # Values the client left out are kept, as upstream's patchAllocatedValues.
            for k in ("clusterIP", "clusterIPs"):
                if not spec.get(k) and (old.get("spec") or {}).get(k):
                    spec[k] = old["spec"][k]
            if alloc.wants_node_ports(svc):
                before = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                          for p in (old.get("spec") or {}).get("ports") or []}
                for p in spec.get("ports") or []:
                    if not p.get("nodePort"):
                        kept = before.get((p.get("port"), p.get("protocol", "TCP")))
                        if kept:
                            p["nodePort"] = kept
        old_ports = set(alloc.service_node_ports(old)) if old else set()
        if alloc.wants_node_ports(svc):
            lo, hi = alloc.NODEPORT_RANGE
            bad = [errors.invalid_value(f"spec.ports[{i}].nodePort", p["nodePort"],
                                        f"provided port is not in the valid range. The range "
                                        f"of valid ports is {lo}-{hi}")
                   for i, p in enumerate(spec.get("ports") or [])
                   if p.get("nodePort") and p["nodePort"] not in old_ports
                   and not lo <= p["nodePort"] <= hi]
            if bad:
                raise errors.invalid("Service", svc["metadata"]["name"], bad)
            missing = [p for p in spec.get("ports") or [] if not p.get("nodePort")]
            fresh = await self.alloc.pick_ports(len(missing), old_ports)
            for p, port in zip(missing, fresh, strict=True):
                p["nodePort"] = port
        else:
            for p in spec.get("ports") or []:
                p.pop("nodePort", None)
        new_ports = set(alloc.service_node_ports(svc))
        for port in new_ports - old_ports:
            c, o = self.alloc.claim(alloc.port_key(port), name)
            cmps += c
            ops += o
        for port in old_ports - new_ports:
            ops.append(self.alloc.release(alloc.port_key(port)))
        return cmps, ops
