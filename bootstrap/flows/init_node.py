"""init phases that change this host: preflight, etcd, control-plane, kubelet-start,
wait-control-plane, kubelet-finalize.

Files and units are written by the roles cluster up uses, run on this host by
the engine (``local_play``), so --dry-run/--diff and "0 changed" hold here too.
``ctx`` is the init (or join) context: options plus lazily resolved node facts.
"""

from __future__ import annotations

import shlex
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from bootstrap.errors import UserError
from bootstrap.flows import node_vars, preflight
from bootstrap.flows.plan import ETCD_CLIENT_PORT, ETCD_PEER_PORT

CONTROL_PLANE_UNITS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def run_preflight(ctx, role: str = "control-plane") -> None:
    ctx.echo("[preflight] Running pre-flight checks")
    preflight.run_checks(ctx.connection, role, ctx.params.get("ignore_preflight_errors"),
                         ctx.echo, cert_dir=str(ctx.cert_dir),
                         local_etcd=role == "control-plane" and ctx.config.etcd.local is not None
                         and not ctx.params.get("etcd_running"),
                         apiserver_port=ctx.config.bind_port if role == "control-plane"
                         else node_vars.API_PORT)


def _etcd_vars(ctx) -> dict:
    name, ip = ctx.node_name, ctx.advertise_address
    host = f"[{ip}]" if ":" in ip else ip
    me = {"name": name, "ip": ip, "peer_url": f"https://{host}:{ETCD_PEER_PORT}",
          "client_url": f"https://{host}:{ETCD_CLIENT_PORT}"}
    data_dir = ctx.config.etcd.local.data_dir
    fresh = not ctx.connection.run(f"test -d {shlex.quote(data_dir + '/member')}",
                                   check=False).ok
    return {"etcd_nodes": {name: me}, "etcd_data_dir": data_dir,
            "etcd_extra_args": dict(ctx.config.etcd.local.extra_args),
            "etcd_cluster_token": f"{ctx.config.cluster_name}-etcd",
            "etcd_bootstrap_hosts": [name] if fresh else [],
            "etcd_initial_cluster_state": "new",
            "etcd_initial_cluster": f"{name}={me['peer_url']}"}


def run_etcd_local(ctx) -> None:
    """A one-member stacked etcd on this host (kubeadm's etcd phase 'local')."""
    if ctx.config.etcd.local is None:
        ctx.echo("[etcd] External etcd mode: Skipping the local etcd member")
        return
    ctx.echo("[etcd] Creating the local etcd member as a systemd unit")
    ctx.runner.play("etcd", ["etcd"], _etcd_vars(ctx))


def run_control_plane(ctx) -> None:
    ctx.echo('[control-plane] Writing systemd units for "kube-apiserver", '
             '"kube-controller-manager" and "kube-scheduler"')
    ctx.runner.play("control-plane", ["control-plane"],
                    node_vars.control_plane_vars(ctx.config, ctx.advertise_address))


def kubelet_vars(ctx) -> dict:
    return node_vars.node_vars(ctx.config, ctx.node_name, ctx.advertise_address)


def run_kubelet_start(ctx) -> None:
    ctx.echo('[kubelet-start] Writing kubelet configuration to "/var/lib/kubelet/config.yaml" '
             "and starting the kubelet")
    ctx.runner.play("kubelet", ["kubelet"], kubelet_vars(ctx))


def unit_report(conn, unit: str, lines: int = 10) -> str:
    """`<unit> is <state>; last log lines: ...` for a failure message."""
    state = conn.run(f"systemctl is-active {shlex.quote(unit)}", check=False).stdout.strip()
    log = conn.run(f"journalctl -u {shlex.quote(unit)} -n {lines} --no-pager -o cat",
                   check=False).stdout.strip()
    tail = " | ".join(ln.strip() for ln in log.splitlines()[-lines:] if ln.strip())
    return f"{unit} is {state or 'unknown'}" + (f"; last log lines: {tail}" if tail else "")


def readyz(url: str, ca_file: str, timeout: float = 3) -> tuple[bool, str]:
    """(ready, what was seen) for GET <url>/readyz, trusting only the cluster CA."""
    context = ssl.create_default_context(cafile=ca_file)
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=timeout, context=context) as resp:
            return resp.status == 200, f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}"
    except (OSError, ssl.SSLError) as exc:
        return False, str(getattr(exc, "reason", exc))


def run_wait_control_plane(ctx, clock=time.monotonic, sleep=time.sleep) -> None:
    url = f"https://{_host(ctx.advertise_address)}:{ctx.config.bind_port}"
    if ctx.dry_run:
        ctx.echo(f"[wait-control-plane] Would wait for {url}/readyz")
        return
    timeout = float(ctx.params.get("control_plane_timeout") or 240)
    ctx.echo(f"[wait-control-plane] Waiting for the API server at {url} to be ready "
             f"(up to {timeout:g}s)")
    deadline = clock() + timeout
    seen = ""
    while True:
        ok, seen = readyz(url, str(ctx.cert_dir / "ca.crt"))
        if ok:
            ctx.echo("[wait-control-plane] The API server is ready")
            return
        if clock() >= deadline:
            break
        sleep(1.0)
    reports = [unit_report(ctx.connection, u) for u in CONTROL_PLANE_UNITS]
    failing = next((r for r in reports if " is active" not in r), reports[0])
    raise UserError(f"the API server at {url} was not ready after {timeout:g}s ({seen}): "
                    f"{failing}", where="wait-control-plane",
                    hint="see `journalctl -u kube-apiserver`; fix, then run `bootstrap init` again")


def _host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


KUBELET_CLIENT_PEM = "/var/lib/kubelet/pki/kubelet-client-current.pem"


def run_kubelet_finalize(ctx) -> None:
    """Point kubelet.conf at the rotated client certificate once the kubelet has one."""
    kubeconf = ctx.kubeconfig_dir / "kubelet.conf"
    pem = Path(ctx.params.get("kubelet_client_pem") or KUBELET_CLIENT_PEM)
    if not kubeconf.exists() or not pem.exists():
        ctx.echo("[kubelet-finalize] No rotated kubelet client certificate yet; keeping kubelet.conf")
        return
    doc = yaml.safe_load(kubeconf.read_text())
    user = (doc.get("users") or [{}])[0].get("user") or {}
    if user.get("client-certificate") == str(pem) and user.get("client-key") == str(pem):
        return
    ctx.echo(f'[kubelet-finalize] Updating "{kubeconf}" to point to a rotatable kubelet client '
             "certificate and key")
    if ctx.dry_run:
        ctx.changed += 1
        return
    doc["users"][0]["user"] = {"client-certificate": str(pem), "client-key": str(pem)}
    tmp = kubeconf.with_name(f".{kubeconf.name}.tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(kubeconf)
    ctx.changed += 1
