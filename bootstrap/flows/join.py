"""The ``join`` workflow: kubeadm's join phases, declared once as data.

preflight, control-plane-prepare (download-certs, certs, kubeconfig,
control-plane), kubelet-start, control-plane-join (etcd, mark-control-plane).
A worker runs preflight and kubelet-start: it writes bootstrap-kubelet.conf
(the token and the discovered CA) and starts the kubelet, which asks for its
own client certificate (TLS bootstrap). ``--control-plane`` nodes also take
the shared CA files from the kubeadm-certs Secret (``--certificate-key``), make
their own leaves and kubeconfigs, become an etcd member (stacked) and start
the control-plane units. The phases reuse init's where they do the same.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from bootstrap.errors import UserError
from bootstrap.flows import apiobjects, discovery, init_cluster, init_node, node_vars
from bootstrap.flows.init import (
    DEFAULT_CERT_DIR,
    DEFAULT_KUBECONFIG_DIR,
    InitContext,
    bind_port_flag,
    certs_phase,
    kubeconfig_phase,
)
from bootstrap.flows.workflow import Flag, Phase, Workflow

CONFIG_MAPS = ("", "v1", "configmaps")
SECRETS = ("", "v1", "secrets")
BOOTSTRAP_KUBECONFIG = "bootstrap-kubelet.conf"


class JoinContext(InitContext):
    """init's context (node facts, runner, API) plus what discovery finds."""

    def __init__(self, params: dict[str, Any], echo: Callable[[str], None],
                 connection: Any = None):
        endpoint = params.get("api_server_endpoint")
        if not endpoint and not params.get("discovery_file"):
            raise UserError("join needs the API server endpoint (host:port)",
                            hint="bootstrap join 10.0.0.1:6443 --token ... "
                                 "--discovery-token-ca-cert-hash sha256:...")
        if not params.get("token"):
            raise UserError("join needs --token", hint="see `bootstrap token create`")
        # Checked before anything runs: one line each.
        from bootstrap.pki.tokens import parse_token

        parse_token(params["token"])
        pins = params.get("discovery_token_ca_cert_hash") or ""
        self.pins = discovery.parse_pins([p for p in pins.split(",") if p.strip()])
        # The cluster's config comes from kubeadm-config, not from a local file.
        super().__init__({**params, "config": None}, echo, connection)
        self.control_plane = bool(params.get("control_plane"))
        self.label = "join"

    @cached_property
    def discovered(self) -> discovery.Discovered:
        self.echo("[preflight] Reading configuration from the cluster...")
        if self.params.get("discovery_file"):
            return discovery.from_file(self.params["discovery_file"])
        return discovery.discover(self.params["api_server_endpoint"], self.params["token"],
                                  self.pins,
                                  bool(self.params.get("discovery_token_unsafe_skip_ca_verification")))

    @cached_property
    def token_api(self):
        """The API as the bootstrap token (what a joining node may read)."""
        from bootstrap.api.client import Client
        from bootstrap.flows.kubeapi import KubeAPI

        found = self.discovered
        # The address discovery reached, not cluster-info's server: behind the
        # localhost balancer that is 127.0.0.1, which this host has no balancer on yet.
        return KubeAPI(lambda: Client(found.reached, ca_data=found.ca_pem,
                                      token=self.params["token"]), "join (bootstrap token)")

    @cached_property
    def config(self):
        from bootstrap.config.cluster import parse_cluster_config

        cm = self.token_api.get(CONFIG_MAPS, "kubeadm-config", apiobjects.KUBE_SYSTEM)
        if cm is None:
            raise UserError("the cluster has no kubeadm-config ConfigMap", where="join",
                            hint="run `bootstrap init phase upload-config` on a control-plane host")
        cfg = parse_cluster_config(cm["data"]["ClusterConfiguration"], "kubeadm-config")
        if not cfg.control_plane_endpoint:
            # Without one, nodes use the endpoint cluster-info names.
            cfg = dataclasses.replace(cfg, control_plane_endpoint=self.discovered.server
                                      .removeprefix("https://"))
        # The port is this host's own (kubeadm's JoinConfiguration.controlPlane.
        # localAPIEndpoint.bindPort, 6443 unless given), not in ClusterConfiguration.
        return dataclasses.replace(cfg, bind_port=bind_port_flag(self.params)
                                   or node_vars.API_PORT)


