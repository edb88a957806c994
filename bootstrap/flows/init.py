"""The ``init`` workflow: kubeadm's phases, declared once as data.

preflight, certs, kubeconfig, etcd, control-plane, kubelet-start,
wait-control-plane, upload-config, upload-certs, mark-control-plane,
bootstrap-token, kubelet-finalize, addons, show-join-command, in kubeadm's
order; ``bootstrap init``, ``init phase <name>``, ``--skip-phases`` and the
help come from this list. Host phases are in ``init_node``, API phases in
``init_cluster``; this module holds the context they share.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

from bootstrap.config.model import ClusterConfig
from bootstrap.errors import UserError
from bootstrap.flows.workflow import Flag, Phase, Workflow
from bootstrap.pki import catalog, kubeconfig, store
from bootstrap.pki.certs import cert_sans, read_cert_file

DEFAULT_CERT_DIR = "/etc/kubernetes/pki"
DEFAULT_KUBECONFIG_DIR = "/etc/kubernetes"


def default_node_name() -> str:
    # kubeadm lowercases the hostname: node names must be DNS subdomains.
    return socket.gethostname().lower()


def default_advertise_address() -> str:
    """The IPv4 address of the interface holding the default route, as kubeadm picks it."""
    # Connecting a UDP socket sends nothing; it only asks the kernel's routing
    # table which source address a packet to the outside would leave from.
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.connect(("192.0.2.1", 9))  # a documentation address; nothing is sent
        addr = sock.getsockname()[0]
    except OSError:
        addr = ""
    finally:
        sock.close()
    if not addr or addr.startswith("0."):
        raise UserError(
            "cannot find this host's primary IP: there is no default route",
            hint="pass --advertise-address with the IP other nodes reach this host at",
        )
    return addr


def bind_port_flag(params: dict[str, Any]) -> int | None:
    """kubeadm's --apiserver-bind-port (localAPIEndpoint.bindPort), if given."""
    from bootstrap.config.validate import parse_port

    value = params.get("apiserver_bind_port")
    if value is None:
        return None
    try:
        return parse_port(value)
    except ValueError as exc:
        raise UserError(f"--apiserver-bind-port: {exc}", hint="e.g. --apiserver-bind-port 6443") \
            from None


class InitContext:
    """What the init phases share: options, then config/node facts resolved lazily.

    Lazy so that `init phase certs ca` neither needs an advertise address nor
    fails on a host without a default route.
    """

    def __init__(self, params: dict[str, Any], echo: Callable[[str], None],
                 connection: Any = None):
        self.params = params
        self.echo = echo
        self.dry_run = bool(params.get("dry_run"))
        self.changed = 0  # files, units and API objects this run created or changed
        self.changed_phases: list[str] = []  # filled by run_workflow
        self.label = "init"
        self._connection = connection
        self.cert_dir = Path(params.get("cert_dir") or DEFAULT_CERT_DIR)
        self.kubeconfig_dir = Path(params.get("kubeconfig_dir") or DEFAULT_KUBECONFIG_DIR)
        # Whatever was given explicitly is checked before any phase writes a file;
        # only the defaults that need the host (hostname, default route) stay lazy.
        bind_port_flag(params)
        if params.get("config") or params.get("control_plane_endpoint"):
            _ = self.config
        if params.get("advertise_address"):
            _ = self.advertise_address

    @cached_property
    def config(self) -> ClusterConfig:
        from bootstrap.config.cluster import load_cluster_config

        cfg = load_cluster_config(self.params.get("config"))
        endpoint = self.params.get("control_plane_endpoint")
        if endpoint:
            catalog.split_host_port(endpoint)  # validate before it lands in certificates
            cfg = dataclasses.replace(cfg, control_plane_endpoint=endpoint)
        port = bind_port_flag(self.params)
        if port is not None:
            cfg = dataclasses.replace(cfg, bind_port=port)
        return cfg

    @cached_property
    def node_name(self) -> str:
        return self.params.get("node_name") or default_node_name()

    @cached_property
    def advertise_address(self) -> str:
        addr = self.params.get("advertise_address") or default_advertise_address()
        catalog.Node(self.node_name, addr).ip()  # one clear line if it is not an IP
        return addr

    # -- what the later phases share -------------------------------------------
    @cached_property
    def connection(self):
        from bootstrap.remote.local import LocalConnection

        return self._connection or LocalConnection(self.node_name)

    @cached_property
    def runner(self):
        from bootstrap.flows.local_play import LocalRunner

        groups = ["kube_node"]
        if getattr(self, "control_plane", True):  # init always; join with --control-plane
            groups.append("kube_control_plane")
            if self.config.etcd.local is not None:
                groups.append("etcd")
        return LocalRunner(self.node_name, self.advertise_address, groups, dry_run=self.dry_run,
                           diff=bool(self.params.get("diff")), connection=self._connection)

    @cached_property
    def api(self):
        from bootstrap.flows.kubeapi import KubeAPI, OfflineAPI

        admin = self.kubeconfig_dir / "admin.conf"
        if self.dry_run and not admin.exists():
            return OfflineAPI()  # a dry run before the cluster exists: everything is new
        return KubeAPI.from_kubeconfig(str(admin))

    @property
    def endpoint_address(self) -> str:
        """host:port nodes join at: controlPlaneEndpoint, else this node's address."""
        url = kubeconfig.server_url(self.config, self.advertise_address)
        return url.removeprefix("https://")

    @property
    def endpoint_url(self) -> str:
        return "https://" + self.endpoint_address

    @cached_property
    def token(self) -> str:
        from bootstrap.pki.tokens import generate_token, parse_token

        token = self.params.get("token") or generate_token()
        parse_token(token)  # one clear line if malformed
        return token

    @cached_property
    def token_ttl(self):
        from bootstrap.flows.token import parse_ttl

        return parse_ttl(self.params.get("token_ttl") or "24h")

    @cached_property
    def certs_token(self) -> str:
        from bootstrap.pki.tokens import generate_token

        return generate_token()

    @cached_property
    def certificate_key(self) -> str:
        from bootstrap.pki.tokens import generate_certificate_key

        key = self.params.get("certificate_key") or generate_certificate_key()
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise UserError("--certificate-key must be 64 hex characters (32 bytes)",
                            hint="make one with `bootstrap certs certificate-key`")
        return key


