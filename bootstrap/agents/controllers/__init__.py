"""bootstrap-controller-manager: every enabled controller in one leader-elected
process on one SharedInformerFactory (kube-controller-manager's flags and names).

See docs/controllers.md for how to run it and manager.py for the controller table.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from bootstrap.api.agent import agent_parser, parse_bool, parse_duration, run_agent
from bootstrap.errors import UserError

from . import manager

log = logging.getLogger(__name__)

NAME = "kube-controller-manager"
SECURE_PORT = 10257


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (use Go syntax: 40s, 1m30s, 8760h)") from None


def build_parser() -> argparse.ArgumentParser:
    p = agent_parser("bootstrap-controller-manager",
                     "Runs the cluster's controllers (kube-controller-manager).",
                     secure_port=SECURE_PORT)
    p.set_defaults(leader_elect_resource_name=NAME)

    def one_line(message: str) -> None:
        # argparse's default prints the whole usage first; a bad flag is one line here.
        print(f"bootstrap-controller-manager: {message} (see --help)", file=sys.stderr)
        sys.exit(2)
    p.error = one_line
    d = manager.Options()
    g = p.add_argument_group("controllers")
    g.add_argument("--controllers", default="*",
                   help="Comma list of controllers: '*' enables those on by default, "
                   "'name' enables, '-name' disables (off by default: "
                   f"{', '.join(sorted(manager.DISABLED_BY_DEFAULT))}). Known: "
                   + ", ".join(manager.CONTROLLERS))
    g.add_argument("--cluster-name", default=d.cluster_name,
                   help="The instance prefix for the cluster (accepted as upstream)")
    g.add_argument("--cluster-cidr", default="",
                   help="CIDR range of pods, one per IP family (nodeipam)")
    g.add_argument("--allocate-node-cidrs", type=parse_bool, nargs="?", const=True,
                   default=False, metavar="BOOL")
    g.add_argument("--node-cidr-mask-size", type=int, default=0,
                   help="Mask size of each node's pod CIDR, single stack (24 for IPv4, "
                   "64 for IPv6 when 0)")
    g.add_argument("--node-cidr-mask-size-ipv4", type=int, default=0)
    g.add_argument("--node-cidr-mask-size-ipv6", type=int, default=0)
    g.add_argument("--service-cluster-ip-range", default="",
                   help="Service ClusterIP range; node pod CIDRs never overlap it")
    g.add_argument("--cluster-signing-cert-file", default="",
                   help="PEM CA certificate csrsigning issues certificates with")
    g.add_argument("--cluster-signing-key-file", default="",
                   help="PEM private key of --cluster-signing-cert-file")
    g.add_argument("--cluster-signing-duration", type=_duration,
                   default=d.cluster_signing_duration, metavar="DURATION")
    g.add_argument("--root-ca-file", default="",
                   help="CA bundle published as kube-root-ca.crt in every namespace")
    g.add_argument("--service-account-private-key-file", default="",
                   help="Accepted for kubeadm's command line; the legacy token "
                   "controller that would use it is not implemented")
    g.add_argument("--use-service-account-credentials", type=parse_bool, nargs="?",
                   const=True, default=False, metavar="BOOL",
                   help="Each controller writes as its own service account in kube-system")
    g.add_argument("--node-monitor-grace-period", type=_duration,
                   default=d.node_monitor_grace_period, metavar="DURATION",
                   help="How long a node may be silent before it is marked Unknown (50s)")
    g.add_argument("--node-monitor-period", type=_duration, default=d.node_monitor_period,
                   metavar="DURATION")
    g.add_argument("--node-startup-grace-period", type=_duration,
                   default=d.node_startup_grace_period, metavar="DURATION")
    g.add_argument("--node-eviction-rate", type=float, default=d.node_eviction_rate,
                   help="Nodes per second that get NoExecute taints in a healthy zone")
    g.add_argument("--secondary-node-eviction-rate", type=float,
                   default=d.secondary_node_eviction_rate,
                   help="The same in a partially disrupted zone of a large cluster")
    g.add_argument("--large-cluster-size-threshold", type=int,
                   default=d.large_cluster_size_threshold,
                   help="Zones up to this size stop tainting when partially disrupted")
    g.add_argument("--unhealthy-zone-threshold", type=float,
                   default=d.unhealthy_zone_threshold,
                   help="Share of not-ready nodes (at least 3) that makes a zone "
                   "partially disrupted")
    g.add_argument("--terminated-pod-gc-threshold", type=int,
                   default=d.terminated_pod_gc_threshold,
                   help="Terminated pods kept before podgc deletes the oldest (0: off)")
    g.add_argument("--resource-quota-sync-period", type=_duration,
                   default=d.resource_quota_sync_period, metavar="DURATION",
                   help="How often every quota's usage is recounted in full (5m)")
    for field in ("gc", "namespace", "serviceaccount", "deployment", "replicaset", "rc",
                  "statefulset", "daemonset", "job", "cron-job", "endpoint",
                  "service-endpoint", "resource-quota"):
        attr = f"concurrent_{field.replace('-', '_')}_syncs"
        g.add_argument(f"--concurrent-{field}-syncs", type=int, default=getattr(d, attr),
                       dest=attr)
    return p


def options_from_args(args: argparse.Namespace) -> manager.Options:
    fields = manager.Options.__dataclass_fields__
    return manager.Options(**{k: getattr(args, k) for k in fields if hasattr(args, k)})


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        enabled = manager.parse_controllers(args.controllers)
        options = options_from_args(args)
        manager.check_options(enabled, options)
    except UserError as exc:
        print(f"bootstrap-controller-manager: {exc.line()}", file=sys.stderr)
        return 2

    async def run(client, factory, recorder) -> None:
        await manager.run(enabled, options, client, factory, args)

    return asyncio.run(run_agent(args, NAME, run))


__all__ = ["main", "build_parser"]
