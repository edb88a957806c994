"""``bootstrap cluster up``: converge every host of an inventory (kubespray's cluster.yml).

A workflow of phases declared once (``bootstrap.flows.workflow``), like
``init``: each phase names the roles its plays apply, so ``--tags`` selects
whole phases by name or just the tagged tasks inside their roles, and a tag
that matches nothing is refused. A second run over converged hosts changes
nothing and says so.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bootstrap.config.inventory import load_inventory
from bootstrap.config.kubespray_vars import EffectiveConfig, effective_config
from bootstrap.engine import Play, Recap, run_play
from bootstrap.errors import RemoteError, UserError
from bootstrap.flows import cluster_nodes, etcd_stage, node_vars
from bootstrap.flows.cluster_pki import artifacts_dir, ensure_cluster_pki
from bootstrap.flows.plan import etcd_hosts, etcd_nodes, pki_plan
from bootstrap.flows.scratch import scratch_copy
from bootstrap.flows.workflow import (
    Phase,
    Workflow,
    parse_skip,
    phase_list_text,
    run_tree,
    select_by_tags,
)
from bootstrap.remote.pool import close_all, connect_all, connect_reachable


@dataclass
class UpContext:
    inventory: Any
    config: Any
    connections: dict
    pki_dir: Path
    dry_run: bool = False
    diff: bool = False
    # The running phase's task filter (set by run_tree): None runs every task.
    task_tags: set[str] | None = None
    limit: set[str] | None = None
    cluster_vars: dict = field(default_factory=dict)
    extra_vars: dict = field(default_factory=dict)
    console: Any = None
    recap: Recap = field(default_factory=Recap)
    artifacts: Any = None  # cluster_nodes.Artifacts, made by the first node phase
    summary: str = ""
    # Hosts a dry run could not reach (name -> why); plays leave them out.
    unreachable: dict[str, str] = field(default_factory=dict)

    def hosts(self, names) -> list[str]:
        return [n for n in names if self.limit is None or n in self.limit]

    def play(self, name: str, hosts: list[str], roles: list[str], *, serial: int | None = None,
             vars: dict | None = None) -> Recap:
        """Run one play, add it to the run's recap; a failed play stops the workflow."""
        if not hosts:
            return Recap(dry_run=self.dry_run)
        play = Play(name=name, hosts=hosts, roles=roles, serial=serial,
                    vars={**self.cluster_vars, **(vars or {})}, tags=self.task_tags)
        recap = run_play(play, self.inventory, self.connections, extra_vars=self.extra_vars,
                         dry_run=self.dry_run, diff=self.diff, console=self.console)
        self.recap = self.recap.merge(recap)
        self.recap.raise_on_failure()
        return recap


def _all_hosts(ctx: UpContext) -> list[str]:
    return ctx.hosts(ctx.inventory.hosts)


def _kubernetes_hosts(ctx: UpContext) -> list[str]:
    """Control plane and nodes (kubespray's k8s_cluster); separate etcd hosts run no agents."""
    inv = ctx.inventory
    names = dict.fromkeys(h.name for h in [*inv.control_plane, *inv.workers])
    return ctx.hosts(names)


def run_prepare(ctx: UpContext) -> None:
    ctx.play("prepare hosts", _all_hosts(ctx), ["prepare"])


def run_pki(ctx: UpContext) -> None:
    hosts = _all_hosts(ctx)
    ctx.play("distribute certificates", hosts, ["pki"],
             vars={"pki_plan": pki_plan(ctx.inventory, ctx.pki_dir, hosts)})


def run_agents(ctx: UpContext) -> None:
    # Imported here: builds wheels only when this phase actually runs.
    from bootstrap.flows import wheelhouse

    hosts = _kubernetes_hosts(ctx)
    if not hosts:
        return
    if ctx.dry_run:
        agent_vars, built = wheelhouse.dry_run_agents_vars(Path(ctx.pki_dir).parent)
        if not built and ctx.console is not None:
            ctx.console.print("[bold]agents:[/] dry run: the wheelhouse is not built yet (a "
                              "real run builds it); the install counts as to do")
    else:
        agent_vars = wheelhouse.agents_vars(ctx.inventory, console=ctx.console)
    ctx.play("install agents", hosts, ["agents"], vars=agent_vars)


