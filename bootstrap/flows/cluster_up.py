"""``bootstrap cluster up``: converge every host of an inventory (kubespray's cluster.yml).

The stages are data (``STAGES``): each names its tag, the hosts it runs on and
how it runs (usually one play of roles; etcd needs membership logic around its
plays). Later issues append the control plane and the nodes to the same list.
A second run over converged hosts changes nothing and says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bootstrap.config.cluster import load_cluster_config
from bootstrap.config.inventory import load_inventory
from bootstrap.engine import Play, Recap, run_play
from bootstrap.errors import UserError
from bootstrap.flows import etcd_stage
from bootstrap.flows.cluster_pki import ensure_cluster_pki
from bootstrap.flows.plan import etcd_hosts, etcd_nodes, pki_plan
from bootstrap.remote.pool import close_all, connect_all


@dataclass
class UpContext:
    inventory: object
    config: object
    connections: dict
    pki_dir: Path
    dry_run: bool = False
    diff: bool = False
    tags: set[str] | None = None
    limit: set[str] | None = None
    cluster_vars: dict = field(default_factory=dict)
    extra_vars: dict = field(default_factory=dict)
    console: object = None

    def hosts(self, names) -> list[str]:
        names = list(names)
        return [n for n in names if self.limit is None or n in self.limit]

    def play(self, name: str, hosts: list[str], roles: list[str], *, serial: int | None = None,
             vars: dict | None = None) -> Recap:
        if not hosts:
            return Recap(dry_run=self.dry_run)
        play = Play(name=name, hosts=hosts, roles=roles, serial=serial,
                    vars={**self.cluster_vars, **(vars or {})}, tags=self.tags)
        return run_play(play, self.inventory, self.connections, extra_vars=self.extra_vars,
                        dry_run=self.dry_run, diff=self.diff, console=self.console)


@dataclass(frozen=True)
class Stage:
    tag: str
    help: str
    run: Callable[[UpContext], Recap]


def _all_hosts(ctx: UpContext) -> list[str]:
    return ctx.hosts(ctx.inventory.hosts)


def _kubernetes_hosts(ctx: UpContext) -> list[str]:
    """Control plane and nodes (kubespray's k8s_cluster); separate etcd hosts run no agents."""
    inv = ctx.inventory
    names = dict.fromkeys(h.name for h in [*inv.control_plane, *inv.workers])
    return ctx.hosts(names)


def run_prepare(ctx: UpContext) -> Recap:
    return ctx.play("prepare hosts", _all_hosts(ctx), ["prepare"])


def run_pki(ctx: UpContext) -> Recap:
    hosts = _all_hosts(ctx)
    return ctx.play("distribute certificates", hosts, ["pki"],
                    vars={"pki_plan": pki_plan(ctx.inventory, ctx.pki_dir, hosts)})


def run_agents(ctx: UpContext) -> Recap:
    # Imported here: the wheelhouse flow belongs to the engine area and builds
    # wheels only when this stage actually runs.
    from bootstrap.flows import wheelhouse

    agent_vars = wheelhouse.agents_vars(ctx.inventory, console=ctx.console)
    return ctx.play("install agents", _kubernetes_hosts(ctx), ["agents"], vars=agent_vars)


STAGES: list[Stage] = [
    Stage("prepare", "packages, users, directories, sysctls", run_prepare),
    Stage("pki", "certificates and keys from the artifacts dir", run_pki),
    Stage("agents", "the agents' wheelhouse in /opt/bootstrap", run_agents),
    Stage("etcd", "etcd members with mutual TLS", etcd_stage.run),
]


def _split(value: str | None) -> set[str] | None:
    if not value:
        return None
    return {v.strip() for v in value.split(",") if v.strip()}


def selected_stages(tags: set[str] | None) -> list[Stage]:
    """Stages whose tag is asked for; when no stage matches, the tags name tasks
    inside roles, so every stage runs and the engine filters its tasks."""
    if not tags:
        return list(STAGES)
    return [s for s in STAGES if s.tag in tags] or list(STAGES)


@dataclass
class UpResult:
    recap: Recap
    pki_created: int
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return self.recap.changed


def cluster_up(inventory_path: str, *, config_path: str | None = None, tags: str | None = None,
               limit: str | None = None, dry_run: bool = False, diff: bool = False,
               console=None, connect: Callable | None = None) -> UpResult:
    inventory = load_inventory(inventory_path)
    config = load_cluster_config(config_path)
    limit_set = _split(limit)
    if limit_set:
        unknown = sorted(limit_set - set(inventory.hosts))
        if unknown:
            raise UserError(f"--limit names unknown host(s): {', '.join(unknown)}",
                            where=str(inventory.path))
    tag_set = _split(tags)
    if config.etcd.local is not None:
        etcd_nodes(inventory)  # a wrong member count fails here, before any host is touched
    pki_root, created = ensure_cluster_pki(inventory, config)
    hosts = [h for name, h in inventory.hosts.items() if not limit_set or name in limit_set]
    # etcd membership decisions read every member, even outside --limit.
    needed = {h.name for h in hosts}
    if any(s.tag == "etcd" for s in selected_stages(tag_set)):
        needed |= {h.name for h in etcd_hosts(inventory)}
    conns = (connect or connect_all)([h for h in inventory.hosts.values() if h.name in needed])
    try:
        ctx = UpContext(inventory=inventory, config=config, connections=conns, pki_dir=pki_root,
                        dry_run=dry_run, diff=diff, tags=tag_set, limit=limit_set,
                        cluster_vars=cluster_vars(config), console=console)
        recap = Recap(dry_run=dry_run)
        for stage in selected_stages(tag_set):
            recap = recap.merge(stage.run(ctx))
            if recap.failed:
                break
        return UpResult(recap=recap, pki_created=created,
                        warnings=list(getattr(inventory, "warnings", [])))
    finally:
        close_all(conns)


def cluster_vars(config) -> dict:
    """Vars every role sees, from the cluster config (above inventory vars)."""
    out = {"cluster_name": config.cluster_name}
    if config.etcd.local is not None:
        out["etcd_data_dir"] = config.etcd.local.data_dir
        out["etcd_extra_args"] = dict(config.etcd.local.extra_args)
    return out
