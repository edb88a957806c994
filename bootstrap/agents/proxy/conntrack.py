"""Which UDP conntrack entries go stale after a change (upstream's
conntrack cleanup in the iptables proxier).

UDP has no connection close: a client keeps sending to the DNAT target chosen
for its first packet, even after that endpoint is gone. Entries for removed
endpoints are deleted; and a service that had no endpoints (its packets were
REJECTed, and the REJECT is remembered by conntrack) gets its entries flushed
when it gains one.
"""

from __future__ import annotations

from bootstrap.agents.proxy.model import Endpoint, ServicePort, categorize

Key = tuple[str, str, str, str]


def _reachable(sp: ServicePort, eps: tuple[Endpoint, ...]) -> set[str]:
    return {e.ip for e in categorize(sp, eps)[2]}


def stale_entries(old_ports: dict[Key, ServicePort], old_eps: dict[Key, tuple[Endpoint, ...]],
                  new_ports: dict[Key, ServicePort], new_eps: dict[Key, tuple[Endpoint, ...]]
                  ) -> list[list[str]]:
    """conntrack -D argument lists for one service's change."""
    out: list[list[str]] = []
    for key, old in old_ports.items():
        if old.protocol != "UDP":
            continue
        before = _reachable(old, old_eps.get(key, ()))
        new = new_ports.get(key)
        after = _reachable(new, new_eps.get(key, ())) if new else set()
        for ip in sorted(before - after):
            out.append(["--orig-dst", old.cluster_ip, "--dst-nat", ip, "-p", "udp"])
            if old.node_port:
                out.append(["-p", "udp", "--dport", str(old.node_port), "--dst-nat", ip])
    for key, new in new_ports.items():
        if new.protocol != "UDP":
            continue
        old = old_ports.get(key)
        had = bool(old) and bool(_reachable(old, old_eps.get(key, ())))
        if not had and _reachable(new, new_eps.get(key, ())):
            out.append(["--orig-dst", new.cluster_ip, "-p", "udp"])
            if new.node_port:
                out.append(["-p", "udp", "--dport", str(new.node_port)])
    return out