def run_etcd(ctx: UpContext) -> None:
    etcd_stage.run(ctx)


def up_phases() -> list[Phase]:
    return [
        Phase("prepare", "packages, users, directories, kernel modules, sysctls",
              run=run_prepare, roles=("prepare",)),
        Phase("pki", "certificates and keys from the artifacts dir", run=run_pki,
              roles=("pki",)),
        Phase("agents", "the agents' wheelhouse in /opt/bootstrap", run=run_agents,
              roles=("agents",)),
        Phase("etcd", "etcd members with mutual TLS; new members added one at a time",
              run=run_etcd, roles=("etcd", "etcd-backup")),
        Phase("containerd", "containerd, the image registry and the offline images",
              run=cluster_nodes.run_containerd, roles=("containerd", "registry")),
        Phase("loadbalancer", "haproxy on 127.0.0.1 on nodes that are not control plane "
              "(several control-plane hosts, no external balancer)",
              run=cluster_nodes.run_loadbalancer, roles=("haproxy",)),
        Phase("control-plane", "`bootstrap init` on the first control-plane host, `bootstrap "
              "join --control-plane` on the others one at a time",
              run=cluster_nodes.run_control_plane, roles=("kubeadm",)),
        Phase("nodes", "`bootstrap join` on the workers, in parallel",
              run=cluster_nodes.run_workers, roles=("kubeadm",)),
        Phase("kube-proxy", "kube-proxy units on every node", run=cluster_nodes.run_node_agents,
              roles=("kube-proxy",)),
        Phase("dns", "cluster DNS units on the control-plane hosts, behind the kube-dns "
              "Service", run=cluster_nodes.run_dns, roles=("dns",)),
        Phase("wait", "every node Ready; print the summary", run=cluster_nodes.run_wait),
    ]


def up_workflow() -> Workflow:
    # The click command lives in cli/cluster_cmd.py (it opens connections around
    # the run); the workflow gives it the phases, their help and tag selection.
    return Workflow(name="cluster up", short="Converge the hosts of an inventory into a cluster.",
                    phases=up_phases(), flags=[], make_context=lambda params: params)


def phases_help() -> str:
    return phase_list_text(up_workflow())


def _split_list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _split(value: str | None) -> set[str] | None:
    if not value:
        return None
    return {v.strip() for v in value.split(",") if v.strip()}


@dataclass
class UpResult:
    recap: Recap
    pki_created: int
    ran: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    summary: str = ""
    phase_times: dict[str, float] = field(default_factory=dict)
    state_dir: Path | None = None  # where the PKI and kubeconfigs are kept
    scratch: bool = False  # a dry run: generated into a temporary copy, since removed
    unreachable: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> int:
        return self.recap.changed


def cluster_up(inventory_path: str, *, config_path: str | None = None, tags: str | None = None,
               limit: str | None = None, dry_run: bool = False, diff: bool = False,
               console=None, connect: Callable | None = None, skip_phases: str | None = None,
               wait_timeout: float | None = None) -> UpResult:
    inventory = load_inventory(inventory_path)
    # kubespray's variables are the configuration; the --config file's fields win.
    effective = effective_config(inventory, config_path)
    config = effective.config
    workflow = up_workflow()
    selection = select_by_tags(workflow, _split(tags))  # a bad tag fails before any host
    for path in parse_skip(workflow, _split_list(skip_phases)):
        selection.pop(path, None)
    limit_set = _split(limit)
    if limit_set:
        unknown = sorted(limit_set - set(inventory.hosts))
        if unknown:
            raise UserError(f"--limit names unknown host(s): {', '.join(unknown)}",
                            where=str(inventory.path))
    if config.etcd.local is not None:
        etcd_nodes(inventory)  # a wrong member count fails here, before any host is touched
    state = artifacts_dir(inventory)
    with contextlib.ExitStack() as stack:
        # A dry run writes nothing beside the inventory: it reads the existing state
        # through a temporary copy and generates what is missing there.
        work = stack.enter_context(scratch_copy(state)) if dry_run else state
        return _run(inventory, config, workflow, selection, limit_set, work, dry_run=dry_run,
                    diff=diff, console=console, connect=connect, wait_timeout=wait_timeout,
                    result=UpResult(recap=Recap(dry_run=dry_run), pki_created=0,
                                    state_dir=state, scratch=dry_run),
                    effective=effective)


