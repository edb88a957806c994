"""The iptables rule generator: ServicePorts and their Endpoints in,
iptables-restore text out. Pure; the syncer does all I/O.

The chain layout is upstream kube-proxy's iptables mode (pkg/proxy/iptables):

nat:    PREROUTING/OUTPUT -> KUBE-SERVICES -> KUBE-SVC-* (cluster policy) | KUBE-SVL-*
        (local policy) -> KUBE-SEP-* (DNAT); KUBE-SERVICES' last rule -> KUBE-NODEPORTS
        -> KUBE-EXT-* -> policy chain; KUBE-MARK-MASQ sets the masquerade bit and
        POSTROUTING -> KUBE-POSTROUTING masquerades marked packets (clearing the mark).
filter: INPUT/FORWARD/OUTPUT -> KUBE-SERVICES / KUBE-EXTERNAL-SERVICES (REJECT or
        DROP for services without usable endpoints), KUBE-FORWARD (accept marked and
        established traffic), KUBE-PROXY-FIREWALL (load-balancer source ranges:
        always empty here), KUBE-FIREWALL (localhost NodePorts guard), KUBE-NODEPORTS.

A service's own chains are written only when it is in ``write``: iptables-restore
--noflush leaves chains it is not told about alone, which is what makes partial
syncs cheap. The top-level chains are rewritten on every sync.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bootstrap.agents.proxy.model import Endpoint, ServicePort, categorize

SERVICES = "KUBE-SERVICES"
EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
NODEPORTS = "KUBE-NODEPORTS"
POSTROUTING = "KUBE-POSTROUTING"
MARK_MASQ = "KUBE-MARK-MASQ"
FORWARD = "KUBE-FORWARD"
PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
FIREWALL = "KUBE-FIREWALL"

NAT_CHAINS = (SERVICES, NODEPORTS, POSTROUTING, MARK_MASQ)
FILTER_CHAINS = (NODEPORTS, SERVICES, EXTERNAL_SERVICES, FORWARD, PROXY_FIREWALL)
# Chains kube-proxy creates per service (stale ones are deleted by prefix).
SERVICE_CHAIN_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-")
NODEPORTS_COMMENT = '"kubernetes service nodeports; NOTE: this must be the last rule in this chain"'


@dataclass(frozen=True)
class Options:
    masquerade_bit: int = 14
    masquerade_all: bool = False
    cluster_cidr: str = ""
    # Upstream's iptables.localhostNodePorts (default true): NodePorts answer on
    # 127.0.0.1 too (route_localnet=1), guarded by KUBE-FIREWALL against martians.
    localhost_nodeports: bool = True
    # None: NodePorts on every local address (addrtype LOCAL); else these IPs only.
    nodeport_ips: tuple[str, ...] | None = None
    random_fully: bool = True
    conntrack_tcp_liberal: bool = False

    @property
    def mark(self) -> str:
        bit = 1 << self.masquerade_bit
        return f"{bit:#x}/{bit:#x}"


@dataclass(frozen=True)
class Jump:
    """A rule in a built-in chain that enters one of ours (upstream's EnsureRule)."""
    table: str
    chain: str
    args: tuple[str, ...]
    prepend: bool = True


def jump_rules(opts: Options | None = None) -> list[Jump]:
    """The jumps from the built-in chains; KUBE-FIREWALL only with localhost NodePorts."""
    def j(table, chain, comment, target, *extra, prepend=True):
        return Jump(table, chain, (*extra, "-m", "comment", "--comment", comment, "-j", target),
                    prepend)
    new = ("-m", "conntrack", "--ctstate", "NEW")
    out = [
        j("filter", "INPUT", "kubernetes load balancer firewall", PROXY_FIREWALL, *new),
        j("filter", "INPUT", "kubernetes health check service ports", NODEPORTS),
        j("filter", "INPUT", "kubernetes externally-visible service portals",
          EXTERNAL_SERVICES, *new),
        j("filter", "INPUT", "kubernetes firewall for dropping marked packets", FIREWALL),
        j("filter", "FORWARD", "kubernetes load balancer firewall", PROXY_FIREWALL, *new),
        j("filter", "FORWARD", "kubernetes forwarding rules", FORWARD),
        j("filter", "FORWARD", "kubernetes service portals", SERVICES, *new),
        j("filter", "FORWARD", "kubernetes externally-visible service portals",
          EXTERNAL_SERVICES, *new),
        j("filter", "OUTPUT", "kubernetes load balancer firewall", PROXY_FIREWALL, *new),
        j("filter", "OUTPUT", "kubernetes service portals", SERVICES, *new),
        j("filter", "OUTPUT", "kubernetes firewall for dropping marked packets", FIREWALL),
        j("nat", "OUTPUT", "kubernetes service portals", SERVICES),
        j("nat", "PREROUTING", "kubernetes service portals", SERVICES),
        j("nat", "POSTROUTING", "kubernetes postrouting rules", POSTROUTING),
    ]
    if opts is not None and not opts.localhost_nodeports:
        out = [r for r in out if r.args[-1] != FIREWALL]
    return out


def missing_jumps(jumps: list[Jump], saved: dict[str, list[str]]) -> list[Jump]:
    """The jumps an iptables-save (table -> lines) does not show. A jump is known by
    chain, comment and target, which iptables-save prints verbatim (it reorders
    match options, so whole lines are not compared)."""
    out = []
    for jump in jumps:
        comment = jump.args[jump.args.index("--comment") + 1]
        head, target = f"-A {jump.chain} ", f"-j {jump.args[-1]}"
        if not any(line.startswith(head) and line.endswith(target) and comment in line
                   for line in saved.get(jump.table, ())):
            out.append(jump)
    return out


def jump_line(jump: Jump) -> str:
    args = " ".join(f'"{a}"' if " " in a else a for a in jump.args)
    return f"{'-I' if jump.prepend else '-A'} {jump.chain} {args}"


def _q(text: str) -> str:
    return f'"{text}"'


def probability(n: int) -> str:
    return f"{1.0 / n:0.10f}"


@dataclass
class ServiceRules:
    """One service port's share of the tables. ``chains`` lists every nat chain it
    owns; ``rules`` their contents; the other lists go into the shared chains."""
    name: str
    chains: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    nat_services: list[str] = field(default_factory=list)
    nat_nodeports: list[str] = field(default_factory=list)
    filter_services: list[str] = field(default_factory=list)
    filter_external: list[str] = field(default_factory=list)


def service_rules(sp: ServicePort, endpoints: tuple[Endpoint, ...], opts: Options) -> ServiceRules:
    out = ServiceRules(sp.name_string)
    name, proto = sp.name_string, sp.proto
    cluster, local, reachable, has_any = categorize(sp, endpoints)
    has_endpoints = bool(reachable)
    cluster_chain, local_chain, ext_chain = sp.cluster_chain, sp.local_chain, sp.external_chain

    internal_chain, has_internal = cluster_chain, has_endpoints
    if sp.internal_local:
        internal_chain, has_internal = local_chain, bool(local)
    external_policy_chain, has_external = cluster_chain, has_endpoints
    if sp.external_local:
        external_policy_chain, has_external = local_chain, bool(local)

    internal_target, internal_comment = "REJECT", _q(f"{name} has no endpoints")
    external_target, external_comment = "REJECT", internal_comment
    if has_any:
        if not has_internal:
            internal_target, internal_comment = "DROP", _q(f"{name} has no local endpoints")
        if not has_external:
            external_target, external_comment = "DROP", _q(f"{name} has no local endpoints")

    dest = f"-m {proto} -p {proto} -d {sp.cluster_ip} --dport {sp.port}"
    cluster_ip_comment = f"-m comment --comment {_q(name + ' cluster IP')}"
    if has_internal:
        out.nat_services.append(f"-A {SERVICES} {cluster_ip_comment} {dest} -j {internal_chain}")
    else:
        out.filter_services.append(
            f"-A {SERVICES} -m comment --comment {internal_comment} {dest} -j {internal_target}")

    uses_external_chain = has_endpoints and sp.externally_accessible
    for ip in sp.external_ips:
        ext_dest = f"-m {proto} -p {proto} -d {ip} --dport {sp.port}"
        if has_external:
            out.nat_services.append(f"-A {SERVICES} -m comment --comment "
                                    f"{_q(name + ' external IP')} {ext_dest} -j {ext_chain}")
        else:
            out.filter_external.append(f"-A {EXTERNAL_SERVICES} -m comment --comment "
                                       f"{external_comment} {ext_dest} -j {external_target}")
    if sp.node_port:
        np = f"-m {proto} -p {proto} --dport {sp.node_port}"
        if has_external:
            out.nat_nodeports.append(f"-A {NODEPORTS} -m comment --comment {name} {np} "
                                     f"-j {ext_chain}")
        else:
            out.filter_external.append(
                f"-A {EXTERNAL_SERVICES} -m comment --comment {external_comment} "
                f"-m addrtype --dst-type LOCAL {np} -j {external_target}")

    rules = out.rules
    uses_cluster_chain = bool(cluster) and sp.uses_cluster_endpoints
    uses_local_chain = bool(local) and sp.uses_local_endpoints
    for chain, used in ((cluster_chain, uses_cluster_chain), (local_chain, uses_local_chain),
                        (ext_chain, uses_external_chain)):
        if used:
            out.chains.append(chain)

    if has_internal:
        # Off-cluster sources reaching a ClusterIP (a static route to the service
        # range via some node) may leave through another node: masquerade them.
        if opts.masquerade_all:
            rules.append(f"-A {internal_chain} {cluster_ip_comment} {dest} -j {MARK_MASQ}")
        elif opts.cluster_cidr:
            rules.append(f"-A {internal_chain} {cluster_ip_comment} {dest} "
                         f"! -s {opts.cluster_cidr} -j {MARK_MASQ}")

    if uses_external_chain:
        if not sp.external_local:
            rules.append(f"-A {ext_chain} -m comment --comment "
                         f"{_q(f'masquerade traffic for {name} external destinations')} "
                         f"-j {MARK_MASQ}")
        else:
            if opts.cluster_cidr:
                # Pods reaching a NodePort behave as if they went out and back in:
                # no traffic policy applies to them.
                rules.append(f"-A {ext_chain} -m comment --comment "
                             f"{_q(f'pod traffic for {name} external destinations')} "
                             f"-s {opts.cluster_cidr} -j {cluster_chain}")
            rules.append(f"-A {ext_chain} -m comment --comment "
                         f"{_q(f'masquerade LOCAL traffic for {name} external destinations')} "
                         f"-m addrtype --src-type LOCAL -j {MARK_MASQ}")
            rules.append(f"-A {ext_chain} -m comment --comment "
                         f"{_q(f'route LOCAL traffic for {name} external destinations')} "
                         f"-m addrtype --src-type LOCAL -j {cluster_chain}")
        if has_external:
            rules.append(f"-A {ext_chain} -j {external_policy_chain}")

    if uses_cluster_chain:
        _balance(rules, sp, cluster_chain, cluster)
    if uses_local_chain:
        _balance(rules, sp, local_chain, local)

    for ep in reachable:
        chain = sp.endpoint_chain(ep)
        out.chains.append(chain)
        rules.append(f"-A {chain} -m comment --comment {name} -s {ep.ip} -j {MARK_MASQ}")
        recent = f"-m recent --name {chain} --set " if sp.affinity_seconds else ""
        rules.append(f"-A {chain} -m comment --comment {name} {recent}"
                     f"-m {proto} -p {proto} -j DNAT --to-destination {ep}")
    return out


def _balance(rules: list[str], sp: ServicePort, chain: str, eps: list[Endpoint]) -> None:
    """KUBE-SVC/SVL -> KUBE-SEP: sticky matches first (ClientIP affinity), then
    random picks with probabilities 1/n, 1/(n-1), ... and a final sure match."""
    name = sp.name_string
    if sp.affinity_seconds:
        for ep in eps:
            sep = sp.endpoint_chain(ep)
            rules.append(f"-A {chain} -m comment --comment {_q(f'{name} -> {ep}')} "
                         f"-m recent --name {sep} --rcheck --seconds {sp.affinity_seconds} "
                         f"--reap -j {sep}")
    n = len(eps)
    for i, ep in enumerate(eps):
        stat = (f"-m statistic --mode random --probability {probability(n - i)} "
                if i < n - 1 else "")
        rules.append(f"-A {chain} -m comment --comment {_q(f'{name} -> {ep}')} "
                     f"{stat}-j {sp.endpoint_chain(ep)}")


Shared = dict[tuple[str, str], tuple[str, ...]]


def shared_chains(fragments: Iterable[ServiceRules], opts: Options) -> Shared:
    """The contents of the chains every service writes into, by (table, chain),
    in the order they are written."""
    frags = sorted(fragments, key=lambda f: f.name)
    mark = opts.mark
    bit = mark.split("/")[0]
    forward = [] if opts.conntrack_tcp_liberal else [
        f"-A {FORWARD} -m conntrack --ctstate INVALID -j DROP"]
    forward += [f'-A {FORWARD} -m comment --comment "kubernetes forwarding rules" '
                f"-m mark --mark {mark} -j ACCEPT",
                f'-A {FORWARD} -m comment --comment "kubernetes forwarding conntrack rule" '
                f"-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"]
    out: Shared = {
        ("filter", NODEPORTS): (),
        ("filter", SERVICES): tuple(r for f in frags for r in f.filter_services),
        ("filter", EXTERNAL_SERVICES): tuple(r for f in frags for r in f.filter_external),
        ("filter", FORWARD): tuple(forward),
        ("filter", PROXY_FIREWALL): (),
    }
    if opts.localhost_nodeports:
        out[("filter", FIREWALL)] = (
            f'-A {FIREWALL} -m comment --comment "block incoming localnet connections" '
            f"-d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate "
            f"RELATED,ESTABLISHED,DNAT -j DROP",)
    services = [r for f in frags for r in f.nat_services]
    if opts.nodeport_ips is None:
        local_only = "" if opts.localhost_nodeports else " ! -d 127.0.0.0/8"
        services.append(f"-A {SERVICES} -m comment --comment {NODEPORTS_COMMENT} "
                        f"-m addrtype --dst-type LOCAL{local_only} -j {NODEPORTS}")
    else:
        services += [f"-A {SERVICES} -m comment --comment {NODEPORTS_COMMENT} "
                     f"-d {ip} -j {NODEPORTS}" for ip in opts.nodeport_ips
                     if opts.localhost_nodeports or not ip.startswith("127.")]
    out[("nat", SERVICES)] = tuple(services)
    out[("nat", NODEPORTS)] = tuple(r for f in frags for r in f.nat_nodeports)
    out[("nat", POSTROUTING)] = (
        f"-A {POSTROUTING} -m mark ! --mark {mark} -j RETURN",
        f"-A {POSTROUTING} -j MARK --xor-mark {bit}",
        f'-A {POSTROUTING} -m comment --comment "kubernetes service traffic requiring SNAT" '
        f"-j MASQUERADE" + (" --random-fully" if opts.random_fully else ""))
    out[("nat", MARK_MASQ)] = (f"-A {MARK_MASQ} -j MARK --or-mark {bit}",)
    return out


def render(fragments: Iterable[ServiceRules], opts: Options, *,
           write: set[str] | None = None, stale: Iterable[str] = (),
           shared: Shared | None = None, unchanged: Iterable[tuple[str, str]] = (),
           jumps: Iterable[Jump] = ()) -> str:
    """The iptables-restore --noflush input for one sync.

    ``write``: names of the service ports whose own chains are (re)written; None
    writes all (a full sync). ``stale``: nat chains to delete (flushed first by
    declaring them, as iptables-restore requires an empty chain for -X).
    ``unchanged``: shared chains left out because they hold what was last written
    (a partial sync that changes one endpoint then touches one service's chains
    only). ``jumps``: missing jump rules from the built-in chains, added in the
    same transaction (one ``iptables -I`` each would reload the whole ruleset with
    iptables-nft). A table with nothing to write is left out.
    """
    jumps = list(jumps)
    frags = sorted(fragments, key=lambda f: f.name)
    shared = shared if shared is not None else shared_chains(frags, opts)
    skip = set(unchanged)
    blocks = []
    for table in ("filter", "nat"):
        chains, rules = [], []
        for (t, chain), lines in shared.items():
            if t == table and (t, chain) not in skip:
                chains.append(f":{chain} - [0:0]")
                rules.extend(lines)
        if table == "nat":
            for f in frags:
                if write is None or f.name in write:
                    chains.extend(f":{c} - [0:0]" for c in f.chains)
                    rules.extend(f.rules)
            doomed = sorted(set(stale))
            chains.extend(f":{c} - [0:0]" for c in doomed)
            rules.extend(f"-X {c}" for c in doomed)
        rules.extend(jump_line(j) for j in jumps if j.table == table)
        if chains or rules:
            blocks += [f"*{table}", *chains, *rules, "COMMIT"]
    return "\n".join([*blocks, ""])


def owned_chains(fragments: Iterable[ServiceRules]) -> set[str]:
    return {c for f in fragments for c in f.chains}


def service_chain(name: str) -> bool:
    return name.startswith(SERVICE_CHAIN_PREFIXES)
