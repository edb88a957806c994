"""cluster up after etcd: containerd, the API endpoint, init/join over SSH, node agents, wait.

As a person would by hand: ``bootstrap init`` on the first control-plane host,
``bootstrap join --control-plane`` on the others one at a time (etcd grows
while quorum holds), ``bootstrap join`` on the workers in parallel, each run
over SSH by the installed toolkit (/opt/bootstrap/current/bin/bootstrap) and
reported as changed only when its last line says it changed something. The
control machine keeps what the commands need in the inventory's artifacts dir:
the cluster config the hosts get, a bootstrap token, the discovery kubeconfig
(file discovery: the control machine holds the CA, so nodes need no pin), the
kube-proxy kubeconfig, and admin.conf for the user.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from bootstrap import __version__
from bootstrap.config.cluster import dump_cluster_config
from bootstrap.errors import UserError
from bootstrap.flows import apiobjects, node_vars, versions
from bootstrap.pki import kubeconfig as kc
from bootstrap.pki.certs import CLIENT_AUTH, CertSpec, cert_to_pem
from bootstrap.pki.store import require_ca
from bootstrap.pki.tokens import generate_token

TOKEN_MAX_AGE = 12 * 3600  # the token lives 24 h on the cluster; renewed at half-life
REMOTE_CONFIG = "/etc/kubernetes/kubeadm-config.yaml"
REMOTE_DISCOVERY = "/etc/kubernetes/discovery.conf"


@dataclass(frozen=True)
class Artifacts:
    """Files on the control machine the node phases hand to hosts."""

    dir: Path
    config: Path
    token: str
    discovery: Path
    kube_proxy: Path
    dns: Path
    admin: Path
    endpoint: node_vars.Endpoint
    first_cp: object


def _write_if_changed(path: Path, text: str, mode: int = 0o600) -> None:
    if path.exists() and path.read_text() == text:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    tmp.replace(path)


def _token(path: Path, now: float) -> str:
    if path.exists() and now - path.stat().st_mtime < TOKEN_MAX_AGE:
        token = path.read_text().strip()
        if token:
            return token
    token = generate_token()
    _write_if_changed(path, token + "\n")
    return token


def prepare_artifacts(ctx, now: float | None = None) -> Artifacts:
    inv, pki = ctx.inventory, ctx.pki_dir
    art = Path(pki).parent
    endpoint = node_vars.api_endpoint(inv, ctx.config.bind_port)
    hcfg = node_vars.host_config(ctx.config, inv, endpoint)
    cfg_path = art / "kubeadm-config.yaml"
    _write_if_changed(cfg_path, dump_cluster_config(hcfg))
    ca = require_ca(Path(pki), "ca", "the cluster's kubeconfigs")
    first = inv.control_plane[0]
    # Nodes discover the cluster at the endpoint they will use; the user's admin.conf
    # points at an address this machine reaches (the localhost balancer is the nodes').
    server = endpoint.url if endpoint.mode != "localhost-lb" else \
        node_vars.Endpoint("single", first.node_ip, hcfg.bind_port).url
    discovery = art / "discovery.conf"
    _write_if_changed(discovery, apiobjects.cluster_info_kubeconfig(server, cert_to_pem(ca.cert)))
    kube_proxy = art / "kube-proxy.conf"
    dns = art / "dns.conf"
    admin = art / "admin.conf"
    for path, spec, url in (
        (kube_proxy, CertSpec("system:kube-proxy", (), (CLIENT_AUTH,)), endpoint.url),
        (dns, CertSpec(apiobjects.DNS_USER, (), (CLIENT_AUTH,)), endpoint.url),
        (admin, kc.KUBECONFIGS["admin"].spec(""), server),
    ):
        if not path.exists() or kc.read_kubeconfig(path).server != url:
            kc.write_kubeconfig(path, cluster_name=hcfg.cluster_name, server=url, ca=ca, spec=spec,
                                validity=hcfg.certificate_validity_period,
                                algorithm=hcfg.encryption_algorithm)
    token = _token(art / "bootstrap-token", time.time() if now is None else now)
    return Artifacts(art, cfg_path, token, discovery, kube_proxy, dns, admin, endpoint, first)


def _artifacts(ctx) -> Artifacts:
    if getattr(ctx, "artifacts", None) is None:
        ctx.artifacts = prepare_artifacts(ctx)
    return ctx.artifacts


def _k8s_hosts(ctx) -> list[str]:
    inv = ctx.inventory
    return ctx.hosts(dict.fromkeys(h.name for h in [*inv.control_plane, *inv.workers]))


def run_containerd(ctx) -> None:
    from bootstrap.images import build, busybox_spec, pause_spec
    from bootstrap.images.busybox import archive_name
    from bootstrap.images.registry import registry_vars

    hosts = _k8s_hosts(ctx)
    if not hosts:
        return
    art = Path(ctx.pki_dir).parent
    images = art / "images"
    for spec in (pause_spec(), busybox_spec()):
        if not (images / archive_name(spec.ref)).exists():
            build(spec, images)
    reg = ctx.inventory.control_plane[0]
    ctx.play("containerd and images", hosts, ["containerd", "registry"], vars={
        "containerd_images_local": str(images),
        **registry_vars(Path(ctx.pki_dir), reg.name, reg.node_ip)})


def run_loadbalancer(ctx) -> None:
    a = _artifacts(ctx)
    if a.endpoint.mode != "localhost-lb":
        return
    cps = {h.name for h in ctx.inventory.control_plane}
    hosts = [h for h in _k8s_hosts(ctx) if h not in cps]
    ctx.play("localhost load balancer", hosts, ["haproxy"], vars={
        "lb_servers": node_vars.lb_servers(ctx.inventory, ctx.config.bind_port),
        "loadbalancer_apiserver_port": a.endpoint.port})


def _kubeadm_play(ctx, name: str, hosts: list[str], args_for, *, serial=None, config=False,
                  discovery=False) -> None:
    """Run `bootstrap <args>` on each host, args from the host's inventory facts."""
    a = _artifacts(ctx)
    per_host = {h: args_for(ctx.inventory.hosts[h]) for h in hosts}
    ctx.play(name, hosts, ["kubeadm"], serial=serial, vars={
        "kubeadm_args": "{{ kubeadm_host_args[inventory_hostname] }}",
        "kubeadm_host_args": per_host,
        "kubeadm_config_local": str(a.config) if config else "",
        "kubeadm_discovery_local": str(a.discovery) if discovery else "",
        "kubeadm_dry_run": ctx.dry_run})