def _run(inventory, config, workflow, selection, limit_set, state: Path, *, dry_run, diff,
         console, connect, wait_timeout, result: UpResult,
         effective: EffectiveConfig) -> UpResult:
    # Certificates name the API endpoint (load balancer, 127.0.0.1 for the localhost one);
    # etcd stays as configured (bootstrap's own, even when the hosts see it as external).
    endpoint = node_vars.api_endpoint(inventory, config.bind_port)
    pki_config = dataclasses.replace(node_vars.host_config(config, inventory, endpoint),
                                     etcd=config.etcd)
    pki_root, created = ensure_cluster_pki(inventory, pki_config, state)
    result.pki_created = created
    hosts = [h for name, h in inventory.hosts.items() if not limit_set or name in limit_set]
    # etcd membership decisions read every member, even outside --limit.
    needed = {h.name for h in hosts}
    if "etcd" in selection:
        needed |= {h.name for h in etcd_hosts(inventory)}
    conns, unreachable = _connect(connect, [h for h in inventory.hosts.values()
                                            if h.name in needed], dry_run=dry_run)
    try:
        if unreachable:
            if not dry_run:
                raise next(iter(unreachable.values()))
            result.unreachable = {n: e.line() for n, e in unreachable.items()}
            if console is not None:
                for line in result.unreachable.values():
                    # One line each (soft_wrap): scripts grep for the host.
                    console.print(f"[red]unreachable:[/] {line}", markup=True, highlight=False,
                                  soft_wrap=True)
                console.print("dry run: continuing with the reachable hosts")
            # The plays leave unreachable hosts out, as --limit would.
            limit_set = {h.name for h in hosts} - set(unreachable)
        ctx = UpContext(inventory=inventory, config=config, connections=conns, pki_dir=pki_root,
                        dry_run=dry_run, diff=diff, limit=limit_set,
                        cluster_vars=cluster_vars(config, kube_config_dir=effective.kube_config_dir),
                        console=console,
                        recap=result.recap, unreachable=result.unreachable,
                        extra_vars={} if wait_timeout is None else {"wait_timeout": wait_timeout})
        times: dict[str, float] = {}
        try:
            result.ran = run_tree(workflow.phases, ctx, selection=selection, times=times)
        finally:
            result.recap = ctx.recap
        result.phase_times = times
        result.warnings = [*getattr(inventory, "warnings", []), *effective.warnings]
        result.summary = ctx.summary
        return result
    finally:
        close_all(conns)


def _connect(connect: Callable | None, hosts: list, *, dry_run: bool
             ) -> tuple[dict, dict[str, RemoteError]]:
    """(connections, unreachable host -> error). A given ``connect`` may map a host
    to a RemoteError instead of a connection; unset, a real run fails on the first
    unreachable host and a dry run carries on without it (known_hosts untouched)."""
    if connect is None:
        if dry_run:
            return connect_reachable(hosts, remember_host_keys=False)
        return connect_all(hosts), {}
    got = connect(hosts)
    return ({n: c for n, c in got.items() if not isinstance(c, RemoteError)},
            {n: c for n, c in got.items() if isinstance(c, RemoteError)})


def cluster_vars(config, *, kube_config_dir: str = "/etc/kubernetes") -> dict:
    """Vars every role sees, from the cluster config (above inventory vars)."""
    # kube_config_dir (kubespray's): the prepare role links it to /etc/kubernetes,
    # where kubeadm's layout (and so bootstrap) keeps kubeconfigs and units' files.
    # kube_cert_dir (kubespray's, e.g. /etc/kubernetes/ssl): the pki role links it to
    # kubeadm's /etc/kubernetes/pki, where bootstrap keeps the files.
    out = {"cluster_name": config.cluster_name, "kube_cert_dir": config.certificates_dir,
           "kube_config_dir": kube_config_dir}
    if config.etcd.local is not None:
        out["etcd_data_dir"] = config.etcd.local.data_dir
        out["etcd_extra_args"] = dict(config.etcd.local.extra_args)
    return out
