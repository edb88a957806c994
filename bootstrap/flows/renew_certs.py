"""``bootstrap cluster renew-certs``: renew every leaf certificate on every host.

What kubespray does with ``kubeadm certs renew all`` on each control-plane
node, for this toolkit's layout: the control machine holds the CAs and every
node's leaves in the artifacts dir (``bootstrap.flows.cluster_pki``), so the
leaves are re-signed there, keeping subject, SANs, usages and keys
(``bootstrap.pki.expiry.renew``), together with the kubeconfigs cluster up
hands out (admin.conf, kube-proxy's, the DNS server's). The kubeconfigs
``init``/``join`` made on each control-plane host (admin, super-admin,
controller-manager, scheduler) are re-signed there by the host's own
toolkit, as kubeadm does. Then one host at a time (roles/renew-certs): copy
the renewed files, restart only the components whose files changed, each
waiting for its health check, so with two or more API servers the API
answers throughout. The kubelet is left alone: it rotates its own client
(and serving) certificate through CSRs. Old certificates are not revoked
(X.509 here has no revocation, as upstream): they stay valid until notAfter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bootstrap.config.inventory import load_inventory
from bootstrap.config.kubespray_vars import effective_config
from bootstrap.engine import Play, Recap, run_play
from bootstrap.errors import UserError
from bootstrap.flows import cluster_pki
from bootstrap.flows.cluster_certs import ARTIFACT_KUBECONFIGS
from bootstrap.flows.cluster_nodes import dns_hosts
from bootstrap.flows.plan import etcd_hosts, pki_files
from bootstrap.pki.catalog import LEAVES
from bootstrap.pki.expiry import renew, renew_kubeconfig
from bootstrap.pki.store import require_ca

# Leaf file bases by the component that must be restarted to use them.
ETCD_FILES = ("etcd/server", "etcd/peer", "etcd/healthcheck-client")
APISERVER_FILES = ("apiserver", "apiserver-kubelet-client", "front-proxy-client",
                   "apiserver-etcd-client")
HOST_KUBECONFIGS = ("admin.conf", "super-admin.conf", "controller-manager.conf",
                    "scheduler.conf")
# etcd re-reads its certificate files on every new TLS handshake; a restart only
# drops the old ones from open connections, and with fewer members than this
# it would stop the cluster.
ETCD_RESTART_MIN_MEMBERS = 3


@dataclass
class HostRenewal:
    host: str
    files: dict[str, list[dict]] = field(default_factory=dict)  # "etcd"/"apiserver" -> files
    kubeconfigs: list[str] = field(default_factory=list)
    kube_proxy: bool = False
    dns: bool = False
    restart_etcd: bool = False

    def certificates(self) -> list[str]:
        """What gets renewed on this host, for the plan and the report."""
        names = [f["dest"].split("/pki/", 1)[-1] for files in self.files.values()
                 for f in files if f["dest"].endswith(".crt")]
        names += self.kubeconfigs
        if self.kube_proxy:
            names.append("kube-proxy kubeconfig")
        if self.dns:
            names.append("dns.conf")
        return names

    def restarts(self) -> list[str]:
        out = []
        if self.files.get("etcd") and self.restart_etcd:
            out.append("etcd")
        if self.files.get("apiserver"):
            out.append("kube-apiserver")
        for conf, unit in (("controller-manager.conf", "kube-controller-manager"),
                           ("scheduler.conf", "kube-scheduler")):
            if conf in self.kubeconfigs:
                out.append(unit)
        if self.kube_proxy:
            out.append("kube-proxy")
        if self.dns:
            out.append("bootstrap-dns")
        return out


def _bucket(rel: str) -> str | None:
    base = rel.rsplit(".", 1)[0]
    if base in ETCD_FILES:
        return "etcd"
    if base in APISERVER_FILES:
        return "apiserver"
    return None


def host_order(inventory) -> list[str]:
    """Separate etcd hosts first, then the control plane, then the workers: a
    component is renewed before the ones that use it as a client."""
    names = [h.name for h in etcd_hosts(inventory)]
    names += [h.name for h in inventory.control_plane] + [h.name for h in inventory.workers]
    return [n for n in dict.fromkeys(names) if n in inventory.hosts]


def plan_renewal(inventory, pki_root: Path) -> list[HostRenewal]:
    cps = {h.name for h in inventory.control_plane}
    k8s = cps | {h.name for h in inventory.workers}
    dns = {h.name for h in dns_hosts(inventory)}
    restart_etcd = len(etcd_hosts(inventory)) >= ETCD_RESTART_MIN_MEMBERS
    out = []
    for name in host_order(inventory):
        r = HostRenewal(name, kube_proxy=name in k8s, dns=name in dns, restart_etcd=restart_etcd)
        for f in pki_files(inventory, name, pki_root):
            bucket = _bucket(f["dest"].split("/etc/kubernetes/pki/", 1)[-1])
            if bucket:
                r.files.setdefault(bucket, []).append(f)
        if name in cps:
            # kubeadm makes super-admin.conf on the init host only, never on a join.
            first = name == inventory.control_plane[0].name
            r.kubeconfigs = [k for k in HOST_KUBECONFIGS if first or k != "super-admin.conf"]
        out.append(r)
    return out


def artifact_leaves(pki_root: Path) -> list[tuple[str, Path]]:
    """(kubeadm name, node dir) of every leaf kept per node in the artifacts dir."""
    out = []
    nodes = Path(pki_root) / "nodes"
    for node_dir in sorted(p for p in nodes.iterdir() if p.is_dir()) if nodes.is_dir() else []:
        for name, d in LEAVES.items():
            if (node_dir / d.crt).exists():
                out.append((name, node_dir))
    return out


def renew_artifacts(pki_root: Path, config, new_key: bool = False) -> list[Path]:
    """Re-sign every node's leaves and the handed-out kubeconfigs in the artifacts dir."""
    pki_root = Path(pki_root)
    renewed = [renew(name, node_dir, node_dir, config, new_key, ca_dir=pki_root)
               for name, node_dir in artifact_leaves(pki_root)]
    ca = require_ca(pki_root, "ca", "the artifacts' kubeconfigs")
    for file in ARTIFACT_KUBECONFIGS:
        path = pki_root.parent / file
        if path.exists():
            renewed.append(renew_kubeconfig(path, ca, config, new_key))
    return renewed


