"""Node routes and pod egress masquerade (docs/adr/0005-node-routes.md).

Every node routes each other node's spec.podCIDR via that node's InternalIP, so
pod-to-pod traffic crosses nodes without NAT; pod traffic to anything outside
the cluster's networks is masqueraded. Routes carry our own routing protocol
number, so the loop finds (and removes) exactly the routes it made, also after
a restart. The plan is pure (Nodes and current routes in, commands out); one
level-triggered reconcile applies it.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass

from bootstrap.agents.proxy.iptables import Runner

log = logging.getLogger(__name__)

ROUTE_PROTO = "200"      # ours: not used by the kernel, DHCP or routing daemons
EGRESS_CHAIN = "KUBE-POD-EGRESS"
EGRESS_COMMENT = "bootstrap pod egress masquerade"


@dataclass(frozen=True)
class Route:
    dst: str
    via: str


def internal_ip(node: dict) -> str | None:
    for a in (node.get("status") or {}).get("addresses") or []:
        if a.get("type") == "InternalIP" and ":" not in a.get("address", ":"):
            return a["address"]
    return None


def pod_cidrs(node: dict) -> list[str]:
    spec = node.get("spec") or {}
    cidrs = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
    return [c for c in cidrs if ":" not in c]


def wanted_routes(nodes: list[dict], self_name: str) -> set[Route]:
    out = set()
    for node in nodes:
        if (node.get("metadata") or {}).get("name") == self_name:
            continue
        via = internal_ip(node)
        if not via:
            continue
        for cidr in pod_cidrs(node):
            out.add(Route(str(ipaddress.ip_network(cidr, strict=False)), via))
    return out


def parse_routes(ip_json: str) -> set[Route]:
    """`ip -j route show proto 200` -> routes (dst in CIDR form)."""
    out = set()
    for r in json.loads(ip_json or "[]"):
        dst, via = r.get("dst"), r.get("gateway")
        if not (dst and via):
            continue
        try:
            out.add(Route(str(ipaddress.ip_network(dst, strict=False)), via))
        except ValueError:        # "default" and other non-prefix destinations
            continue
    return out


def route_commands(wanted: set[Route], current: set[Route]) -> list[list[str]]:
    cmds = []
    wanted_dsts = {r.dst for r in wanted}
    for r in sorted(current - wanted, key=lambda r: r.dst):
        if r.dst not in wanted_dsts:          # a changed gateway is replaced below
            cmds.append(["ip", "route", "del", r.dst, "proto", ROUTE_PROTO])
    for r in sorted(wanted - current, key=lambda r: r.dst):
        cmds.append(["ip", "route", "replace", r.dst, "via", r.via, "proto", ROUTE_PROTO])
    return cmds


def egress_rules(cluster_cidr: str, nodes: list[dict], extra: list[str]) -> str:
    """iptables-restore text for the masquerade chain: pod sources going to
    destinations outside the pod network, the node addresses and ``extra`` are
    masqueraded. Service IPs never reach POSTROUTING undNATed (kube-proxy DNATs
    them first), so the service range needs no exception here."""
    keep = [cluster_cidr, *sorted({f"{ip}/32" for n in nodes if (ip := internal_ip(n))}),
            *extra]
    lines = ["*nat", f":{EGRESS_CHAIN} - [0:0]"]
    lines += [f"-A {EGRESS_CHAIN} -d {c} -j RETURN" for c in keep]
    lines.append(f"-A {EGRESS_CHAIN} -m addrtype ! --dst-type LOCAL -j MASQUERADE")
    lines += ["COMMIT", ""]
    return "\n".join(lines)


def egress_jump(cluster_cidr: str) -> list[str]:
    return ["-s", cluster_cidr, "-m", "comment", "--comment", EGRESS_COMMENT, "-j", EGRESS_CHAIN]


class NodeRoutes:
    """Applies the plan; ``reconcile`` is idempotent and safe to call on every
    Node event."""

    # Node status updates arrive every few seconds and rarely change the plan:
    # the egress chain is rewritten when its text changes, or at least this often
    # (to repair it if someone flushed the table).
    EGRESS_REFRESH = 60.0

    def __init__(self, node_name: str, runner: Runner, cluster_cidr: str = "",
                 non_masquerade: list[str] | None = None, *,
                 clock: Callable[[], float] = time.monotonic):
        self.node_name = node_name
        self.runner = runner
        self.cluster_cidr = cluster_cidr
        self.non_masquerade = non_masquerade or []
        self.clock = clock
        self._egress: tuple[str, float] | None = None   # (text, when) last applied

    def current(self) -> set[Route]:
        out = self.runner.run(["ip", "-j", "route", "show", "proto", ROUTE_PROTO]).stdout
        return parse_routes(out)

    def reconcile(self, nodes: list[dict]) -> list[list[str]]:
        # Routing pods' packets between nodes is forwarding (the CNI bridge plugin
        # turns this on too, but only once a pod exists).
        self.runner.sysctl("net.ipv4.ip_forward", "1")
        cmds = route_commands(wanted_routes(nodes, self.node_name), self.current())
        for cmd in cmds:
            self.runner.run(cmd)
        if self.cluster_cidr:
            text = egress_rules(self.cluster_cidr, nodes, self.non_masquerade)
            last = self._egress
            if last is None or last[0] != text or self.clock() - last[1] > self.EGRESS_REFRESH:
                self.runner.restore(text)
                base = [self.runner.iptables, "--wait", "-t", "nat"]
                args = egress_jump(self.cluster_cidr)
                if self.runner.run([*base, "-C", "POSTROUTING", *args], check=False).returncode:
                    self.runner.run([*base, "-A", "POSTROUTING", *args])
                self._egress = (text, self.clock())
        return cmds

    def cleanup(self) -> None:
        for r in sorted(self.current(), key=lambda r: r.dst):
            self.runner.run(["ip", "route", "del", r.dst, "proto", ROUTE_PROTO], check=False)
        try:
            saved = self.runner.run([f"{self.runner.iptables}-save", "-t", "nat"]).stdout
        except Exception:
            return
        # The jump's source CIDR may be unknown here (--cleanup): find it in the table.
        for line in saved.splitlines():
            if line.startswith("-A POSTROUTING ") and f"-j {EGRESS_CHAIN}" in line:
                self.runner.run([self.runner.iptables, "--wait", "-t", "nat", "-D",
                                 *shlex.split(line)[1:]], check=False)
        self._egress = None
        if f":{EGRESS_CHAIN} " in saved:
            self.runner.flush_delete_chains("nat", [EGRESS_CHAIN])