# --- phases -------------------------------------------------------------------

def _cp_only(fn):
    def run(ctx: JoinContext) -> None:
        if ctx.control_plane:
            fn(ctx)
    return run


def run_preflight(ctx: JoinContext) -> None:
    init_node.run_preflight(ctx, "control-plane" if ctx.control_plane else "node")
    _ = ctx.config  # discovery and the cluster's config, before anything is written


def run_download_certs(ctx: JoinContext) -> None:
    from bootstrap.pki.tokens import unpack_shared_certs

    if not ctx.params.get("certificate_key"):
        # kubeadm's manual certificate distribution: the shared CA files are in place.
        missing = [f for f in ("ca.crt", "ca.key", "sa.key", "sa.pub")
                   if not (ctx.cert_dir / f).exists()]
        if missing:
            raise UserError(f"--control-plane without --certificate-key needs the shared "
                            f"certificates in place; missing {', '.join(missing)}",
                            where=str(ctx.cert_dir),
                            hint="pass --certificate-key from `bootstrap init phase upload-certs "
                                 "--upload-certs`, or copy the CA files")
        ctx.echo("[download-certs] No --certificate-key: using the certificates in place")
        return
    ctx.echo('[download-certs] Downloading the certificates in Secret "kubeadm-certs" in the '
             '"kube-system" Namespace')
    secret = ctx.token_api.get(SECRETS, apiobjects.CERTS_SECRET, apiobjects.KUBE_SYSTEM)
    if secret is None:
        raise UserError("the kubeadm-certs Secret is missing or expired (it lives 2 hours)",
                        where="download-certs",
                        hint="run `bootstrap init phase upload-certs --upload-certs` on a "
                             "control-plane host and use the certificate key it prints")
    packed = {apiobjects.secret_key_to_path(k): v for k, v in (secret.get("data") or {}).items()}
    if ctx.dry_run:
        ctx.echo(f"[dryrun] Would write {len(packed)} shared certificate files to {ctx.cert_dir}")
        return
    written = unpack_shared_certs(packed, ctx.params["certificate_key"], ctx.cert_dir)
    ctx.changed += len(written)


def api_endpoints(status_cm: dict | None) -> dict[str, dict]:
    """kubeadm-config's ClusterStatus apiEndpoints: node -> {advertiseAddress, bindPort}."""
    status = yaml.safe_load(((status_cm or {}).get("data") or {}).get("ClusterStatus") or "{}")
    return (status or {}).get("apiEndpoints") or {}


def run_loadbalancer(ctx: JoinContext) -> None:
    """A worker of a cluster behind the localhost balancer gets its haproxy first
    (kubespray deploys it before the join): the kubelet's endpoint is 127.0.0.1."""
    host, port = _endpoint_host_port(ctx.config.control_plane_endpoint)
    if ctx.control_plane or host not in ("127.0.0.1", "localhost", "::1"):
        return
    cm = ctx.token_api.get(CONFIG_MAPS, "kubeadm-config", apiobjects.KUBE_SYSTEM)
    servers = [{"name": n, "address": e["advertiseAddress"],
                "port": e.get("bindPort", node_vars.API_PORT)}
               for n, e in sorted(api_endpoints(cm).items())]
    if not servers:
        raise UserError("the cluster uses a localhost load balancer but kubeadm-config lists "
                        "no API endpoints", where="join loadbalancer")
    ctx.echo(f"[loadbalancer] haproxy on 127.0.0.1:{port} for {len(servers)} API server(s)")
    ctx.runner.play("loadbalancer", ["haproxy"], {"lb_servers": servers,
                                                  "loadbalancer_apiserver_port": port})


def _endpoint_host_port(endpoint: str) -> tuple[str, int]:
    from bootstrap.pki.catalog import split_host_port

    host, port = split_host_port(endpoint)
    return host, port or node_vars.API_PORT


