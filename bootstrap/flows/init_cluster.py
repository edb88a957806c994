"""init phases that write to the API: upload-config, upload-certs, mark-control-plane,
bootstrap-token, addons, and the join commands printed at the end.

Every write is a server-side apply under kubeadm's field manager (or a create
for bootstrap tokens, whose expiry must not move on a re-run), counted only
when the object changed, so a second ``init`` reports 0 changed.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from bootstrap.errors import UserError
from bootstrap.flows import apiobjects, node_vars
from bootstrap.flows.kubeapi import describe
from bootstrap.pki.tokens import ca_cert_hash, pack_shared_certs, parse_token

SECRETS = ("", "v1", "secrets")
CONFIG_MAPS = ("", "v1", "configmaps")
NODES = ("", "v1", "nodes")


def apply_all(ctx, phase: str, objs: list[dict]) -> None:
    for obj in objs:
        outcome = ctx.api.apply(obj, dry_run=ctx.dry_run)
        if outcome != "unchanged":
            ctx.changed += 1
            ctx.echo(f"[{phase}] {describe(obj)} {outcome}")


def run_upload_config(ctx) -> None:
    ctx.echo('[upload-config] Storing the configuration in ConfigMap "kubeadm-config" in the '
             '"kube-system" Namespace')
    objs = [apiobjects.kubeadm_config(ctx.config), *apiobjects.config_rbac()]
    kubelet_yaml = Path("/var/lib/kubelet/config.yaml")
    if kubelet_yaml.exists():
        objs.append(apiobjects.kubelet_config(kubelet_yaml.read_text()))
    apply_all(ctx, "upload-config", objs)
    if not ctx.dry_run:
        # Its own field (merge patch): joins add theirs, a re-run of init keeps them.
        register_api_endpoint(ctx)


def register_api_endpoint(ctx) -> None:
    cm = ctx.api.get(CONFIG_MAPS, "kubeadm-config", apiobjects.KUBE_SYSTEM)
    if cm is None:
        return
    status = yaml.safe_load((cm.get("data") or {}).get("ClusterStatus") or "{}") or {}
    eps = status.setdefault("apiEndpoints", {})
    want = {"advertiseAddress": ctx.advertise_address, "bindPort": ctx.config.bind_port}
    if eps.get(ctx.node_name) == want:
        return
    eps[ctx.node_name] = want
    if ctx.dry_run:
        ctx.echo("[dryrun] Would add this node to kubeadm-config's ClusterStatus")
        ctx.changed += 1
        return
    ctx.api.patch(CONFIG_MAPS, "kubeadm-config",
                  {"data": {"ClusterStatus": yaml.safe_dump(status, sort_keys=True)}},
                  apiobjects.KUBE_SYSTEM, patch_type="merge")
    ctx.changed += 1


def ensure_token(ctx, token: str, *, ttl: timedelta | None, usages=apiobjects.DEFAULT_USAGES,
                 groups=(apiobjects.NODE_TOKEN_GROUP,), description: str = "") -> dict | None:
    """Create the token's Secret if it is absent (an existing one keeps its expiry)."""
    token_id, secret = parse_token(token)
    name = f"bootstrap-token-{token_id}"
    existing = ctx.api.get(SECRETS, name, apiobjects.KUBE_SYSTEM)
    if existing is not None:
        return existing
    obj = apiobjects.token_secret(token_id, secret, ttl=ttl, now=datetime.now(UTC),
                                  usages=usages, groups=groups, description=description)
    ctx.changed += 1
    if ctx.dry_run:
        ctx.echo(f"[bootstrap-token] Would create {describe(obj)}")
        return None
    return ctx.api.create(obj)


def run_upload_certs(ctx) -> None:
    if not ctx.params.get("upload_certs"):
        ctx.echo("[upload-certs] Skipping phase. Please see --upload-certs")
        return
    key = ctx.certificate_key
    ctx.echo('[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the '
             '"kube-system" Namespace')
    # A token that authenticates nothing, only carries the 2 h TTL the Secret inherits
    # through its ownerReference (the token cleaner deletes it, then the GC the Secret).
    owner = ensure_token(ctx, ctx.certs_token, ttl=apiobjects.CERTS_TTL, usages=(), groups=(),
                         description="Proxy for managing TTL for the kubeadm-certs secret")
    packed = pack_shared_certs(ctx.cert_dir, key)
    secret = apiobjects.certs_secret(packed, owner)
    apply_all(ctx, "upload-certs", apiobjects.certs_rbac())
    if ctx.dry_run:
        ctx.echo(f"[upload-certs] Would apply {describe(secret)}")
        return
    # Fresh ciphertext (random nonces) every time: the Secret always changes, so it
    # is written only when asked for (--upload-certs), as kubeadm does.
    ctx.api.apply(secret)
    ctx.changed += 1
    ctx.echo(f"[upload-certs] Using certificate key:\n{key}")


def _node(ctx) -> dict | None:
    return ctx.api.get(NODES, ctx.node_name)