# --- certs --------------------------------------------------------------------

def _dry_run_missing(ctx: InitContext, path: Path, what: str) -> bool:
    """Under --dry-run nothing is written: say what would be, count it, skip the write."""
    if not ctx.dry_run or path.exists():
        return False
    ctx.echo(f"[dryrun] Would write {what} {path}")
    ctx.changed += 1
    return True


def _run_certs(ctx: InitContext) -> None:
    ctx.echo(f'[certs] Using certificateDir folder "{ctx.cert_dir}"')


def _skip_for_external_etcd(ctx: InitContext, d: catalog.CertDef, what: str) -> bool:
    if d.etcd and not catalog.wants_local_etcd(ctx.config):
        ctx.echo(f"[certs] External etcd mode: Skipping {d.base} {what} generation")
        return True
    return False


def _ca_runner(name: str) -> Callable[[InitContext], None]:
    def run(ctx: InitContext) -> None:
        d = catalog.CAS[name]
        if _skip_for_external_etcd(ctx, d, "certificate authority"):
            return
        ca = store.load_ca(ctx.cert_dir, name)
        if ca is not None:
            kind = "keyless " if ca.external else ""
            ctx.echo(f"[certs] Using existing {d.base} {kind}certificate authority")
            return
        if _dry_run_missing(ctx, ctx.cert_dir / f"{d.base}.crt", "certificate authority"):
            return
        store.ensure_ca(name, ctx.cert_dir, ctx.config)
        ctx.changed += 1
        ctx.echo(f'[certs] Generating "{d.base}" certificate and key')
    return run


def _leaf_runner(name: str) -> Callable[[InitContext], None]:
    def run(ctx: InitContext) -> None:
        d = catalog.LEAVES[name]
        if _skip_for_external_etcd(ctx, d, "certificate"):
            return
        node = (ctx.node_name, ctx.advertise_address) if d.per_node else (None, None)
        if _dry_run_missing(ctx, ctx.cert_dir / f"{d.base}.crt", "certificate"):
            return
        out = store.ensure_leaf(name, ctx.cert_dir, None, ctx.config, *node)
        if not out.created:
            ctx.echo(f"[certs] Using existing {d.base} certificate and key on disk")
            return
        ctx.changed += 1
        ctx.echo(f'[certs] Generating "{d.base}" certificate and key')
        dns, ips = cert_sans(read_cert_file(out.path))
        if dns or ips:
            ctx.echo(f"[certs] {d.base} serving cert is signed for DNS names "
                     f"[{' '.join(dns)}] and IPs [{' '.join(str(i) for i in ips)}]")
    return run


def _run_sa(ctx: InitContext) -> None:
    if _dry_run_missing(ctx, ctx.cert_dir / "sa.key", "key"):
        return
    out = store.ensure_sa_key(ctx.cert_dir, ctx.config)
    ctx.changed += out.created
    ctx.echo('[certs] Generating "sa" key and public key' if out.created
             else '[certs] Using the existing "sa" key')


_LEAF_FLAGS = ("config", "cert-dir")
_NODE_FLAGS = ("config", "cert-dir", "node-name", "advertise-address", "control-plane-endpoint")