def run_kubelet_start(ctx: JoinContext) -> None:
    """bootstrap-kubelet.conf (token + discovered CA) unless the kubelet has its own; then the unit."""
    found = ctx.discovered
    ca = ctx.cert_dir / "ca.crt"
    kubelet_conf = ctx.kubeconfig_dir / "kubelet.conf"
    boot = ctx.kubeconfig_dir / BOOTSTRAP_KUBECONFIG
    files: list[tuple[Path, bytes, int]] = []
    if not ca.exists() or ca.read_bytes() != found.ca_pem:
        files.append((ca, found.ca_pem, 0o644))
    if not kubelet_conf.exists():
        text = bootstrap_kubeconfig(ctx.config.cluster_name, ctx.endpoint_url, str(ca),
                                    ctx.params["token"])
        if not boot.exists() or boot.read_text() != text:
            files.append((boot, text.encode(), 0o600))
    for path, data, mode in files:
        ctx.echo(f'[kubelet-start] Writing "{path}"' if not ctx.dry_run
                 else f"[dryrun] Would write {path}")
        ctx.changed += 1
        if not ctx.dry_run:
            _write(path, data, mode)
    init_node.run_kubelet_start(ctx)
    ctx.echo("[kubelet-start] The kubelet performs the TLS Bootstrap (its CSR is approved for "
             "the bootstrap token's group)")


def bootstrap_kubeconfig(cluster: str, server: str, ca_file: str, token: str) -> str:
    user = "tls-bootstrap-token-user"
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"certificate-authority": ca_file,
                                                   "server": server}}],
        "contexts": [{"name": f"{user}@{cluster}", "context": {"cluster": cluster,
                                                              "user": user}}],
        "current-context": f"{user}@{cluster}",
        "users": [{"name": user, "user": {"token": token}}],
    }, sort_keys=False)


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    tmp.replace(path)


def _etcd_endpoints(ctx: JoinContext) -> list[str]:
    """Client URLs of the running members: the other control-plane hosts' API endpoints."""
    # With the token, at the address discovery reached: this host's own API server
    # cannot serve before its etcd member exists.
    cm = ctx.token_api.get(CONFIG_MAPS, "kubeadm-config", apiobjects.KUBE_SYSTEM)
    return [f"https://{_h(a['advertiseAddress'])}:2379"
            for name, a in sorted(api_endpoints(cm).items()) if name != ctx.node_name]


