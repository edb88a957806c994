"""``bootstrap upgrade plan|apply|node``: kubeadm's host-local upgrades, as phase workflows.

``upgrade apply VERSION`` runs on the first control-plane host: preflight
(version skew, etcd health, the target install present under
/opt/bootstrap/VERSION or installed from ``--wheelhouse DIR``), a backup
(etcd snapshot and a copy of /etc/kubernetes and the units into
/etc/kubernetes/tmp/bootstrap-backup-<date>), then the control-plane units
moved to the new install ONE BY ONE, each waiting for its health endpoint,
then this host's node units (kubelet, kube-proxy, DNS), then kubeadm-config's
recorded version, then /opt/bootstrap/current. ``upgrade node`` does the
same on any other host (control-plane units first when it has them),
refusing a target newer than the control plane. A unit that does not become
healthy within ``--health-timeout`` is moved back with every unit already
moved, and the command fails with one line. Progress lives in
/etc/kubernetes/tmp/bootstrap-upgrade.json: a second run has nothing to do
and says so; an interrupted run resumes.

CONTRACT (kept current in /work/helpers/upgrade-contract.md for
``bootstrap cluster upgrade``), per host:

1. install beside the running version: roles/agents with the vars of
   ``bootstrap.flows.wheelhouse_version.version_agents_vars(VERSION)``
   (``agents_switch_current: false``: the running units and
   /opt/bootstrap/current are left alone);
2. first control-plane host:
   ``/opt/bootstrap/VERSION/bin/bootstrap upgrade apply VERSION --yes``;
   every other host (control plane first, one at a time, then workers):
   ``/opt/bootstrap/VERSION/bin/bootstrap upgrade node --yes`` (the target is
   the toolkit's own version; ``--to VERSION`` says it explicitly);
3. exit 0 and a last line ``[upgrade apply] N changed`` / ``[upgrade node] N
   changed`` (``0 changed (converged)`` when there was nothing to do) on
   success; non-zero after a rollback (that host is back on its previous
   install, healthy), with ``error: upgrade to VERSION failed: ...; rolled
   back ...`` as the last line on stderr; non-zero with one ``error:`` line
   when preflight refuses (nothing changed).
Fault injection for tests: ``BOOTSTRAP_UPGRADE_FAIL_HEALTH=kube-apiserver``
(comma-separated unit names) in the command's environment makes those units
fail their health check on the new install, so the rollback runs;
``--health-timeout SECONDS`` bounds each wait (default 180).
"""

from __future__ import annotations

import dataclasses
import hashlib
import shlex
import socket
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from bootstrap import __version__
from bootstrap.errors import UserError
from bootstrap.flows import apiobjects, versions
from bootstrap.flows.upgrade_host import (
    BACKUP_ROOT,
    BY_UNIT,
    FAIL_HEALTH_ENV,
    UNIT_DIR,
    Component,
    Host,
    UpgradeState,
    describe_failure,
    now_stamp,
    unit_flags,
)
from bootstrap.flows.workflow import Flag, Phase, Workflow

KUBECONFIG_DIR = Path("/etc/kubernetes")
CONFIG_MAPS = ("", "v1", "configmaps")
NODES = ("", "v1", "nodes")
DEFAULT_HEALTH_TIMEOUT = 180.0


class UpgradeFailed(UserError):
    """A component did not become healthy; what was moved is back on its old install."""

    exit_code = 1


