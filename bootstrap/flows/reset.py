"""The ``reset`` workflow: kubeadm reset's phases, declared once as data.

preflight (what is here, the confirmation prompt), remove-etcd-member (this
host's stacked member leaves the cluster first; refused when the members left
could not keep a quorum, unless --force), cleanup-node (units, pods through
the CRI, mounts, pod network namespaces, iptables chains, the CNI bridge,
node routes, files). Every step reads the host first and acts only on what
it finds, so a second reset finds nothing and says so; ``--dry-run`` prints
what would be done. What belongs to us is listed here as data (``UNITS``,
``PATHS``, ``CHAIN_PREFIXES``): a unit or config file is ours when it carries
the "Managed by bootstrap" line our templates write, and files of the
packages we use (Debian's etcd, haproxy and registry configs, the CNI
plugins, containerd) are left alone. containerd keeps running (it is the
node's runtime, as kubeadm leaves it); only its pods go.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import click

from bootstrap.errors import UserError
from bootstrap.flows.workflow import Flag, Phase, Workflow
from bootstrap.remote.result import tail

MARKER = "Managed by bootstrap"
UNIT_DIR = "/etc/systemd/system"
KUBELET_DIR = "/var/lib/kubelet"
NETNS_DIRS = ("/var/run/netns", "/run/netns")
CNI_BRIDGE = "cni0"
CNI_NETWORK = "bootstrap"          # the conflist's network name (agents/kubelet/cni.py)
CNI_CONFLIST = "/etc/cni/net.d/10-bootstrap.conflist"
ROUTE_PROTO = "200"                # kube-proxy's node routes (docs/adr/0005-node-routes.md)
CRI_ENDPOINT = "unix:///run/containerd/containerd.sock"
CONTAINERD_NAMESPACE = "k8s.io"
DEFAULT_ETCD_DATA_DIR = "/var/lib/etcd"


@dataclass(frozen=True)
class Unit:
    name: str
    # The file that makes the unit ours (carries MARKER): our unit file, or for
    # haproxy (Debian's unit) the config we wrote.
    marker: str
    remove_unit_file: bool = True


# Stop order: the kubelet first (nothing restarts pods), etcd last.
UNITS = (
    Unit("kubelet", f"{UNIT_DIR}/kubelet.service"),
    Unit("kube-proxy", f"{UNIT_DIR}/kube-proxy.service"),
    Unit("bootstrap-dns", f"{UNIT_DIR}/bootstrap-dns.service"),
    Unit("kube-scheduler", f"{UNIT_DIR}/kube-scheduler.service"),
    Unit("kube-controller-manager", f"{UNIT_DIR}/kube-controller-manager.service"),
    Unit("kube-apiserver", f"{UNIT_DIR}/kube-apiserver.service"),
    Unit("haproxy", "/etc/haproxy/haproxy.cfg", remove_unit_file=False),
    Unit("docker-registry", f"{UNIT_DIR}/docker-registry.service"),
    Unit("etcd", f"{UNIT_DIR}/etcd.service"),
)

# Removed when present. "marker:" entries only when the file carries MARKER.
PATHS = (
    "/etc/kubernetes",
    KUBELET_DIR,
    "/var/lib/kube-proxy",
    "/var/log/pods",
    "/etc/etcd/bootstrap.env",
    CNI_CONFLIST,
    "/etc/cni/net.d/.10-bootstrap.conflist.tmp",
    f"/var/lib/cni/networks/{CNI_NETWORK}",
    f"/var/lib/cni/results/{CNI_NETWORK}-*",
    "marker:/etc/haproxy/haproxy.cfg",
    "marker:/etc/docker/registry/config.yml",
)
# Kept: /opt/bootstrap and /var/lib/bootstrap (the toolkit and agents install,
# which reset runs from, like kubeadm's binary), containerd and its config.

# kube-proxy's chains, and those of the portmap plugin our conflist names.
CHAIN_PREFIXES = ("KUBE-", "CNI-HOSTPORT-", "CNI-DN-")
IPTABLES = ("iptables", "ip6tables")


# --- the host as it is (facts) -------------------------------------------------

def _lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def ours(conn, files: list[str]) -> set[str]:
    """Which of ``files`` carry our marker."""
    script = "; ".join(f"grep -qs {shlex.quote(MARKER)} {shlex.quote(f)} && echo {shlex.quote(f)}"
                       for f in files) + "; true"
    return set(_lines(conn.run(script, check=False).stdout))


def unit_states(conn, names: list[str]) -> dict[str, tuple[str, str]]:
    """unit -> (ActiveState, UnitFileState)."""
    if not names:
        return {}
    args = " ".join(f"{n}.service" for n in names)
    r = conn.run(f"systemctl show -p Id,ActiveState,UnitFileState {args}", check=False)
    out, cur = {}, {}
    for block in (r.stdout.strip() + "\n").split("\n\n"):
        cur = dict(ln.split("=", 1) for ln in _lines(block) if "=" in ln)
        if cur.get("Id"):
            out[cur["Id"].removesuffix(".service")] = (cur.get("ActiveState", ""),
                                                       cur.get("UnitFileState", ""))
    return out


def existing_paths(conn, paths: list[str]) -> list[str]:
    """Those of ``paths`` (globs allowed) that exist, expanded."""
    # A glob's last part stays unquoted so the shell expands it; unmatched, it stays
    # literal and the -e test drops it.
    plain = " ".join(shlex.quote(p.rsplit("/", 1)[0]) + "/" + p.rsplit("/", 1)[1] if "*" in p
                     else shlex.quote(p) for p in paths)
    r = conn.run(f"for p in {plain}; do if [ -e \"$p\" ] || [ -L \"$p\" ]; then "
                 f"echo \"$p\"; fi; done", check=False)
    return _lines(r.stdout)


def mounts_under(mountinfo: str, prefixes: tuple[str, ...]) -> list[str]:
    """Mount points below any of ``prefixes``, deepest first (kubeadm's rule: a disk
    mounted at /var/lib/kubelet itself stays mounted)."""
    points = []
    for line in mountinfo.splitlines():
        parts = line.split()
        if len(parts) < 5:
            continue
        mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), parts[4])
        if any(mp.startswith(p) for p in prefixes):
            points.append(mp)
    return sorted(set(points), key=lambda p: (-p.count("/"), p))


def our_chains(save: str) -> dict[str, list[str]]:
    """table -> our chains, from iptables-save output."""
    out: dict[str, list[str]] = {}
    table = None
    for line in save.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":") and table:
            chain = line[1:].split()[0]
            if chain.startswith(CHAIN_PREFIXES):
                out.setdefault(table, []).append(chain)
    return out


def iptables_restore_plan(save: str) -> str:
    """iptables-restore --noflush input that removes our chains and every jump to them.

    Rules in other chains that jump (-j/-g) to one of ours are deleted by their
    exact spec as iptables-save printed it; then our chains are flushed and
    deleted. Empty when there is nothing of ours.
    """
    tables: dict[str, dict[str, list[str]]] = {}
    table = None
    for line in save.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            tables[table] = {"chains": [], "rules": []}
        elif table and line.startswith(":"):
            tables[table]["chains"].append(line[1:].split()[0])
        elif table and line.startswith("-A "):
            tables[table]["rules"].append(line)
    out = []
    for name, t in tables.items():
        mine = [c for c in t["chains"] if c.startswith(CHAIN_PREFIXES)]
        if not mine:
            continue
        mine_set = set(mine)
        deletes = []
        for rule in t["rules"]:
            words = shlex.split(rule)
            chain = words[1]
            if chain in mine_set:
                continue
            targets = {words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-j", "-g",
                                                                               "--jump", "--goto")}
            if targets & mine_set:
                deletes.append("-D " + rule[3:])
        out += [f"*{name}", *deletes, *(f"-F {c}" for c in mine), *(f"-X {c}" for c in mine),
                "COMMIT"]
    return "\n".join(out) + "\n" if out else ""


def cni_links(ip_json: str) -> tuple[bool, list[str]]:
    """(the bridge exists, veths enslaved to it) from `ip -j link show`."""
    try:
        links = json.loads(ip_json or "[]")
    except ValueError:
        return False, []
    bridge = any(link.get("ifname") == CNI_BRIDGE for link in links)
    veths = [link["ifname"] for link in links if link.get("master") == CNI_BRIDGE]
    return bridge, veths


@dataclass
class EtcdLocal:
    """This host's member, as our etcd unit file describes it."""

    name: str
    peer_url: str
    client_url: str
    data_dir: str
    pki_dir: str