def _long_for(d: catalog.CertDef) -> str:
    return (f"Generate the {d.help}, and save them into {d.base}.crt and {d.base}.key files.\n\n"
            "If both files already exist, the generation step is skipped and the existing "
            "files are used (after checking they are valid).")


def certs_phase() -> Phase:
    children = [Phase("all", "Generate all certificates", run_all_siblings=True, flags=_NODE_FLAGS)]
    for name in catalog.ORDER:
        d = catalog.ALL[name]
        run = _ca_runner(name) if d.ca is None else _leaf_runner(name)
        flags = _NODE_FLAGS if d.per_node else _LEAF_FLAGS
        children.append(Phase(name, f"Generate the {d.help}", run=run, long=_long_for(d),
                              flags=flags))
    children.append(Phase(
        "sa", "Generate a private key for signing service account tokens along with its public key",
        run=_run_sa, flags=_LEAF_FLAGS,
        long="Generate the private key for signing service account tokens along with its public "
             "key, and save them into sa.key and sa.pub files. If both files already exist, they "
             "are used.",
    ))
    return Phase("certs", "Certificate generation", run=_run_certs, phases=children)


# --- kubeconfig ---------------------------------------------------------------

def _kubeconfig_runner(name: str) -> Callable[[InitContext], None]:
    def run(ctx: InitContext) -> None:
        d = kubeconfig.KUBECONFIGS[name]
        if _dry_run_missing(ctx, ctx.kubeconfig_dir / d.file, "kubeconfig"):
            return
        if name == "kubelet" and _finalized(ctx.kubeconfig_dir / d.file):
            # kubelet-finalize pointed it at the kubelet's rotated certificate: the
            # kubelet owns its credentials now; re-running init leaves them alone.
            ctx.echo(f'[kubeconfig] Using existing kubeconfig file: "{ctx.kubeconfig_dir / d.file}" '
                     "(rotated kubelet client certificate)")
            return
        out = kubeconfig.ensure_kubeconfig(name, ctx.kubeconfig_dir, ctx.cert_dir, ctx.config,
                                           ctx.node_name, ctx.advertise_address)
        ctx.changed += out.created
        if out.created:
            ctx.echo(f'[kubeconfig] Writing "{d.file}" kubeconfig file')
        else:
            ctx.echo(f'[kubeconfig] Using existing kubeconfig file: "{out.path}"')
    return run


def _finalized(path: Path) -> bool:
    import yaml

    try:
        users = (yaml.safe_load(path.read_text()) or {}).get("users") or []
    except (OSError, yaml.YAMLError):
        return False
    return any("client-certificate" in (u.get("user") or {}) for u in users)


def _run_kubeconfig(ctx: InitContext) -> None:
    ctx.echo(f'[kubeconfig] Using kubeconfig folder "{ctx.kubeconfig_dir}"')


def kubeconfig_phase() -> Phase:
    flags = ("config", "cert-dir", "kubeconfig-dir", "node-name", "advertise-address",
             "control-plane-endpoint", "apiserver-bind-port")
    children = [Phase("all", "Generate all kubeconfig files", run_all_siblings=True)]
    for name, d in kubeconfig.KUBECONFIGS.items():
        children.append(Phase(
            name, f"Generate a {d.help}", run=_kubeconfig_runner(name),
            long=f"Generate the {d.help}, and save it to {d.file} file.",
        ))
    return Phase("kubeconfig", "Generate all kubeconfig files necessary to establish the "
                 "control plane and the admin kubeconfig file", run=_run_kubeconfig,
                 phases=children, flags=flags)


# --- the workflow -------------------------------------------------------------

INIT_FLAGS = [
    Flag("config", "Path to a cluster configuration file (default: built-in defaults).",
         metavar="PATH"),
    Flag("cert-dir", "The path where to save and store the certificates.",
         default=DEFAULT_CERT_DIR, metavar="DIR"),
    Flag("kubeconfig-dir", "The path where to save the kubeconfig files.",
         default=DEFAULT_KUBECONFIG_DIR, metavar="DIR"),
    Flag("node-name", "Name of this node (default: the hostname, lowercased).", metavar="NAME"),
    Flag("advertise-address", "The IP address the API server advertises it's listening on "
         "(default: the IP of the default-route interface).", metavar="IP"),
    Flag("control-plane-endpoint", "A stable IP or DNS name (with optional port) for the "
         "control plane; overrides controlPlaneEndpoint from --config.", metavar="HOST[:PORT]"),
    Flag("apiserver-bind-port", "Port for the API Server to bind to (default: the config's "
         "localAPIEndpoint.bindPort, 6443); overrides --config.", metavar="PORT"),
]


