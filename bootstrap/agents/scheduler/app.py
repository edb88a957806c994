"""The kube-scheduler process: flags and --config, informers wired to the scheduler.

Precedence, as upstream: a leader-election flag given on the command line wins
over the configuration file's leaderElection block, which wins over the
defaults; --kubeconfig wins over clientConnection.kubeconfig.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from bootstrap.api.agent import agent_parser, run_agent
from bootstrap.api.events import EventRecorder
from bootstrap.api.resources import by_gvr

from . import config as cfgmod
from .config import ConfigError, SchedulerConfig
from .queue import SchedulingQueue, has_gates
from .scheduler import Scheduler

NAME = "kube-scheduler"
SECURE_PORT = 10259
PODS = by_gvr("", "v1", "pods")
NODES = by_gvr("", "v1", "nodes")
NAMESPACES = by_gvr("", "v1", "namespaces")
PDBS = by_gvr("policy", "v1", "poddisruptionbudgets")
# What PodTopologySpread's default constraints select by (replicationcontrollers
# only once the API server serves them).
WORKLOADS = [r for r in (by_gvr("", "v1", "services"), by_gvr("apps", "v1", "replicasets"),
                         by_gvr("apps", "v1", "statefulsets"),
                         by_gvr("", "v1", "replicationcontrollers")) if r is not None]
# agent_parser's leader-election defaults, applied after the config file.
_LE_DEFAULTS = {"leader_elect": True, "leader_elect_lease_duration": 15.0,
                "leader_elect_renew_deadline": 10.0, "leader_elect_retry_period": 2.0,
                "leader_elect_resource_name": NAME,
                "leader_elect_resource_namespace": "kube-system"}
_LE_FROM_CONFIG = {"leader_elect": "leader_elect", "leader_elect_lease_duration": "lease_duration",
                   "leader_elect_renew_deadline": "renew_deadline",
                   "leader_elect_retry_period": "retry_period",
                   "leader_elect_resource_name": "resource_name",
                   "leader_elect_resource_namespace": "resource_namespace"}


def parser() -> argparse.ArgumentParser:
    p = agent_parser(NAME, "Assigns pending pods to nodes (kube-scheduler).",
                     secure_port=SECURE_PORT)
    p.add_argument("--config", help="The path to a KubeSchedulerConfiguration file "
                   "(kubescheduler.config.k8s.io/v1)")
    # None marks "not given", so the config file can fill it before the defaults.
    p.set_defaults(**dict.fromkeys(_LE_DEFAULTS))

    def error(message: str) -> None:  # one line and exit 2, not argparse's usage block
        print(f"{NAME}: {message} (see --help)", file=sys.stderr)
        sys.exit(2)

    p.error = error
    return p


def resolve(args: argparse.Namespace) -> SchedulerConfig:
    cfg = cfgmod.load(args.config) if args.config else cfgmod.default_config()
    for flag, attr in _LE_FROM_CONFIG.items():
        if getattr(args, flag) is None:
            value = getattr(cfg.leader_election, attr)
            setattr(args, flag, value if value is not None else _LE_DEFAULTS[flag])
    if not args.kubeconfig and cfg.kubeconfig:
        args.kubeconfig = cfg.kubeconfig
    return cfg


def wire(client, factory, recorder, cfg: SchedulerConfig) -> Scheduler:
    """The scheduler with its informers' handlers registered (not started)."""
    fws = cfgmod.frameworks(cfg)
    events: dict[str, frozenset[str]] = {}
    for fw in fws.values():
        events.update(fw.plugin_events())
    def gated(pod: dict) -> bool:  # SchedulingGates, unless the profile disabled it
        fw = fws.get((pod.get("spec") or {}).get("schedulerName", "default-scheduler"))
        return fw is not None and fw.gates and has_gates(pod)

    queue = SchedulingQueue(events, initial_backoff=cfg.initial_backoff,
                            max_backoff=cfg.max_backoff, gated=gated)
    pdbs = factory.informer(PDBS)
    recorders = {name: EventRecorder(client, name, recorder.host) for name in fws}
    sched = Scheduler(client, fws, recorders, queue=queue, pdbs=pdbs.list)
    for res in WORKLOADS:
        def set_(obj, new=None, kind=res.kind):
            sched.cache.workloads.set(kind, new or obj)

        def delete(obj, kind=res.kind):
            sched.cache.workloads.delete(kind, obj)
        factory.informer(res).add_handler(set_, set_, delete)
    factory.informer(NAMESPACES).add_handler(sched.on_namespace, sched.on_namespace,
                                             sched.on_namespace_delete)
    factory.informer(NODES).add_handler(sched.on_node_add, sched.on_node_update,
                                        sched.on_node_delete)
    factory.informer(PODS).add_handler(sched.on_pod_add, sched.on_pod_update,
                                       sched.on_pod_delete)
    return sched


async def run(client, factory, recorder, cfg: SchedulerConfig) -> None:
    sched = wire(client, factory, recorder, cfg)
    factory.start()
    await factory.wait_synced()
    await sched.run()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        cfg = resolve(args)
    except ConfigError as exc:
        print(f"{NAME}: {exc.line()}", file=sys.stderr)
        return 2

    async def body(client, factory, recorder) -> None:
        await run(client, factory, recorder, cfg)

    return asyncio.run(run_agent(args, NAME, body))