class UpgradeContext:
    def __init__(self, params: dict[str, Any], echo: Callable[[str], None], command: str, *,
                 connection: Any = None, api: Any = None, host: Host | None = None,
                 confirm: Callable[[str], bool] | None = None, toolkit: str = __version__):
        self.params = params
        self.toolkit = toolkit  # the version of the install this command runs from
        self.echo = echo
        self.command = command
        self.label = f"upgrade {command}"
        self.dry_run = bool(params.get("dry_run"))
        self.force = bool(params.get("force"))
        self.changed = 0
        self._connection = connection
        self._api = api
        self._host = host
        self._confirm = confirm
        given = params.get("health_timeout")
        self.health_timeout = float(DEFAULT_HEALTH_TIMEOUT if given is None else given)
        if self.health_timeout <= 0:
            raise UserError("--health-timeout must be more than 0 seconds")
        _ = self.target  # a bad version is one line before anything is read

    @cached_property
    def target(self) -> str:
        want = self.params.get("to") or (None if self.command == "apply" else self.toolkit)
        if not want:
            raise UserError("upgrade apply needs the version to upgrade to",
                            hint="e.g. bootstrap upgrade apply 0.2.0")
        v = versions.parse(want)
        if v is None or "-bootstrap." in want:
            raise UserError(f"{want!r} is not a version (MAJOR.MINOR.PATCH)",
                            hint="e.g. bootstrap upgrade apply 0.2.0")
        return str(v)

    @cached_property
    def connection(self):
        from bootstrap.remote.local import LocalConnection

        return self._connection or LocalConnection(socket.gethostname())

    @cached_property
    def host(self) -> Host:
        return self._host or Host(self.connection)

    @cached_property
    def runner(self):
        from bootstrap.flows.local_play import LocalRunner

        return LocalRunner(socket.gethostname().lower(), "127.0.0.1", ["kube_node"],
                           dry_run=self.dry_run, diff=bool(self.params.get("diff")),
                           connection=self._connection)

    @cached_property
    def api(self):
        from bootstrap.flows.kubeapi import KubeAPI

        if self._api is not None:
            return self._api
        for name in ("admin.conf", "kubelet.conf"):
            path = KUBECONFIG_DIR / name
            if path.exists():
                return KubeAPI.from_kubeconfig(str(path))
        raise UserError("no kubeconfig to reach the API server with",
                        where=str(KUBECONFIG_DIR), hint="is this host part of a cluster?")

    @property
    def control_plane(self) -> bool:
        return bool(self.host.units("control-plane"))

    @cached_property
    def state(self) -> UpgradeState:
        """The upgrade in progress to this target, or a new one (written when it starts)."""
        old = self.host.read_state()
        if old is not None and old.status == "in-progress":
            if old.target == self.target:
                return old
            if not self.force:
                again = (f"bootstrap upgrade apply {old.target}" if old.command == "apply"
                         else f"bootstrap upgrade node --to {old.target}")
                raise UserError(f"an upgrade to {old.target} was interrupted on this host",
                                where=self.label,
                                hint=f"finish it with `{again}`, or pass --force to start over")
        previous = {c.unit: self.host.unit_install(c.unit) or "" for c in self.host.units()}
        return UpgradeState(target=self.target, command=self.command, previous=previous,
                            started=now_stamp())

    def save(self) -> None:
        if not self.dry_run:
            self.host.write_state(self.state)

    @cached_property
    def converged(self) -> bool:
        """Every unit, the recorded version and `current` already at the target."""
        h, t = self.host, self.target
        units = [c.unit for c in h.units()]
        if not units:
            return False
        if any(h.unit_install(u) != t or h.running_install(u) != t for u in units):
            return False
        if h.current_link() != t:
            return False
        return self.command != "apply" or recorded_version(self) == t


# --- what the cluster says -----------------------------------------------------

def kubeadm_config_cm(ctx: UpgradeContext) -> dict | None:
    return ctx.api.get(CONFIG_MAPS, "kubeadm-config", apiobjects.KUBE_SYSTEM)


def recorded_version(ctx: UpgradeContext) -> str:
    """kubeadm-config's kubernetesVersion, else what this host's API server unit runs."""
    cm = kubeadm_config_cm(ctx)
    text = ((cm or {}).get("data") or {}).get("ClusterConfiguration") or ""
    recorded = (yaml.safe_load(text) or {}).get("kubernetesVersion") if text else ""
    v = versions.parse(recorded or "")
    if v is not None:
        return str(v)
    return ctx.host.unit_install("kube-apiserver") or ""


def apiserver_version(ctx: UpgradeContext) -> str:
    """gitVersion of the API server this host's kubeconfig reaches ("" if unknown)."""
    try:
        info = ctx.api._call(lambda c: c.request("GET", "/version"))
    except UserError:
        return ""
    return (info or {}).get("gitVersion", "") if isinstance(info, dict) else ""


def kubelet_versions(ctx: UpgradeContext) -> dict[str, str]:
    return {n["metadata"]["name"]: ((n.get("status") or {}).get("nodeInfo") or {})
            .get("kubeletVersion", "") for n in ctx.api.list(NODES)}