def run_control_plane(ctx) -> None:
    a = _artifacts(ctx)
    first = a.first_cp
    stacked_skip = "etcd," if ctx.inventory.topology == "stacked" else ""

    def init_args(h) -> str:
        # etcd is cluster up's own phase; kube-proxy is a unit on every node (run_node_agents).
        return (f"init --config {REMOTE_CONFIG} --node-name {h.name} --advertise-address "
                f"{h.node_ip} --token {a.token} --skip-phases {stacked_skip}addons/kube-proxy")

    def join_args(h) -> str:
        # The bind port is the joining host's own setting in kubeadm (JoinConfiguration),
        # not in the ClusterConfiguration the cluster hands out: every API server gets it.
        return (f"join --discovery-file {REMOTE_DISCOVERY} --token {a.token} --control-plane "
                f"--node-name {h.name} --advertise-address {h.node_ip} "
                f"--apiserver-bind-port {ctx.config.bind_port}")

    if first.name in ctx.hosts([first.name]):
        _kubeadm_play(ctx, "bootstrap init", [first.name], init_args, config=True)
    others = ctx.hosts(h.name for h in ctx.inventory.control_plane[1:])
    if others:
        # One at a time: each control-plane join may add an etcd member.
        _kubeadm_play(ctx, "bootstrap join --control-plane", others, join_args, serial=1,
                      discovery=True)


def run_workers(ctx) -> None:
    a = _artifacts(ctx)
    cps = {h.name for h in ctx.inventory.control_plane}
    workers = [h for h in ctx.hosts(h.name for h in ctx.inventory.workers) if h not in cps]

    def join_args(h) -> str:
        return (f"join --discovery-file {REMOTE_DISCOVERY} --token {a.token} "
                f"--node-name {h.name} --advertise-address {h.node_ip}")

    if workers:
        _kubeadm_play(ctx, "bootstrap join", workers, join_args, discovery=True)


def _agents_bin() -> str:
    # The install the agents phase put on the hosts (this toolkit's version): units
    # name their install, so `bootstrap upgrade` moves them one at a time.
    return versions.agents_bin(__version__)


def run_node_agents(ctx) -> None:
    a = _artifacts(ctx)
    hosts = _k8s_hosts(ctx)
    ctx.play("kube-proxy", hosts, ["kube-proxy"], vars={
        "agents_bin": _agents_bin(),
        "kube_proxy_kubeconfig_local": str(a.kube_proxy),
        "pod_subnet": ctx.config.networking.pod_subnet})


def dns_hosts(inv) -> list:
    """Where the DNS servers run: every control-plane host, plus the first workers
    when that is fewer than two, so the kube-dns Service always has two replicas."""
    hosts = list(inv.control_plane)
    for w in inv.workers:
        if len(hosts) >= 2:
            break
        if w not in hosts:
            hosts.append(w)
    return hosts