def play_vars(plan: list[HostRenewal], art: Path) -> dict:
    return {
        "renew_files": {r.host: r.files for r in plan},
        "renew_kubeconfigs": {r.host: r.kubeconfigs for r in plan},
        "renew_restart_etcd": any(r.restart_etcd for r in plan),
        "renew_kube_proxy_hosts": [r.host for r in plan if r.kube_proxy],
        "renew_dns_hosts": [r.host for r in plan if r.dns],
        "kube_proxy_kubeconfig_local": str(art / "kube-proxy.conf"),
        "dns_kubeconfig_local": str(art / "dns.conf"),
    }


@dataclass
class RenewResult:
    plan: list[HostRenewal]
    renewed: list[Path]          # files re-signed in the artifacts dir
    recap: Recap
    art: Path
    dry_run: bool = False


def renew_certs(inventory_path: str, *, config_path: str | None = None, dry_run: bool = False,
                new_key: bool = False, limit: str | None = None, console=None,
                connect=None) -> RenewResult:
    from bootstrap.remote.pool import close_all, connect_all

    inventory = load_inventory(inventory_path)
    # As cluster up reads it: kubespray's variables, the --config file's fields winning.
    config = effective_config(inventory, config_path).config
    pki_root = cluster_pki.pki_dir(inventory)
    art = pki_root.parent
    if not (pki_root / "ca.key").exists():
        raise UserError(f"no cluster CA in {pki_root}", where="cluster renew-certs",
                        hint="renew-certs renews what `bootstrap cluster up` made; run it first")
    plan = plan_renewal(inventory, pki_root)
    if limit:
        wanted = {v.strip() for v in limit.split(",") if v.strip()}
        unknown = sorted(wanted - set(inventory.hosts))
        if unknown:
            raise UserError(f"--limit names unknown host(s): {', '.join(unknown)}",
                            where=str(inventory.path))
        plan = [r for r in plan if r.host in wanted]
    if dry_run:
        return RenewResult(plan, [], Recap(dry_run=True), art, dry_run=True)
    # Every host reachable before anything is re-signed: a renewal that cannot
    # reach a host would leave it on certificates the artifacts no longer hold.
    conns = (connect or connect_all)([inventory.hosts[r.host] for r in plan])
    try:
        renewed = renew_artifacts(pki_root, config, new_key)
        play = Play(name="renew certificates", hosts=[r.host for r in plan],
                    roles=["renew-certs"], serial=1,
                    vars={**play_vars(plan, art), "apiserver_port": config.bind_port})
        recap = run_play(play, inventory, conns, console=console)
    finally:
        close_all(conns)
    return RenewResult(plan, renewed, recap, art)


def plan_text(result: RenewResult) -> str:
    """What was (or would be, with --dry-run) renewed and restarted, per host."""
    verb = "would renew" if result.dry_run else "renewed"
    lines = []
    if result.renewed or result.dry_run:
        where = f" in {result.art}"
        count = "" if result.dry_run else f" {len(result.renewed)} file(s)"
        lines.append(f"artifacts: {verb}{count}{where} (every node's leaves, "
                     + ", ".join(ARTIFACT_KUBECONFIGS) + ")")
    for r in result.plan:
        certs = ", ".join(r.certificates()) or "nothing"
        restarts = ", ".join(r.restarts()) or "nothing"
        lines.append(f"{r.host}: {verb} {certs}; restart: {restarts}")
    return "\n".join(lines)