def etcd_health(ctx: UpgradeContext) -> tuple[bool, str]:
    """etcdctl endpoint health with the API server's own etcd client credentials."""
    f = unit_flags(ctx.host.unit_text("kube-apiserver") or "")
    if not f.get("etcd-servers"):
        return False, "the kube-apiserver unit names no --etcd-servers"
    r = ctx.connection.run(_etcdctl(f, f["etcd-servers"], "--write-out=json endpoint health"),
                           check=False, timeout=60)
    import json

    try:
        items = json.loads(r.stdout) if r.stdout.strip().startswith("[") else []
    except ValueError:
        items = []
    if not items:
        return False, (r.stderr.strip().splitlines() or ["no answer"])[-1]
    bad = [i.get("endpoint", "?") for i in items if not i.get("health")]
    if bad:
        return False, f"unhealthy: {', '.join(bad)}"
    return True, f"{len(items)} endpoint(s) healthy"


def _etcdctl(f: dict[str, str], endpoints: str, args: str) -> str:
    return ("ETCDCTL_API=3 etcdctl"
            f" --endpoints={shlex.quote(endpoints)}"
            f" --cacert={shlex.quote(f.get('etcd-cafile', ''))}"
            f" --cert={shlex.quote(f.get('etcd-certfile', ''))}"
            f" --key={shlex.quote(f.get('etcd-keyfile', ''))}"
            f" --dial-timeout=3s --command-timeout=60s {args}")


# --- phases -------------------------------------------------------------------

def _refuse(problems: list[str], skippable: bool, where: str) -> None:
    more = f" (and {len(problems) - 1} more: {'; '.join(problems[1:])})" if len(problems) > 1 \
        else ""
    raise UserError(problems[0] + more, where=where,
                    hint="pass --force to upgrade anyway" if skippable else None)


def _check(ctx: UpgradeContext, verdict: versions.Verdict) -> None:
    if verdict.mandatory:
        _refuse(verdict.mandatory, False, f"{ctx.label} preflight")
    if verdict.skippable and not ctx.force:
        _refuse(verdict.skippable, True, f"{ctx.label} preflight")
    for p in verdict.skippable:
        ctx.echo(f"\t[WARNING {ctx.label}]: {p} (--force)")


def _require_install(ctx: UpgradeContext) -> None:
    if ctx.host.installed(ctx.target):
        return
    if ctx.params.get("wheelhouse"):
        install_from_wheelhouse(ctx, Path(ctx.params["wheelhouse"]))
        return
    if ctx.dry_run:
        ctx.echo(f"[dryrun] {versions.install_dir(ctx.target)} is not installed; a real run "
                 "refuses")
        return
    raise UserError(f"{ctx.target} is not installed on this host",
                    where=versions.install_dir(ctx.target),
                    hint="install it beside the running one (roles/agents with "
                         "agents_switch_current: false) or pass --wheelhouse DIR")


def install_from_wheelhouse(ctx: UpgradeContext, path: Path) -> None:
    if not any(path.glob(f"bootstrap-{ctx.target}-*.whl")):
        raise UserError(f"no bootstrap-{ctx.target} wheel in the wheelhouse",
                        where=str(path))
    manifest = path / "SHA256SUMS"
    if not manifest.exists():
        raise UserError("the wheelhouse has no SHA256SUMS", where=str(path))
    ctx.echo(f"[preflight] Installing {ctx.target} from {path} into "
             f"{versions.install_dir(ctx.target)}")
    from bootstrap.flows import wheelhouse

    wh = wheelhouse.Wheelhouse(path, ctx.target, hashlib.sha256(manifest.read_bytes()).hexdigest())
    ctx.runner.play("agents", ["agents"],
                    {**wheelhouse._role_vars(wh), "agents_switch_current": False})


def _confirm(ctx: UpgradeContext, what: str) -> None:
    if ctx.params.get("yes") or ctx.dry_run or ctx._confirm is None:
        return
    if not ctx._confirm(f"[{ctx.label}] Are you sure you want to proceed with {what}?"):
        raise UserError("upgrade aborted", where=ctx.label)


