"""The ``init`` workflow: kubeadm's phases, declared once as data.

Today: ``certs`` and ``kubeconfig``. Later phases (etcd, control-plane,
kubelet-start, ...) are appended to ``INIT_PHASES``; the CLI picks them up.
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


class InitContext:
    """What the init phases share: options, then config/node facts resolved lazily.

    Lazy so that `init phase certs ca` neither needs an advertise address nor
    fails on a host without a default route.
    """

    def __init__(self, params: dict[str, Any], echo: Callable[[str], None]):
        self.params = params
        self.echo = echo
        self.cert_dir = Path(params.get("cert_dir") or DEFAULT_CERT_DIR)
        self.kubeconfig_dir = Path(params.get("kubeconfig_dir") or DEFAULT_KUBECONFIG_DIR)
        # Whatever was given explicitly is checked before any phase writes a file;
        # only the defaults that need the host (hostname, default route) stay lazy.
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
        return cfg

    @cached_property
    def node_name(self) -> str:
        return self.params.get("node_name") or default_node_name()

    @cached_property
    def advertise_address(self) -> str:
        addr = self.params.get("advertise_address") or default_advertise_address()
        catalog.Node(self.node_name, addr).ip()  # one clear line if it is not an IP
        return addr


# --- certs --------------------------------------------------------------------

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
        store.ensure_ca(name, ctx.cert_dir, ctx.config)
        ctx.echo(f'[certs] Generating "{d.base}" certificate and key')
    return run


def _leaf_runner(name: str) -> Callable[[InitContext], None]:
    def run(ctx: InitContext) -> None:
        d = catalog.LEAVES[name]
        if _skip_for_external_etcd(ctx, d, "certificate"):
            return
        node = (ctx.node_name, ctx.advertise_address) if d.per_node else (None, None)
        out = store.ensure_leaf(name, ctx.cert_dir, None, ctx.config, *node)
        if not out.created:
            ctx.echo(f"[certs] Using existing {d.base} certificate and key on disk")
            return
        ctx.echo(f'[certs] Generating "{d.base}" certificate and key')
        dns, ips = cert_sans(read_cert_file(out.path))
        if dns or ips:
            ctx.echo(f"[certs] {d.base} serving cert is signed for DNS names "
                     f"[{' '.join(dns)}] and IPs [{' '.join(str(i) for i in ips)}]")
    return run


def _run_sa(ctx: InitContext) -> None:
    out = store.ensure_sa_key(ctx.cert_dir, ctx.config)
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
        out = kubeconfig.ensure_kubeconfig(name, ctx.kubeconfig_dir, ctx.cert_dir, ctx.config,
                                           ctx.node_name, ctx.advertise_address)
        if out.created:
            ctx.echo(f'[kubeconfig] Writing "{d.file}" kubeconfig file')
        else:
            ctx.echo(f'[kubeconfig] Using existing kubeconfig file: "{out.path}"')
    return run


def _run_kubeconfig(ctx: InitContext) -> None:
    ctx.echo(f'[kubeconfig] Using kubeconfig folder "{ctx.kubeconfig_dir}"')


def kubeconfig_phase() -> Phase:
    flags = ("config", "cert-dir", "kubeconfig-dir", "node-name", "advertise-address",
             "control-plane-endpoint")
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
]


def init_phases() -> list[Phase]:
    return [certs_phase(), kubeconfig_phase()]


def init_workflow(echo: Callable[[str], None]) -> Workflow:
    return Workflow(
        name="init",
        short="Run this command in order to set up the Kubernetes control plane.",
        phases=init_phases(),
        flags=INIT_FLAGS,
        make_context=lambda params: InitContext(params, echo),
    )