def parse_etcd_unit(text: str) -> EtcdLocal | None:
    flags = dict(re.findall(r"--([a-z-]+)=(\S+)", text))
    if "name" not in flags or "initial-advertise-peer-urls" not in flags:
        return None
    ca = flags.get("trusted-ca-file", "/etc/kubernetes/pki/etcd/ca.crt")
    return EtcdLocal(name=flags["name"], peer_url=flags["initial-advertise-peer-urls"],
                     client_url=flags.get("advertise-client-urls", "").split(",")[0],
                     data_dir=flags.get("data-dir", DEFAULT_ETCD_DATA_DIR),
                     pki_dir=ca.rsplit("/", 1)[0])


@dataclass
class HostState:
    """Everything of ours found on the host; empty means nothing to reset."""

    units: dict[str, tuple[str, str]] = field(default_factory=dict)  # ours -> states
    unit_files: list[str] = field(default_factory=list)
    marker_files: set[str] = field(default_factory=set)
    etcd: EtcdLocal | None = None
    pods: dict = field(default_factory=dict)  # CRI listing
    tasks: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)
    iptables: dict[str, str] = field(default_factory=dict)  # binary -> restore plan
    bridge: bool = False
    veths: list[str] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.units or self.unit_files or self.pods.get("sandboxes")
                    or self.pods.get("containers") or self.tasks or self.mounts or self.netns
                    or any(self.iptables.values()) or self.bridge or self.veths or self.routes
                    or self.paths)

    def summary(self) -> list[str]:
        rows = []
        for label, items in (("units", sorted(self.units)), ("unit files", self.unit_files),
                             ("pod sandboxes", self.pods.get("sandboxes") or []),
                             ("containers", self.pods.get("containers") or []),
                             ("containerd tasks", self.tasks), ("mounts", self.mounts),
                             ("network namespaces", self.netns),
                             ("iptables", [b for b, p in self.iptables.items() if p]),
                             ("interfaces", ([CNI_BRIDGE] if self.bridge else []) + self.veths),
                             ("routes", self.routes), ("files", self.paths)):
            if items:
                rows.append(f"{label}: {', '.join(items[:8])}"
                            + (f" (+{len(items) - 8})" if len(items) > 8 else ""))
        return rows