def run_mark_control_plane(ctx, clock=time.monotonic, sleep=time.sleep) -> None:
    name = ctx.node_name
    ctx.echo(f"[mark-control-plane] Marking the node {name} as control-plane by adding the "
             f'labels: [{apiobjects.CONTROL_PLANE_LABEL}] and the taints '
             f"[{apiobjects.CONTROL_PLANE_LABEL}:NoSchedule]")
    if ctx.dry_run:
        return
    node = _node(ctx)
    if node is None:
        kubelet = ctx.connection.run("systemctl is-active kubelet", check=False).stdout.strip()
        # "activating": systemd is restarting a kubelet that started before its API
        # server answered; it registers soon, so wait for it as for a running one.
        starting = kubelet in ("active", "activating", "reloading")
        wait = float(ctx.params.get("node_timeout") or 120) if starting else 0
        found = ctx.api.wait(lambda: _node(ctx) is not None, wait, clock=clock, sleep=sleep)
        if not found:
            ctx.echo(f"\t[WARNING mark-control-plane]: node {name} has not registered "
                     f"(kubelet {kubelet or 'not running'}); run "
                     "`bootstrap init phase mark-control-plane` once it has")
            return
        node = _node(ctx)
    labels = (node.get("metadata") or {}).get("labels") or {}
    patch = apiobjects.control_plane_node_patch()
    taints = apiobjects.with_control_plane_taint(node)
    if taints is not None:
        patch["spec"] = {"taints": taints}
    elif all(k in labels for k in patch["metadata"]["labels"]):
        return
    ctx.api.patch(NODES, name, patch, patch_type="merge")
    ctx.changed += 1


def run_bootstrap_token(ctx) -> None:
    token = ctx.token
    ctx.echo(f"[bootstrap-token] Using token: {token}")
    ensure_token(ctx, token, ttl=ctx.token_ttl)
    ctx.echo("[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to get "
             "nodes, post CSRs, and have the csrapprover approve them and their rotation")
    ctx.echo('[bootstrap-token] Creating the "cluster-info" ConfigMap in the "kube-public" '
             "namespace")
    ca = ctx.cert_dir / "ca.crt"
    objs = apiobjects.bootstrap_token_rbac()
    if ca.exists():
        objs.append(apiobjects.cluster_info(ctx.endpoint_url, ca.read_bytes()))
    elif ctx.dry_run:
        ctx.echo("[dryrun] Would create ConfigMap kube-public/cluster-info")
        ctx.changed += 1
    else:
        raise UserError("no CA certificate for cluster-info", where=str(ca),
                        hint="run the certs phase first")
    apply_all(ctx, "bootstrap-token", objs)


def run_addon_dns(ctx) -> None:
    dns_ip = node_vars.cluster_dns_ip(ctx.config)
    ctx.echo(f'[addons] Applied essential addon: the "kube-dns" Service at {dns_ip}')
    # The DNS servers' own rights come with the addon, as CoreDNS's manifests bring theirs.
    apply_all(ctx, "addons", [*apiobjects.dns_rbac(), apiobjects.dns_service(dns_ip)])


def run_addon_kube_proxy(ctx) -> None:
    kubeconfig = ctx.kubeconfig_dir / "kube-proxy.conf"
    if not kubeconfig.exists() and ctx.dry_run:
        ctx.echo(f"[dryrun] Would write {kubeconfig} and the kube-proxy unit")
        ctx.changed += 1
        return
    if not kubeconfig.exists():
        from bootstrap.pki import kubeconfig as kc
        from bootstrap.pki.certs import CLIENT_AUTH, CertSpec
        from bootstrap.pki.store import require_ca

        ca = require_ca(ctx.cert_dir, "ca", "kube-proxy.conf")
        kc.write_kubeconfig(kubeconfig, cluster_name=ctx.config.cluster_name,
                            server=ctx.endpoint_url, ca=ca,
                            spec=CertSpec("system:kube-proxy", (), (CLIENT_AUTH,)),
                            validity=ctx.config.certificate_validity_period,
                            algorithm=ctx.config.encryption_algorithm)
        ctx.changed += 1
    ctx.echo("[addons] Applied essential addon: kube-proxy (systemd unit)")
    ctx.runner.play("kube-proxy", ["kube-proxy"], {
        **node_vars.node_vars(ctx.config, ctx.node_name, ctx.advertise_address),
        "kube_proxy_kubeconfig_local": str(kubeconfig)})


def join_commands(endpoint: str, token: str, ca_hash: str, certificate_key: str | None) -> list[str]:
    base = (f"bootstrap join {endpoint} --token {token} \\\n"
            f"\t--discovery-token-ca-cert-hash {ca_hash}")
    out = [base]
    if certificate_key:
        out.insert(0, f"{base} \\\n\t--control-plane --certificate-key {certificate_key}")
    return out


def run_show_join_command(ctx) -> None:
    if (ctx.cert_dir / "ca.crt").exists():
        ca_hash = ca_cert_hash(ctx.cert_dir / "ca.crt")
    elif ctx.dry_run:
        ca_hash = "sha256:<hash of the CA this run would generate>"
    else:
        raise UserError("no CA certificate to pin", where=str(ctx.cert_dir / "ca.crt"),
                        hint="run the certs phase first")
    key = ctx.certificate_key if ctx.params.get("upload_certs") else None
    cmds = join_commands(ctx.endpoint_address, ctx.token, ca_hash, key)
    ctx.echo("\nYour Kubernetes control-plane has initialized successfully!\n")
    ctx.echo("To start using your cluster, run as root:\n\n"
             f"  export KUBECONFIG={ctx.kubeconfig_dir / 'admin.conf'}\n")
    if key:
        ctx.echo("You can now join any number of control-plane nodes running the following "
                 "command on each as root:\n\n  " + cmds[0] + "\n")
        ctx.echo("Please note that the certificate-key gives access to cluster sensitive data, "
                 "keep it secret!\nAs a safeguard, uploaded-certs will be deleted in two hours.\n")
    ctx.echo("Then you can join any number of worker nodes by running the following on each "
             "as root:\n\n  " + cmds[-1] + "\n")
