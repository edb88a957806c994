"""Who gets what: etcd membership and PKI files per host, computed from the inventory.

Pure functions over the inventory (no connections), so the placement rules are
unit-tested on their own: which hosts are etcd members and under which names,
the ``--initial-cluster`` string, and which certificate and key files go to
which host with which mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bootstrap.errors import UserError

ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
# Quorum needs a majority; an even count adds a host without adding failure
# tolerance, so (like kubespray) only odd sizes are accepted.
ETCD_SIZES = (1, 3, 5, 7)

REMOTE_PKI_DIR = "/etc/kubernetes/pki"

# Roles a host can play for file placement.
CONTROL_PLANE = "control_plane"
ETCD = "etcd"
NODE = "node"  # every Kubernetes node, control plane included


@dataclass(frozen=True)
class EtcdNode:
    host: str  # inventory host name
    name: str  # etcd member name
    ip: str

    @property
    def peer_url(self) -> str:
        return f"https://{self.ip}:{ETCD_PEER_PORT}"

    @property
    def client_url(self) -> str:
        return f"https://{self.ip}:{ETCD_CLIENT_PORT}"

    def as_var(self) -> dict:
        return {"name": self.name, "ip": self.ip, "peer_url": self.peer_url,
                "client_url": self.client_url}


def etcd_hosts(inventory) -> list:
    """The hosts running an etcd member: the etcd group, or the control plane when it is empty."""
    hosts = list(inventory.etcd) or list(inventory.control_plane)
    if not hosts:
        raise UserError("no etcd or kube_control_plane hosts", where=str(inventory.path),
                        hint="put at least one host in the kube_control_plane group")
    return hosts


def etcd_nodes(inventory, *, check_size: bool = True) -> list[EtcdNode]:
    hosts = etcd_hosts(inventory)
    if check_size and len(hosts) not in ETCD_SIZES:
        raise UserError(
            f"{len(hosts)} etcd members; etcd needs an odd number (1, 3, 5 or 7)",
            where=str(inventory.path),
            hint="add or remove a host in the etcd group (or kube_control_plane when stacked)")
    nodes = [EtcdNode(host=h.name, name=h.etcd_member_name or h.name, ip=h.node_ip)
             for h in hosts]
    for attr in ("name", "ip"):
        seen: dict[str, str] = {}
        for n in nodes:
            value = getattr(n, attr)
            if value in seen:
                raise UserError(f"etcd hosts {seen[value]} and {n.host} share the {attr} {value}",
                                where=str(inventory.path), hint="give each etcd host its own")
            seen[value] = n.host
    return nodes


def initial_cluster(nodes: list[EtcdNode]) -> str:
    return ",".join(f"{n.name}={n.peer_url}" for n in nodes)


def host_roles(inventory, host_name: str) -> set[str]:
    roles = set()
    if any(h.name == host_name for h in inventory.control_plane):
        roles |= {CONTROL_PLANE, NODE}
    if any(h.name == host_name for h in inventory.workers):
        roles.add(NODE)
    if any(h.name == host_name for h in etcd_hosts(inventory)):
        roles.add(ETCD)
    return roles


@dataclass(frozen=True)
class PkiFile:
    rel: str  # kubeadm name under the PKI dir, e.g. "etcd/server.crt"
    to: frozenset[str]  # host roles that get it
    required: bool = True

    @property
    def mode(self) -> str:
        return "0600" if self.rel.endswith(".key") else "0644"


def _pair(base: str, to: set[str], required: bool = True) -> list[PkiFile]:
    return [PkiFile(f"{base}.crt", frozenset(to), required),
            PkiFile(f"{base}.key", frozenset(to), required)]


# kubeadm's placement: CA keys only on the control plane (never on workers or
# on separate etcd hosts); etcd serving/peer pairs only where a member runs.
# Optional entries come from later phases of the PKI and are copied when present.
PKI_FILES: tuple[PkiFile, ...] = (
    PkiFile("ca.crt", frozenset({NODE})),
    PkiFile("ca.key", frozenset({CONTROL_PLANE})),
    PkiFile("etcd/ca.crt", frozenset({CONTROL_PLANE, ETCD})),
    PkiFile("etcd/ca.key", frozenset({CONTROL_PLANE})),
    *_pair("etcd/server", {ETCD}),
    *_pair("etcd/peer", {ETCD}),
    *_pair("etcd/healthcheck-client", {ETCD}),
    *_pair("apiserver-etcd-client", {CONTROL_PLANE}),
    *_pair("front-proxy-ca", {CONTROL_PLANE}, required=False),
    *_pair("apiserver", {CONTROL_PLANE}, required=False),
    *_pair("apiserver-kubelet-client", {CONTROL_PLANE}, required=False),
    *_pair("front-proxy-client", {CONTROL_PLANE}, required=False),
    PkiFile("sa.key", frozenset({CONTROL_PLANE}), required=False),
    PkiFile("sa.pub", frozenset({CONTROL_PLANE}), required=False),
)


def node_pki_dir(pki_dir: Path, host_name: str) -> Path:
    """Where the per-node leaves of ``host_name`` live on the control machine."""
    return Path(pki_dir) / "nodes" / host_name


def pki_files(inventory, host_name: str, pki_dir: Path) -> list[dict]:
    """Files for one host as ``{src, dest, mode}``: per-node leaf first, shared file otherwise."""
    roles = host_roles(inventory, host_name)
    out = []
    for f in PKI_FILES:
        if not (f.to & roles):
            continue
        candidates = [node_pki_dir(pki_dir, host_name) / f.rel, Path(pki_dir) / f.rel]
        src = next((c for c in candidates if c.is_file()), None)
        if src is None:
            if f.required:
                raise UserError(f"missing {f.rel} for host {host_name}", where=str(pki_dir),
                                hint="run `bootstrap cluster up` again to regenerate the PKI")
            continue
        out.append({"src": str(src), "dest": f"{REMOTE_PKI_DIR}/{f.rel}", "mode": f.mode})
    return out


def pki_plan(inventory, pki_dir: Path, hosts: list[str] | None = None) -> dict[str, list[dict]]:
    names = hosts if hosts is not None else list(inventory.hosts)
    return {name: pki_files(inventory, name, pki_dir) for name in names}