def cri_command(python: str, endpoint: str, remove: bool) -> str:
    return (f"{shlex.quote(python)} -m bootstrap.agents.kubelet.cleanup --runtime-endpoint "
            f"{shlex.quote(endpoint)}" + (" --remove" if remove else ""))


def scan(conn, *, python: str, cri_endpoint: str = CRI_ENDPOINT,
         etcd_data_dir: str | None = None) -> HostState:
    st = HostState()
    markers = [u.marker for u in UNITS] + [p.removeprefix("marker:") for p in PATHS
                                          if p.startswith("marker:")]
    st.marker_files = ours(conn, markers)
    mine = [u for u in UNITS if u.marker in st.marker_files]
    states = unit_states(conn, [u.name for u in mine])
    st.units = {u.name: states.get(u.name, ("", "")) for u in mine
                if states.get(u.name, ("inactive", "disabled")) != ("inactive", "disabled")}
    st.unit_files = [u.marker for u in mine if u.remove_unit_file]
    if f"{UNIT_DIR}/etcd.service" in st.marker_files:
        text = conn.run(f"cat {UNIT_DIR}/etcd.service", check=False).stdout
        st.etcd = parse_etcd_unit(text)
    sock = cri_endpoint.removeprefix("unix://")
    if conn.run(f"test -S {shlex.quote(sock)}", check=False).ok:
        r = conn.run(cri_command(python, cri_endpoint, remove=False), check=False, timeout=120)
        if r.ok and r.stdout.strip().startswith("{"):
            st.pods = json.loads(r.stdout)
        t = conn.run(f"ctr -n {CONTAINERD_NAMESPACE} tasks ls -q", check=False)
        st.tasks = _lines(t.stdout) if t.ok else []
    mountinfo = conn.run("cat /proc/self/mountinfo", check=False).stdout
    st.mounts = mounts_under(mountinfo, (f"{KUBELET_DIR}/", *(f"{d}/cni-" for d in NETNS_DIRS)))
    ns = conn.run(f"ls -1 {NETNS_DIRS[0]} 2>/dev/null", check=False).stdout
    st.netns = [n for n in _lines(ns) if n.startswith("cni-")]
    for binary in IPTABLES:
        r = conn.run(f"command -v {binary}-save >/dev/null && {binary}-save", check=False,
                     timeout=60)
        if r.ok:
            st.iptables[binary] = iptables_restore_plan(r.stdout)
    st.bridge, st.veths = cni_links(conn.run("ip -j link show", check=False).stdout)
    st.routes = _lines(conn.run(f"ip route show proto {ROUTE_PROTO}", check=False).stdout)
    paths = [p for p in PATHS if not p.startswith("marker:")]
    paths += [p.removeprefix("marker:") for p in PATHS if p.startswith("marker:")
              and p.removeprefix("marker:") in st.marker_files]
    data_dir = (st.etcd.data_dir if st.etcd else None) or etcd_data_dir
    if data_dir:
        # Its contents, as kubeadm cleans it: the directory may be the etcd package's.
        paths.append(f"{data_dir.rstrip('/')}/*")
    if "docker-registry" in {u.name for u in mine}:
        paths.append("/var/lib/docker-registry")
    st.paths = existing_paths(conn, paths)
    return st