def _h(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def run_etcd_join(ctx: JoinContext) -> None:
    if ctx.config.etcd.local is None:
        ctx.echo("[control-plane-join] External etcd: no local member")
        return
    endpoints = _etcd_endpoints(ctx)
    if not endpoints:
        raise UserError("no etcd member to join: kubeadm-config lists no other control-plane "
                        "host", where="control-plane-join etcd")
    v = init_node._etcd_vars(ctx)
    fresh = bool(v["etcd_bootstrap_hosts"])
    v.update(etcd_initial_cluster_state="existing", etcd_member_endpoints=endpoints,
             etcd_joining_hosts=[ctx.node_name] if fresh else [])
    ctx.echo("[control-plane-join] Adding this host as an etcd member (while quorum holds)")
    ctx.runner.play("etcd (join)", ["etcd"], v)


def run_update_status(ctx: JoinContext) -> None:
    """Record this node's API endpoint in kubeadm-config's ClusterStatus."""
    init_cluster.register_api_endpoint(ctx)


def run_finish(ctx: JoinContext) -> None:
    ctx.echo("\nThis node has joined the cluster:\n* Certificate signing request is sent by the "
             "kubelet to the API server and the response is received.\n\nRun 'kubectl get "
             "nodes' on the control-plane to see this node join the cluster.")


JOIN_FLAGS = [
    Flag("api-server-endpoint", "The API server endpoint to discover the cluster from "
         "(host:port); also the first argument.", metavar="HOST:PORT"),
    Flag("token", "The bootstrap token for discovery and the kubelet's TLS bootstrap.",
         metavar="TOKEN"),
    Flag("discovery-token-ca-cert-hash", "For token-based discovery, validate that the root CA "
         "public key matches this hash (format: sha256:<hex>); several comma-separated.",
         metavar="sha256:HEX"),
    Flag("discovery-token-unsafe-skip-ca-verification", "For token-based discovery, allow "
         "joining without --discovery-token-ca-cert-hash pinning.", is_flag=True),
    Flag("discovery-file", "For file-based discovery, a kubeconfig file naming the API "
         "server and its CA (instead of token discovery).", metavar="PATH"),
    Flag("control-plane", "Create a new control plane instance on this node.", is_flag=True),
    Flag("certificate-key", "Use this key to decrypt the certificate secrets uploaded by init.",
         metavar="KEY"),
    Flag("node-name", "Name of this node (default: the hostname, lowercased).", metavar="NAME"),
    Flag("advertise-address", "(control plane) The IP address the API server will advertise; "
         "also the node IP (default: the IP of the default-route interface).", metavar="IP"),
    Flag("apiserver-bind-port", "(control plane) Port for the API Server to bind to "
         "(default: 6443).", metavar="PORT"),
    Flag("cert-dir", "The path where to save and store the certificates.",
         default=DEFAULT_CERT_DIR, metavar="DIR"),
    Flag("kubeconfig-dir", "The path where to save the kubeconfig files.",
         default=DEFAULT_KUBECONFIG_DIR, metavar="DIR"),
    Flag("ignore-preflight-errors", "A list of checks whose errors will be shown as warnings.",
         metavar="CHECKS"),
    Flag("dry-run", "Don't apply any changes; just output what would be done.", is_flag=True),
    Flag("diff", "Show the differences of files written.", is_flag=True),
]


def join_phases() -> list[Phase]:
    cp_kubeconfigs = kubeconfig_phase()
    cp_kubeconfigs.phases = [p for p in cp_kubeconfigs.phases
                             if p.name in ("admin", "controller-manager", "scheduler")]
    certs = certs_phase()
    for group in (certs, cp_kubeconfigs):
        group.run = _cp_only(group.run)
        group.flags = None
        for child in group.phases:
            if child.run is not None:
                child.run = _cp_only(child.run)
            child.flags = None
    return [
        Phase("preflight", "Run join pre-flight checks", run=run_preflight),
        Phase("control-plane-prepare", "Prepare the machine for serving a control plane",
              phases=[
                  Phase("download-certs", "Download certificates shared among control-plane "
                        "nodes from the kubeadm-certs Secret", run=_cp_only(run_download_certs)),
                  certs,
                  cp_kubeconfigs,
                  Phase("control-plane", "Generate the control-plane units",
                        run=_cp_only(init_node.run_control_plane)),
              ]),
        Phase("loadbalancer", "haproxy on 127.0.0.1 when the cluster uses the localhost "
              "load balancer (workers)", run=run_loadbalancer),
        Phase("kubelet-start", "Write kubelet settings, certificates and (re)start the kubelet",
              run=run_kubelet_start),
        Phase("control-plane-join", "Join a machine as a control plane instance", phases=[
            Phase("etcd", "Add a new local etcd member", run=_cp_only(run_etcd_join)),
            Phase("wait-control-plane", "Wait for this node's API server to be ready",
                  run=_cp_only(init_node.run_wait_control_plane)),
            Phase("update-status", "Register the new control-plane node in kubeadm-config",
                  run=_cp_only(run_update_status)),
            Phase("mark-control-plane", "Mark a node as a control-plane",
                  run=_cp_only(init_cluster.run_mark_control_plane)),
        ]),
        Phase("show-result", "Say what happened", run=run_finish, hidden=True),
    ]


def join_workflow(echo: Callable[[str], None], connection: Any = None) -> Workflow:
    from bootstrap.flows.init import changed_count, finish

    return Workflow(
        name="join",
        short="Run this on any machine you wish to join an existing cluster.",
        phases=join_phases(),
        flags=JOIN_FLAGS,
        make_context=lambda params: JoinContext(params, echo, connection),
        finish=finish,
        changes=changed_count,
    )
