"""``bootstrap cluster remove-node`` and ``cluster reset`` (kubespray's remove-node.yml, reset.yml).

remove-node, for each node in turn:

1. checks first, before anything changes: the node is in the inventory, some
   control-plane host stays, and when the host is an etcd member, its member
   (matched exactly by name and peer URL, or given by ID) may go: every
   member's health is read from another member and the removal is refused when
   the members left could not keep a quorum;
2. cordons and drains the node through the Eviction API (``flows.drain``,
   kubespray's defaults: force, delete emptyDir data, 360 s);
3. removes the etcd member (from another member), then waits until the
   members left are all healthy;
4. resets the host over SSH (``bootstrap reset --yes``: units, pods, chains,
   files), so its kubelet cannot re-register the Node;
5. deletes the Node object, drops its API endpoint from kubeadm-config's
   ClusterStatus and, behind the localhost load balancer, rewrites haproxy's
   backends on the other nodes.

``force`` is kubespray's ``reset_nodes=false`` for a dead host: the host is not
contacted (no drain, no reset); the member is still removed (by its ID, when
given) and the Node deleted, so the pod GC clears its pods.

cluster reset runs ``bootstrap reset --yes`` on every host at once; members are
not removed one by one (the whole cluster goes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bootstrap.config.inventory import load_inventory
from bootstrap.config.kubespray_vars import effective_config
from bootstrap.errors import UserError
from bootstrap.flows import apiobjects, node_vars
from bootstrap.flows.etcd_membership import EtcdAdmin, Member, find, parse_id, removal_refusal
from bootstrap.flows.plan import etcd_hosts, etcd_nodes
from bootstrap.remote.pool import close_all, connect_all, connect_reachable, parallel_map
from bootstrap.remote.result import tail

AGENTS_BIN = "/opt/bootstrap/current/bin"
NODES = ("", "v1", "nodes")
CONFIG_MAPS = ("", "v1", "configmaps")
SLICES = ("discovery.k8s.io", "v1", "endpointslices")
DNS_SLICE_OWNER = ("endpointslice.kubernetes.io/managed-by", "bootstrap-dns")
DRAIN_TIMEOUT = 360.0   # kubespray's drain_timeout
RESET_TIMEOUT = 900.0


def reset_command(*, skip_member: bool) -> str:
    skip = " --skip-phases remove-etcd-member" if skip_member else ""
    return (f"if [ -x {AGENTS_BIN}/bootstrap ]; then {AGENTS_BIN}/bootstrap reset --yes{skip}; "
            "else echo '[reset] bootstrap is not installed here: nothing to reset'; fi")


@dataclass
class Removal:
    host: object                 # inventory Host
    member: Member | None = None
    done: list[str] = field(default_factory=list)


class _Cluster:
    def __init__(self, inventory_path: str, config_path: str | None, echo):
        self.inv = load_inventory(inventory_path)
        # As cluster up reads it: kubespray's variables, the --config file's fields winning.
        self.config = effective_config(self.inv, config_path).config
        self.echo = echo
        self.admin_conf = Path(self.inv.artifacts_dir) / "admin.conf"
        if not self.admin_conf.exists():
            raise UserError("no admin kubeconfig", where=str(self.admin_conf),
                            hint="run `bootstrap cluster up -i INVENTORY` first")
        self.local_etcd = self.config.etcd.local is not None

    def api(self, avoid: set[str]):
        """The API as admin, through a control-plane host that stays."""
        from bootstrap.flows.kubeapi import KubeAPI

        doc = yaml.safe_load(self.admin_conf.read_text())
        server = doc["clusters"][0]["cluster"]["server"]
        gone = {h.node_ip for h in self.inv.hosts.values() if h.name in avoid}
        path = self.admin_conf
        if any(f"//{ip}:" in server for ip in gone):
            stay = next(h for h in self.inv.control_plane if h.name not in avoid)
            doc["clusters"][0]["cluster"]["server"] = \
                node_vars.Endpoint("single", stay.node_ip, self.config.bind_port).url
            path = self.admin_conf.with_name(".admin-remove-node.conf")
            path.write_text(yaml.safe_dump(doc))
            path.chmod(0o600)
        return KubeAPI.from_kubeconfig(str(path)), str(path)


def _etcd_admin(conns: dict, inv, avoid: set[str]) -> tuple[EtcdAdmin, list[Member]]:
    """etcdctl on the first reachable etcd host that stays, against every member."""
    errors = []
    nodes = [n for n in etcd_nodes(inv, check_size=False) if n.host not in avoid]
    for n in nodes:
        conn = conns.get(n.host)
        if conn is None:
            continue
        admin = EtcdAdmin(conn, [n.client_url])
        try:
            return admin, admin.members()
        except UserError as exc:
            errors.append(exc.line())
    raise UserError("no etcd member that stays could answer: "
                    + "; ".join(errors or ["none reachable"]),
                    hint="check `bootstrap etcd status -i INVENTORY`")


def _wait_members_healthy(admin: EtcdAdmin, timeout: float = 90, sleep=time.sleep,
                          clock=time.monotonic) -> list[Member]:
    deadline = clock() + timeout
    while True:
        members = admin.members()
        healthy = admin.healthy(members)
        bad = [m for m in members if m.id not in healthy]
        if not bad:
            return members
        if clock() >= deadline:
            raise UserError("etcd members not healthy after the removal: "
                            + ", ".join(m.label() for m in bad),
                            hint="see `bootstrap etcd status -i INVENTORY`")
        sleep(2)


def remove_nodes(inventory_path: str, names: list[str], *, config_path: str | None = None,
                 force: bool = False, member_ids: dict[str, str] | None = None,
                 drain_timeout: float = DRAIN_TIMEOUT, echo: Callable[[str], None] = print,
                 connect: Callable | None = None,
                 connect_some: Callable | None = None) -> list[Removal]:
    c = _Cluster(inventory_path, config_path, echo)
    inv = c.inv
    unknown = [n for n in names if n not in inv.hosts]
    if unknown:
        raise UserError(f"not in the inventory: {', '.join(unknown)}", where=str(inv.path),
                        hint="name hosts as the inventory does")
    targets = set(names)
    if all(h.name in targets for h in inv.control_plane):
        raise UserError("refusing to remove every control-plane host",
                        hint="use `bootstrap cluster reset` to take the whole cluster down")
    ids = {k: parse_id(v) for k, v in (member_ids or {}).items()}
    others = [h for h in inv.hosts.values() if h.name not in targets]
    conns, unreachable = (connect_some or connect_reachable)(others)
    for name, err in unreachable.items():
        echo(f"[remove-node] WARNING: {name} is unreachable ({err.line()}); it is left as is")
    target_conns: dict = {}
    try:
        if not force:
            try:
                target_conns = (connect or connect_all)([inv.hosts[n] for n in names])
            except UserError as exc:
                raise UserError(exc.message, where=exc.where,
                                hint="a dead host is removed with --force (no drain, no "
                                     "reset)") from None
        removals = [Removal(inv.hosts[n]) for n in names]
        # 1. Checks, for every node, before anything changes.
        members_by_host = {n.host: n for n in etcd_nodes(inv, check_size=False)}
        admin = None
        if c.local_etcd and any(r.host.name in members_by_host for r in removals):
            admin, members = _etcd_admin(conns, inv, targets)
            healthy = admin.healthy(members)
            echo(f"[remove-node] etcd: {len(healthy)} of {len(members)} member(s) healthy")
            left = list(members)
            for r in removals:
                n = members_by_host.get(r.host.name)
                if n is None:
                    continue
                r.member = find(left, member_id=ids[r.host.name]) if r.host.name in ids \
                    else find(left, name=n.name, peer_url=n.peer_url)
                if r.member is None:
                    echo(f"[remove-node] {r.host.name}: no etcd member {n.name} "
                         f"({n.peer_url}) any more")
                    continue
                why = removal_refusal(left, healthy, r.member)
                if why:
                    raise UserError(f"refusing to remove {r.host.name}: {why}",
                                    hint="bring the unhealthy members back first; nothing "
                                         "was changed")
                left = [m for m in left if m.id != r.member.id]
        api, kubeconfig = c.api(targets)
        for r in removals:
            _remove_one(c, r, api, kubeconfig, admin, target_conns.get(r.host.name), force,
                        drain_timeout)
        _update_balancers(c, conns, targets, api)
        if admin is not None:
            members = _wait_members_healthy(admin)
            echo(f"[remove-node] etcd healthy: {len(members)} member(s): "
                 + ", ".join(m.label() for m in members))
        return removals
    finally:
        close_all(target_conns)
        close_all(conns)


def _remove_one(c: _Cluster, r: Removal, api, kubeconfig: str, admin, conn, force: bool,
                drain_timeout: float) -> None:
    from bootstrap.flows.drain import DrainOptions, drain_node

    name, echo = r.host.name, c.echo
    node = api.get(NODES, name)
    if force:
        echo(f"[remove-node] {name}: --force: not draining or resetting the host")
    elif node is not None:
        echo(f"[remove-node] {name}: cordon and drain")
        drain_node(kubeconfig, name, DrainOptions(force=True, delete_emptydir_data=True,
                                                  timeout=drain_timeout),
                   log=lambda line: echo(f"[remove-node] {line}"))
        r.done.append("drained")
    if r.member is not None:
        echo(f"[remove-node] {name}: removing etcd member {r.member.label()}")
        admin.remove(r.member, admin.members())
        _wait_members_healthy(admin)
        r.done.append(f"etcd member {r.member.hex_id} removed")
    if not force:
        echo(f"[remove-node] {name}: bootstrap reset")
        res = conn.run(reset_command(skip_member=True), check=False, timeout=RESET_TIMEOUT)
        for line in res.stdout.strip().splitlines()[-3:]:
            echo(f"[remove-node] {name}: {line}")
        if not res.ok:
            raise UserError(f"reset failed on {name}: {tail(res.stderr) or tail(res.stdout)}",
                            hint=f"fix it, then run `bootstrap reset` on {name} by hand")
        r.done.append("reset")
    if api.delete(NODES, name):
        echo(f"[remove-node] {name}: Node deleted")
        r.done.append("Node deleted")
    # A DNS server deletes its kube-dns slice when it stops cleanly; a dead one cannot.
    dns_slice = api.get(SLICES, f"kube-dns-{name}", apiobjects.KUBE_SYSTEM)
    labels = ((dns_slice or {}).get("metadata") or {}).get("labels") or {}
    if labels.get(DNS_SLICE_OWNER[0]) == DNS_SLICE_OWNER[1]:
        api.delete(SLICES, f"kube-dns-{name}", apiobjects.KUBE_SYSTEM)
        echo(f"[remove-node] {name}: its kube-dns EndpointSlice deleted")
    if _drop_api_endpoint(api, name):
        echo(f"[remove-node] {name}: removed from kubeadm-config's ClusterStatus")
        r.done.append("ClusterStatus updated")


def _drop_api_endpoint(api, name: str) -> bool:
    cm = api.get(CONFIG_MAPS, "kubeadm-config", apiobjects.KUBE_SYSTEM)
    if cm is None:
        return False
    status = yaml.safe_load((cm.get("data") or {}).get("ClusterStatus") or "{}") or {}
    eps = status.get("apiEndpoints") or {}
    if name not in eps:
        return False
    del eps[name]
    api.patch(CONFIG_MAPS, "kubeadm-config",
              {"data": {"ClusterStatus": yaml.safe_dump(status, sort_keys=True)}},
              apiobjects.KUBE_SYSTEM, patch_type="merge")
    return True


def _update_balancers(c: _Cluster, conns: dict, targets: set[str], api) -> None:
    """haproxy on the nodes that stay (those with a Node object), pointing at the API
    servers that stay."""
    from bootstrap.engine import Play, run_play
    from bootstrap.flows.cluster_up import cluster_vars

    if not any(h.name in targets for h in c.inv.control_plane):
        return
    endpoint = node_vars.api_endpoint(c.inv, c.config.bind_port)
    if endpoint.mode != "localhost-lb":
        return
    cps = {h.name for h in c.inv.control_plane}
    joined = {n["metadata"]["name"] for n in api.list(NODES)}
    hosts = [h.name for h in c.inv.workers if h.name not in cps and h.name not in targets
             and h.name in conns and h.name in joined]
    if not hosts:
        return
    servers = [s for s in node_vars.lb_servers(c.inv, c.config.bind_port)
               if s["name"] not in targets]
    c.echo(f"[remove-node] haproxy on {', '.join(hosts)}: {len(servers)} API server(s)")
    recap = run_play(Play(name="localhost load balancer", hosts=hosts, roles=["haproxy"],
                          vars={**cluster_vars(c.config), "lb_servers": servers,
                                "loadbalancer_apiserver_port": endpoint.port}),
                     c.inv, conns)
    recap.raise_on_failure()


# --- cluster reset -----------------------------------------------------------------

def reset_cluster(inventory_path: str, *, echo: Callable[[str], None] = print,
                  connect: Callable | None = None) -> dict[str, str]:
    """``bootstrap reset --yes`` on every host, in parallel; host -> its last line."""
    inv = load_inventory(inventory_path)
    etcd_hosts(inv)  # an inventory without a control plane fails here
    conns = (connect or connect_all)(list(inv.hosts.values()))
    try:
        def one(name: str) -> tuple[str, str]:
            r = conns[name].run(reset_command(skip_member=True), check=False,
                                timeout=RESET_TIMEOUT)
            last = (r.stdout.strip().splitlines() or [""])[-1]
            if not r.ok:
                raise UserError(f"reset failed: {tail(r.stderr) or tail(r.stdout)}",
                                where=f"host {name}")
            return name, last
        results = dict(parallel_map(one, list(conns)))
        for name, last in results.items():
            echo(f"[cluster reset] {name}: {last}")
        return results
    finally:
        close_all(conns)