# --- the context ---------------------------------------------------------------

class ResetContext:
    def __init__(self, params: dict[str, Any], echo: Callable[[str], None],
                 connection: Any = None, confirm: Callable[[str], bool] | None = None):
        self.params = params
        self.echo = echo
        self.dry_run = bool(params.get("dry_run"))
        self.changed = 0
        self.label = "reset"
        self._connection = connection
        self._confirm = confirm or (lambda text: click.confirm(text, default=False))
        settings = self.settings  # a bad --config fails before anything is read
        self.force = bool(params.get("force")) or bool(settings and settings.force)
        self.config_skip = set(settings.skip_phases) if settings else set()
        self.python = params.get("agents_python") or sys.executable

    @cached_property
    def config_file(self):
        path = self.params.get("config")
        if not path:
            return None
        from bootstrap.config.kubeadm import load_config_file

        return load_config_file(path)

    @property
    def settings(self):
        return self.config_file.reset if self.config_file is not None else None

    @cached_property
    def connection(self):
        from bootstrap.remote.local import LocalConnection

        return self._connection or LocalConnection("localhost")

    def etcd_data_dir(self) -> str | None:
        cfg = self.config_file.cluster if self.config_file is not None else None
        if cfg is not None and cfg.etcd.local is not None:
            return cfg.etcd.local.data_dir
        return None

    def scan(self) -> HostState:
        return scan(self.connection, python=self.python,
                    cri_endpoint=self.params.get("cri_socket") or CRI_ENDPOINT,
                    etcd_data_dir=self.etcd_data_dir())

    @cached_property
    def before(self) -> HostState:
        return self.scan()

    def run(self, cmd: str, what: str, *, input: str | None = None, timeout: float = 120,
            check: bool = True) -> bool:
        """Run one change (or say what it would be under --dry-run); counts it."""
        self.changed += 1
        if self.dry_run:
            self.echo(f"[dryrun] Would {what}")
            return True
        r = self.connection.run(cmd, check=False, input=input, timeout=timeout)
        if not r.ok and check:
            raise UserError(f"could not {what}: {tail(r.stderr) or tail(r.stdout)}",
                            where=f"host {self.connection.host}")
        return r.ok


def _unless_configured(path: str, fn: Callable[[ResetContext], None]):
    """ResetConfiguration.skipPhases skips like --skip-phases does."""
    def run(ctx: ResetContext) -> None:
        if path in ctx.config_skip:
            ctx.echo(f"[reset] Skipping phase {path} (ResetConfiguration.skipPhases)")
            return
        fn(ctx)
    return run


# --- phases --------------------------------------------------------------------

def run_preflight(ctx: ResetContext) -> None:
    ctx.echo("[preflight] Running pre-flight checks")
    uid = ctx.connection.run("id -u", check=False).stdout.strip()
    if uid != "0" and not ctx.dry_run:
        raise UserError(f"[preflight] IsPrivilegedUser: reset changes units, mounts and "
                        f"iptables and must run as root (uid {uid or 'unknown'})",
                        hint="run it with sudo, or pass --dry-run to see what it would do")
    st = ctx.before
    if st.empty():
        ctx.echo("[reset] Nothing to reset: nothing of bootstrap's is left on this host")
        return
    for row in st.summary():
        ctx.echo(f"[reset] Found {row}")
    if ctx.dry_run or ctx.force or ctx.params.get("yes"):
        return
    ctx.echo("[reset] WARNING: Changes made to this host by 'bootstrap init' or "
             "'bootstrap join' will be reverted.")
    if not ctx._confirm("[reset] Are you sure you want to proceed?"):
        raise click.Abort()