def run_dns(ctx) -> None:
    a = _artifacts(ctx)
    hosts = ctx.hosts(h.name for h in dns_hosts(ctx.inventory))
    ctx.play("cluster DNS", hosts, ["dns"], vars={
        "agents_bin": _agents_bin(),
        "dns_kubeconfig_local": str(a.dns),
        "cluster_domain": ctx.config.networking.dns_domain})


def run_wait(ctx, clock=time.monotonic, sleep=time.sleep) -> None:
    """Every node registered and Ready, then a summary."""
    a = _artifacts(ctx)
    if ctx.dry_run:
        return
    from bootstrap.flows.kubeapi import KubeAPI

    api = KubeAPI.from_kubeconfig(str(a.admin))
    want = set(_k8s_hosts(ctx))
    timeout = float(ctx.extra_vars.get("wait_timeout") or 300)
    state: dict = {}

    def ready() -> bool:
        nodes = api.list(("", "v1", "nodes"))
        state["nodes"] = nodes
        ok = {n["metadata"]["name"] for n in nodes if _is_ready(n)}
        return want <= ok

    if not api.wait(ready, timeout, clock=clock, sleep=sleep):
        seen = {n["metadata"]["name"]: _is_ready(n) for n in state.get("nodes", [])}
        missing = sorted(want - {k for k, v in seen.items() if v})
        raise UserError(f"nodes not Ready after {timeout:g}s: {', '.join(missing)}",
                        where="cluster up wait",
                        hint="see `journalctl -u kubelet` on them; registered: "
                             + (", ".join(f"{k}={'Ready' if v else 'NotReady'}"
                                          for k, v in sorted(seen.items())) or "none"))
    dns = [h.node_ip for h in dns_hosts(ctx.inventory)]
    name = f"kubernetes.default.svc.{ctx.config.networking.dns_domain}"
    if dns and not api.wait(lambda: all(dns_answers(ip, name) for ip in dns), timeout,
                            clock=clock, sleep=sleep):
        raise UserError(f"cluster DNS on {', '.join(dns)} does not answer {name} after "
                        f"{timeout:g}s", where="cluster up wait",
                        hint="see `journalctl -u bootstrap-dns` on those hosts")
    ctx.summary = summary(a, state.get("nodes", []), expiring_certificates(ctx, a),
                          str(ctx.inventory.path))


def expiring_certificates(ctx, a: Artifacts) -> list:
    """What expires within 30 days: the artifacts on this machine, plus the
    kubeconfigs init/join made on the control-plane hosts (one command each)."""
    from bootstrap.flows.cluster_certs import expiring_soon, read_host

    conns = getattr(ctx, "connections", None) or {}
    hosts = [read_host(conns[h.name]) for h in ctx.inventory.control_plane if h.name in conns]
    # A host that cannot answer is not a reason to fail an otherwise good run.
    return expiring_soon(a.dir, [h for h in hosts if h.reachable])


def dns_answers(ip: str, name: str) -> bool:
    """One A query to a DNS server on its node address: the cluster's own name must
    resolve (the server synced its informers and serves the zone)."""
    from dnslib import QTYPE, DNSRecord

    try:
        reply = DNSRecord.parse(DNSRecord.question(name, "A").send(ip, 53, timeout=2))
    except (OSError, ValueError):
        return False
    return any(r.rtype == QTYPE.A for r in reply.rr)


def _is_ready(node: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def summary(a: Artifacts, nodes: list[dict], expiring: list = (),
            inventory_path: str = "INVENTORY") -> str:
    lines = ["", "Cluster is up:"]
    for n in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        labels = n["metadata"].get("labels") or {}
        role = "control-plane" if apiobjects.CONTROL_PLANE_LABEL in labels else "worker"
        info = (n.get("status") or {}).get("nodeInfo") or {}
        lines.append(f"  {n['metadata']['name']:<16} {role:<14} Ready  "
                     f"{info.get('kubeletVersion', '')}")
    lines += [f"  API endpoint: {a.endpoint.url} ({a.endpoint.mode})",
              f"  admin kubeconfig: {a.admin}",
              f"  try: kubectl --kubeconfig {a.admin} get nodes -o wide"]
    if expiring:
        from bootstrap.flows.cluster_certs import WARN_WITHIN
        from bootstrap.pki.expiry import short_duration

        shown = ", ".join(f"{e.where}:{e.name} ({short_duration(e.residual)})"
                          for e in expiring[:8])
        more = f" and {len(expiring) - 8} more" if len(expiring) > 8 else ""
        lines += [f"  WARNING: {len(expiring)} certificate(s) expire within {WARN_WITHIN.days} "
                  f"days: {shown}{more}",
                  f"  renew them with: bootstrap cluster renew-certs -i {inventory_path}"]
    return "\n".join(lines)