def run_preflight_apply(ctx: UpgradeContext) -> None:
    ctx.echo(f"[preflight] Upgrading this control-plane host to {ctx.target}")
    if not ctx.control_plane:
        raise UserError("this host runs no control-plane units", where=ctx.label,
                        hint="run `bootstrap upgrade node` on it")
    if ctx.converged:
        ctx.echo(f"[upgrade] The cluster is already at {ctx.target}: nothing to do")
        return
    recorded = recorded_version(ctx)
    ctx.echo(f"[upgrade/versions] Cluster version: {recorded or 'unknown'}; "
             f"target: {ctx.target}; this toolkit: {ctx.toolkit}")
    _check(ctx, versions.check_apply(recorded or ctx.target, ctx.target, ctx.toolkit,
                                     kubelet_versions(ctx)))
    ok, seen = etcd_health(ctx)
    if not ok and not ctx.force:
        raise UserError(f"etcd is not healthy: {seen}", where=f"{ctx.label} preflight",
                        hint="see `bootstrap etcd status`; --force upgrades anyway")
    ctx.echo(f"[preflight] etcd: {seen}")
    _require_install(ctx)
    _confirm(ctx, f"the upgrade to {ctx.target}")


def run_preflight_node(ctx: UpgradeContext) -> None:
    ctx.echo(f"[preflight] Upgrading this node to {ctx.target}")
    if not ctx.host.units():
        raise UserError("this host runs none of our agent units", where=ctx.label,
                        hint="is it part of a cluster made by bootstrap?")
    if ctx.converged:
        ctx.echo(f"[upgrade] This node is already at {ctx.target}: nothing to do")
        return
    recorded = recorded_version(ctx)
    api = "" if ctx.control_plane else apiserver_version(ctx)
    installs = [v for v in (ctx.host.unit_install(c.unit) for c in ctx.host.units()) if v]
    oldest = min(installs, key=lambda s: versions.parse(s) or versions.Version(0, 0, 0),
                 default=None)
    ctx.echo(f"[upgrade/versions] Control plane: {recorded or 'unknown'}; this node: "
             f"{oldest or 'unknown'}; target: {ctx.target}")
    _check(ctx, versions.check_node(ctx.target, recorded or "unknown", api or None, oldest))
    _require_install(ctx)
    _confirm(ctx, f"the upgrade of this node to {ctx.target}")


def run_backup(ctx: UpgradeContext) -> None:
    if ctx.converged:
        return
    st = ctx.state
    if st.backup and ctx.connection.run(f"test -d {shlex.quote(st.backup)}", check=False).ok:
        ctx.echo(f"[upgrade/backup] Using the backup of this upgrade in {st.backup}")
        return
    dest = f"{BACKUP_ROOT}/bootstrap-backup-{now_stamp()}"
    if ctx.dry_run:
        ctx.echo(f"[dryrun] Would save an etcd snapshot and copy {KUBECONFIG_DIR} into {dest}")
        ctx.changed += 1
        return
    q = shlex.quote(dest)
    units = " ".join(f"{UNIT_DIR}/{c.unit}.service" for c in ctx.host.units())
    ctx.connection.run(
        f"mkdir -p {q}/kubernetes {q}/units && chmod 700 {q} && "
        f"tar -C {KUBECONFIG_DIR} --exclude=./tmp -cf - . | tar -C {q}/kubernetes -xf - && "
        f"cp -a {units} {q}/units/", timeout=120)
    f = unit_flags(ctx.host.unit_text("kube-apiserver") or "")
    servers = [s for s in f.get("etcd-servers", "").split(",") if s]
    if servers:
        local = [s for s in servers if "127.0.0.1" in s or "localhost" in s]
        r = ctx.connection.run(_etcdctl(f, (local or servers)[0],
                                        f"snapshot save {q}/etcd-snapshot.db"),
                               check=False, timeout=300)
        if not r.ok:
            raise UserError(f"etcd snapshot failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}",
                            where=f"{ctx.label} backup", hint="is etcd healthy?")
    ctx.echo(f"[upgrade/backup] Saved an etcd snapshot and a copy of {KUBECONFIG_DIR} in {dest}")
    st.backup = dest
    ctx.changed += 1
    ctx.save()


def _switch(ctx: UpgradeContext, comp: Component, version: str) -> None:
    h = ctx.host
    text = h.unit_text(comp.unit, fresh=True) or ""
    at = versions.unit_install(text, h.current_link())
    running = h.running_install(comp.unit)
    ctx.runner.play(f"{comp.unit} on {version}", ["agent-switch"], {
        "switch_unit": comp.unit, "switch_unit_text": versions.switch_unit(text, version),
        "switch_restart": at == version and running != version, "switch_link_target": ""})
    h.forget(comp.unit)