def run_remove_etcd_member(ctx: ResetContext) -> None:
    from bootstrap.flows.etcd_membership import EtcdAdmin, find

    local = ctx.before.etcd
    if local is None:
        ctx.echo("[reset] No local etcd member (no stacked etcd unit of ours)")
        return
    admin = EtcdAdmin(ctx.connection, [local.client_url], pki_dir=local.pki_dir)
    try:
        members = admin.members()
    except UserError as exc:
        if not ctx.force:
            raise UserError(f"cannot read the etcd member list, so this host's member "
                            f"{local.name} cannot be removed: {exc.message}",
                            where=exc.where,
                            hint="start etcd here (`systemctl start etcd`), or remove the "
                                 "member from another host (`bootstrap cluster remove-node "
                                 "--force`), then reset with --force") from None
        ctx.echo(f"[reset] WARNING: {exc.line()}; not removing etcd member {local.name} "
                 "(--force): remove it from another member")
        return
    me = find(members, name=local.name, peer_url=local.peer_url)
    if me is None:
        ctx.echo(f"[reset] etcd member {local.name} ({local.peer_url}) is not in the cluster "
                 "any more")
        return
    if len(members) == 1:
        ctx.echo(f"[reset] {me.label()} is the only etcd member; it is not removed (its data "
                 "goes with the cleanup)")
        return
    admin.check_removal(me, members, ctx.force, ctx.echo)
    ctx.echo(f"[reset] Removing etcd member {me.label()} from the cluster")
    ctx.changed += 1
    if ctx.dry_run:
        ctx.echo(f"[dryrun] Would run etcdctl member remove {me.hex_id}")
        return
    admin.remove(me, members)


def _stop_units(ctx: ResetContext, st: HostState) -> None:
    for unit in UNITS:
        if unit.name in st.units:
            ctx.run(f"systemctl disable --now {unit.name}.service",
                    f"stop and disable {unit.name}", timeout=180)


def _remove_pods(ctx: ResetContext, st: HostState) -> None:
    pods = st.pods
    if pods.get("sandboxes") or pods.get("containers"):
        n, m = len(pods.get("containers") or []), len(pods.get("sandboxes") or [])
        ctx.echo(f"[reset] Removing {n} container(s) and {m} pod sandbox(es) through the CRI")
        ctx.run(cri_command(ctx.python, ctx.params.get("cri_socket") or CRI_ENDPOINT, True),
                "remove every pod sandbox and container through the CRI", timeout=600)
    if not ctx.dry_run and st.pods:
        left = ctx.connection.run(f"ctr -n {CONTAINERD_NAMESPACE} tasks ls -q",
                                  check=False).stdout
        tasks = _lines(left)
    else:
        tasks = st.tasks
    for task in tasks:
        t = shlex.quote(task)
        ns = f"ctr -n {CONTAINERD_NAMESPACE}"
        ctx.run(f"{ns} tasks kill -s SIGKILL {t}; {ns} tasks rm -f {t}; {ns} containers rm {t}",
                f"stop containerd task {task}", check=False)


def _network(ctx: ResetContext, st: HostState) -> None:
    for mp in st.mounts:
        ctx.run(f"umount -l {shlex.quote(mp)}", f"unmount {mp}", check=False)
    for ns in st.netns:
        q = shlex.quote(ns)
        ctx.run(f"ip netns delete {q} 2>/dev/null || rm -f {NETNS_DIRS[0]}/{q}",
                f"delete network namespace {ns}", check=False)
    for binary, plan in st.iptables.items():
        if plan:
            chains = sorted({w for w in plan.split() if w.startswith(CHAIN_PREFIXES)})
            ctx.run(f"{binary}-restore --noflush", f"delete {len(chains)} {binary} chain(s) "
                    "of ours and the rules jumping to them", input=plan)
    for veth in st.veths:
        ctx.run(f"ip link delete {shlex.quote(veth)}", f"delete interface {veth}", check=False)
    if st.bridge:
        ctx.run(f"ip link delete {CNI_BRIDGE}", f"delete the CNI bridge {CNI_BRIDGE}")
    if st.routes:
        ctx.run(f"ip route flush proto {ROUTE_PROTO}",
                f"delete {len(st.routes)} node route(s) (proto {ROUTE_PROTO})")