INIT_FLAGS += [
    Flag("dry-run", "Don't apply any changes; just output what would be done.", is_flag=True),
    Flag("diff", "With --dry-run or not: show the differences of files written.", is_flag=True),
    Flag("ignore-preflight-errors", "A list of checks whose errors will be shown as warnings. "
         "Example: 'IsPrivilegedUser,Swap'. Value 'all' ignores errors from all checks.",
         metavar="CHECKS"),
    Flag("upload-certs", "Upload control-plane certificates to the kubeadm-certs Secret.",
         is_flag=True),
    Flag("certificate-key", "Key used to encrypt the control-plane certificates in the "
         "kubeadm-certs Secret (64 hex characters; default: generated).", metavar="KEY"),
    Flag("token", "The token to use for establishing bidirectional trust between nodes and "
         "control-plane nodes ([a-z0-9]{6}.[a-z0-9]{16}; default: generated).", metavar="TOKEN"),
    Flag("token-ttl", "The duration before the token is automatically deleted (e.g. 1s, 2m, "
         "3h). '0' means the token never expires.", default="24h", metavar="DURATION"),
    Flag("control-plane-timeout", "Seconds to wait for the API server to become ready.",
         default=240, type=float, metavar="SECONDS"),
]

_NODE = ("config", "node-name", "advertise-address", "control-plane-endpoint", "cert-dir",
         "kubeconfig-dir", "apiserver-bind-port")
_HOST = (*_NODE, "dry-run", "diff")
_API = (*_NODE, "dry-run")


def init_phases() -> list[Phase]:
    from bootstrap.flows import init_cluster as api
    from bootstrap.flows import init_node as host

    return [
        Phase("preflight", "Run pre-flight checks", run=host.run_preflight,
              flags=(*_NODE, "ignore-preflight-errors")),
        certs_phase(),
        kubeconfig_phase(),
        Phase("etcd", "Generate the systemd unit for the local etcd member (stacked etcd)",
              run=host.run_etcd_local, flags=_HOST),
        Phase("control-plane", "Generate the systemd units of the API server, controller "
              "manager and scheduler, and start them", run=host.run_control_plane, flags=_HOST),
        Phase("kubelet-start", "Write the kubelet settings and (re)start the kubelet",
              run=host.run_kubelet_start, flags=_HOST),
        Phase("wait-control-plane", "Wait for the control plane to start",
              run=host.run_wait_control_plane, flags=(*_HOST, "control-plane-timeout")),
        Phase("upload-config", "Upload the kubeadm and kubelet configuration to ConfigMaps",
              run=api.run_upload_config, flags=_API),
        Phase("upload-certs", "Upload certificates to kubeadm-certs", run=api.run_upload_certs,
              flags=(*_API, "upload-certs", "certificate-key")),
        Phase("mark-control-plane", "Mark a node as a control-plane",
              run=api.run_mark_control_plane, flags=_API),
        Phase("bootstrap-token", "Generates bootstrap tokens used to join a node to a cluster",
              run=api.run_bootstrap_token, flags=(*_API, "token", "token-ttl")),
        Phase("kubelet-finalize", "Updates settings relevant to the kubelet after TLS bootstrap",
              run=host.run_kubelet_finalize, flags=_HOST),
        Phase("addons", "Install required addons for passing conformance tests", phases=[
            Phase("all", "Install all the addons", run_all_siblings=True),
            Phase("coredns", 'The "kube-dns" Service at the tenth service IP (DNS itself runs '
                  "on the control-plane hosts)", run=api.run_addon_dns),
            Phase("kube-proxy", "kube-proxy as a systemd unit", run=api.run_addon_kube_proxy),
        ], flags=_HOST),
        Phase("show-join-command", "Show the join command for control-plane and worker node",
              run=api.run_show_join_command,
              flags=(*_NODE, "token", "upload-certs", "certificate-key")),
    ]


def init_workflow(echo: Callable[[str], None], connection: Any = None) -> Workflow:
    return Workflow(
        name="init",
        short="Run this command in order to set up the Kubernetes control plane.",
        phases=init_phases(),
        flags=INIT_FLAGS,
        make_context=lambda params: InitContext(params, echo, connection),
        finish=finish,
        changes=changed_count,
    )


def changed_count(ctx: InitContext) -> int:
    runner = ctx.__dict__.get("runner")  # only if a phase played roles
    return ctx.changed + (runner.recap.changed if runner is not None else 0)


def finish(ctx: InitContext) -> None:
    """The last line says what changed; cluster up reads it (it runs init over SSH)."""
    n = changed_count(ctx)
    verb = "would change" if ctx.dry_run else "changed"
    if n and ctx.changed_phases:
        shown = ctx.changed_phases[:6]
        more = len(ctx.changed_phases) - len(shown)
        ctx.echo(f"[{ctx.label}] {verb} in: {', '.join(shown)}" + (f" +{more} more" if more else ""))
    ctx.echo(f"[{ctx.label}] {n} {verb}" + ("" if n or ctx.dry_run else " (converged)"))