def rollback(ctx: UpgradeContext, failed: Component, reason: str) -> None:
    st, h = ctx.state, ctx.host
    back = [failed.unit] + [u for u in reversed(st.switched) if u != failed.unit]
    done = []
    for unit in back:
        prev = st.previous.get(unit)
        if not prev or prev == ctx.target:
            continue
        comp = BY_UNIT[unit]
        ctx.echo(f"[upgrade/rollback] Moving {unit} back to {prev}")
        _switch(ctx, comp, prev)
        ok, seen = h.wait_healthy(comp, prev, ctx.health_timeout)
        done.append(f"{unit} to {prev}" + ("" if ok else f" (not healthy either: {seen})"))
    st.switched = []
    st.status = "rolled-back"
    ctx.save()
    raise UpgradeFailed(f"upgrade to {ctx.target} failed: {reason}; rolled back "
                        f"{', '.join(done) or 'nothing'}", where=ctx.label,
                        hint=f"see `journalctl -u {failed.unit}`; the backup is in "
                             f"{st.backup or 'none'}")


def _move_units(ctx: UpgradeContext, scope: str) -> None:
    if ctx.converged:
        return
    h, st, t = ctx.host, ctx.state, ctx.target
    for comp in h.units(scope):
        unit = comp.unit
        st.previous.setdefault(unit, h.unit_install(unit) or "")
        if h.unit_install(unit) == t and h.running_install(unit) == t:
            if unit not in st.switched:
                st.switched.append(unit)
            ctx.echo(f"[upgrade/{scope}] {unit} already runs {t}")
            continue
        if ctx.dry_run:
            ctx.echo(f"[dryrun] Would move {unit} from {h.unit_install(unit)} to "
                     f"{versions.agents_bin(t)} and restart it")
            ctx.changed += 1
            continue
        ctx.save()  # the state names the previous install before anything moves
        ctx.echo(f"[upgrade/{scope}] Moving {unit} from {st.previous[unit] or '?'} to {t} and "
                 f"restarting it; waiting up to {ctx.health_timeout:g}s for it to be healthy")
        _switch(ctx, comp, t)
        ctx.changed += 1
        ok, seen = h.wait_healthy(comp, t, ctx.health_timeout, inject=True)
        if not ok:
            rollback(ctx, comp, describe_failure(unit, ctx.health_timeout, seen))
        st.switched.append(unit)
        ctx.save()
        ctx.echo(f"[upgrade/{scope}] {unit} is healthy on {t}")


def run_control_plane(ctx: UpgradeContext) -> None:
    if ctx.command == "node" and not ctx.control_plane:
        ctx.echo("[upgrade/control-plane] No control-plane units on this host")
        return
    _move_units(ctx, "control-plane")


def run_node_units(ctx: UpgradeContext) -> None:
    _move_units(ctx, "node")


def run_upload_config(ctx: UpgradeContext) -> None:
    """kubeadm-config records the version the control plane now runs."""
    if ctx.converged:
        return
    from bootstrap.config.cluster import parse_cluster_config

    cm = kubeadm_config_cm(ctx)
    if cm is None:
        raise UserError("the cluster has no kubeadm-config ConfigMap", where=ctx.label)
    cfg = parse_cluster_config(cm["data"]["ClusterConfiguration"], "kubeadm-config")
    if versions.parse(cfg.kubernetes_version or "") == versions.parse(ctx.target):
        return
    obj = apiobjects.kubeadm_config(dataclasses.replace(cfg), version=ctx.target)
    outcome = ctx.api.apply(obj, dry_run=ctx.dry_run)
    if outcome != "unchanged":
        ctx.changed += 1
        ctx.echo(f'[upload-config] Recorded version {ctx.target} in ConfigMap "kubeadm-config"')