def run_cleanup_node(ctx: ResetContext) -> None:
    # Read again: remove-etcd-member may have changed the host (etcd exits when removed).
    st = ctx.scan()
    if st.empty():
        ctx.echo("[reset] Nothing to clean up")
        return
    # The kubelet first, so nothing restarts the pods removed next.
    if "kubelet" in st.units:
        ctx.run("systemctl disable --now kubelet.service", "stop and disable kubelet")
        st.units.pop("kubelet")
    _remove_pods(ctx, st)
    _stop_units(ctx, st)
    if not ctx.dry_run:
        # Read again: removing the pods took their veths and namespaces, and kube-proxy
        # may have rewritten its rules until it stopped; iptables-restore is all or nothing.
        fresh = ctx.scan()
        fresh.unit_files, fresh.paths = st.unit_files, st.paths
        st = fresh
    _network(ctx, st)
    if st.unit_files:
        names = " ".join(shlex.quote(f) for f in st.unit_files)
        ctx.run(f"rm -f {names} && systemctl daemon-reload && systemctl reset-failed "
                f"{' '.join(u.name + '.service' for u in UNITS)} 2>/dev/null; true",
                f"remove unit files {', '.join(st.unit_files)}")
    if st.paths:
        ctx.echo(f"[reset] Deleting contents of: {', '.join(st.paths)}")
        ctx.run("rm -rf -- " + " ".join(shlex.quote(p) for p in st.paths)
                + "; rmdir /etc/etcd 2>/dev/null; true", f"delete {', '.join(st.paths)}",
                timeout=300)
    if not ctx.dry_run:
        after = ctx.scan()
        if not after.empty():
            raise UserError("reset left some things behind: " + "; ".join(after.summary()),
                            where=f"host {ctx.connection.host}",
                            hint="see what holds them, then run `bootstrap reset` again")
    ctx.echo("[reset] The reset process does not reset or clean up containerd's "
             "configuration or its images; the host can join a cluster again.")


def finish(ctx: ResetContext) -> None:
    verb = "would change" if ctx.dry_run else "changed"
    ctx.echo(f"[reset] {ctx.changed} {verb}"
             + (" (nothing to do)" if not ctx.changed and not ctx.dry_run else ""))


RESET_FLAGS = [
    Flag("config", "Path to a kubeadm config file with a ResetConfiguration (force, "
         "skipPhases) and optionally a ClusterConfiguration (etcd data dir).", metavar="PATH"),
    Flag("cri-socket", "The CRI endpoint to remove pods through.", default=CRI_ENDPOINT,
         metavar="URL"),
    Flag("force", "Reset without prompting, and remove the local etcd member even when the "
         "members left could not keep a quorum (kubeadm's -f).", is_flag=True),
    Flag("yes", "Do not ask for confirmation.", is_flag=True),
    Flag("dry-run", "Don't apply any changes; just output what would be done.", is_flag=True),
]


def reset_phases() -> list[Phase]:
    return [
        Phase("preflight", "Run reset pre-flight checks",
              run=_unless_configured("preflight", run_preflight)),
        Phase("remove-etcd-member", "Remove a local etcd member",
              run=_unless_configured("remove-etcd-member", run_remove_etcd_member),
              long="Remove this host's stacked etcd member from the cluster, matched by name "
                   "and peer URL; refused when the members left could not keep a quorum "
                   "(unless --force)."),
        Phase("cleanup-node", "Run cleanup node",
              run=_unless_configured("cleanup-node", run_cleanup_node),
              long="Stop and disable our units, remove pods through the CRI, unmount what "
                   "the kubelet mounted, delete pod network namespaces, our iptables chains, "
                   "the CNI bridge, node routes and our files."),
    ]


def reset_workflow(echo: Callable[[str], None], connection: Any = None,
                   confirm: Callable[[str], bool] | None = None) -> Workflow:
    return Workflow(
        name="reset",
        short="Performs a best effort revert of changes made to this host by "
              "'bootstrap init' or 'bootstrap join'.",
        phases=reset_phases(),
        flags=RESET_FLAGS,
        make_context=lambda params: ResetContext(params, echo, connection, confirm),
        finish=finish,
    )