def run_finalize(ctx: UpgradeContext) -> None:
    if ctx.converged:
        return
    t = ctx.target
    if ctx.host.current_link() != t:
        if ctx.dry_run:
            ctx.echo(f"[dryrun] Would point /opt/bootstrap/current at {t}")
            ctx.changed += 1
        else:
            ctx.runner.play("current install", ["agent-switch"], {
                "switch_unit": "", "switch_unit_text": "", "switch_restart": False,
                "switch_link_target": versions.install_dir(t)})
            ctx.echo(f"[upgrade] /opt/bootstrap/current now points at {t}")
    st = ctx.state
    st.status = "done"
    ctx.save()
    ctx.echo(f"[upgrade] SUCCESS! This host runs {t}" +
             (f" (previous installs stay beside it: {', '.join(sorted(set(v for v in st.previous.values() if v and v != t)))})"
              if any(v and v != t for v in st.previous.values()) else ""))


def changed_count(ctx: UpgradeContext) -> int:
    runner = ctx.__dict__.get("runner")
    return ctx.changed + (runner.recap.changed if runner is not None else 0)


def finish(ctx: UpgradeContext) -> None:
    n = changed_count(ctx)
    verb = "would change" if ctx.dry_run else "changed"
    ctx.echo(f"[{ctx.label}] {n} {verb}" + ("" if n or ctx.dry_run else " (converged)"))


# --- the workflows ------------------------------------------------------------

_HELP_FAULT = (f"Tests: {FAIL_HEALTH_ENV}=kube-apiserver[,UNIT...] in the environment makes "
               "those units fail their health check on the new install, so the rollback runs.")

COMMON_FLAGS = [
    Flag("yes", "Perform the upgrade and do not prompt for confirmation (non-interactive).",
         is_flag=True),
    Flag("force", "Upgrade although some version-skew requirements are not met (a minor "
         "version skipped, an older API server, an unhealthy etcd).", is_flag=True),
    Flag("dry-run", "Do not change any state, just output what actions would be performed.",
         is_flag=True),
    Flag("diff", "Show the differences of the unit files written.", is_flag=True),
    Flag("health-timeout", "Seconds each component may take to become healthy on the new "
         "install before it (and what was already moved) is rolled back. " + _HELP_FAULT,
         default=DEFAULT_HEALTH_TIMEOUT, type=float, metavar="SECONDS"),
    Flag("wheelhouse", "Install the target from this wheelhouse directory first when "
         "/opt/bootstrap/VERSION is missing.", metavar="DIR"),
]


def apply_workflow(echo: Callable[[str], None], **kw: Any) -> Workflow:
    flags = [Flag("to", "The version to upgrade to (also the first argument).",
                  metavar="VERSION"), *COMMON_FLAGS]
    return Workflow(
        name="apply",
        short="Upgrade the control plane of this first control-plane host to VERSION.",
        phases=[
            Phase("preflight", "Version skew, etcd health and the target install",
                  run=run_preflight_apply),
            Phase("backup", "etcd snapshot and a copy of /etc/kubernetes in "
                  "/etc/kubernetes/tmp/bootstrap-backup-<date>", run=run_backup),
            Phase("control-plane", "Move kube-apiserver, kube-controller-manager and "
                  "kube-scheduler to the new install one by one, each waiting for health",
                  run=run_control_plane),
            Phase("node", "Move this host's kubelet, kube-proxy and DNS units",
                  run=run_node_units),
            Phase("upload-config", "Record the new version in kubeadm-config",
                  run=run_upload_config),
            Phase("finalize", "Point /opt/bootstrap/current at the new install",
                  run=run_finalize),
        ],
        flags=flags,
        make_context=lambda params: UpgradeContext(params, echo, "apply", **kw),
        finish=finish,
    )


def node_workflow(echo: Callable[[str], None], **kw: Any) -> Workflow:
    flags = [Flag("to", "The version to upgrade to (default: this toolkit's own, "
                  f"{__version__}).", metavar="VERSION"), *COMMON_FLAGS]
    return Workflow(
        name="node",
        short="Upgrade this node (any host but the first control-plane host) after "
              "`upgrade apply`.",
        phases=[
            Phase("preflight", "The control plane is at the target; the target install",
                  run=run_preflight_node),
            Phase("control-plane", "A control-plane host: its control-plane units first, "
                  "one by one", run=run_control_plane),
            Phase("kubelet-and-agents", "The kubelet (running containers stay), kube-proxy "
                  "and DNS units", run=run_node_units),
            Phase("finalize", "Point /opt/bootstrap/current at the new install",
                  run=run_finalize),
        ],
        flags=flags,
        make_context=lambda params: UpgradeContext(params, echo, "node", **kw),
        finish=finish,
    )
