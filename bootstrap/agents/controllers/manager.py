"""The controller manager's table of controllers, its --controllers syntax and options.

Names are upstream's (kube-controller-manager --controllers). Each entry names its
class as ``module:Class`` and is imported only when enabled, so a controller whose
module does not exist yet (or fails to import) costs a warning, never the others.

A controller is built with ``Cls(client, factory, recorder)`` (docs/control-loops.md);
one that needs flags defines ``Cls.from_options(client, factory, recorder, options)``
and receives the :class:`Options` below.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any

from bootstrap.errors import UserError

log = logging.getLogger(__name__)

PACKAGE = "bootstrap.agents.controllers"


@dataclass(frozen=True)
class Entry:
    """One controller: where its class lives and the service account it runs as with
    --use-service-account-credentials (upstream's controller role names)."""

    target: str
    service_account: str


def _e(module: str, cls: str, sa: str) -> Entry:
    return Entry(f"{PACKAGE}.{module}:{cls}", sa)


# Upstream names -> class; service accounts as upstream's bootstrap policy
# (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/controller_policy.go).
CONTROLLERS: dict[str, Entry] = {
    "deployment": _e("deployment", "DeploymentController", "deployment-controller"),
    "replicaset": _e("replicaset", "ReplicaSetController", "replicaset-controller"),
    "replicationcontroller": _e("replicaset", "ReplicationControllerController",
                                "replication-controller"),
    "daemonset": _e("daemonset", "DaemonSetController", "daemon-set-controller"),
    "statefulset": _e("statefulset", "StatefulSetController", "statefulset-controller"),
    "job": _e("job", "JobController", "job-controller"),
    "cronjob": _e("cronjob", "CronJobController", "cronjob-controller"),
    "ttl-after-finished": _e("ttlafterfinished", "TTLAfterFinishedController",
                             "ttl-after-finished-controller"),
    "disruption": _e("disruption", "DisruptionController", "disruption-controller"),
    "endpoint": _e("endpoints", "EndpointsController", "endpoint-controller"),
    "endpointslice": _e("endpointslice", "EndpointSliceController",
                        "endpointslice-controller"),
    "garbagecollector": _e("garbagecollector", "GarbageCollector",
                           "generic-garbage-collector"),
    "namespace": _e("namespace", "NamespaceController", "namespace-controller"),
    "podgc": _e("podgc", "PodGCController", "pod-garbage-collector"),
    "nodelifecycle": _e("nodelifecycle", "NodeLifecycleController", "node-controller"),
    "taint-eviction-controller": _e("tainteviction", "TaintEvictionController",
                                    "taint-eviction-controller"),
    "nodeipam": _e("nodeipam", "NodeIpamController", "node-controller"),
    "serviceaccount": _e("serviceaccount", "ServiceAccountsController",
                         "service-account-controller"),
    "root-ca-cert-publisher": _e("rootcacertpublisher", "RootCACertPublisher",
                                 "root-ca-cert-publisher"),
    "csrsigning": _e("csrsigning", "CSRSigningController", "certificate-controller"),
    "csrapproving": _e("csrapproving", "CSRApprovingController", "certificate-controller"),
    "csrcleaner": _e("csrcleaner", "CSRCleanerController", "certificate-controller"),
    "resourcequota": _e("resourcequota", "ResourceQuotaController",
                        "resourcequota-controller"),
    "bootstrapsigner": _e("bootstrapsigner", "BootstrapSigner", "bootstrap-signer"),
    "tokencleaner": _e("tokencleaner", "TokenCleaner", "token-cleaner"),
}

# Upstream's ControllersDisabledByDefault (kubeadm enables these two explicitly).
DISABLED_BY_DEFAULT = frozenset({"bootstrapsigner", "tokencleaner"})

# kube-controller-manager names this manager does not implement: accepted in
# --controllers so upstream command lines (``*,-route,-service``) still parse;
# asking for one explicitly is a warning at start.
NOT_IMPLEMENTED = frozenset({
    "attachdetach", "clusterrole-aggregation", "cloud-node-lifecycle", "endpointslicemirroring",
    "ephemeral-volume", "horizontalpodautoscaling", "legacy-serviceaccount-token-cleaner",
    "persistentvolume-binder", "persistentvolume-expander", "persistentvolumeclaim-protection",
    "persistentvolume-protection", "resourceclaim",
    "route", "service", "serviceaccount-token", "service-cidr-controller",
    "storage-version-migrator-controller", "storageversion-garbage-collector", "ttl",
    "validatingadmissionpolicy-status", "volumeattributesclass-protection",
})


@dataclass
class Options:
    """The flags controllers read, by upstream name (kube-controller-manager)."""

    cluster_cidr: str = ""
    allocate_node_cidrs: bool = False
    node_cidr_mask_size: int = 0           # 0: 24 for IPv4, 64 for IPv6
    node_cidr_mask_size_ipv4: int = 0
    node_cidr_mask_size_ipv6: int = 0
    service_cluster_ip_range: str = ""
    cluster_name: str = "kubernetes"
    cluster_signing_cert_file: str = ""
    cluster_signing_key_file: str = ""
    cluster_signing_duration: float = 8760 * 3600.0
    root_ca_file: str = ""
    service_account_private_key_file: str = ""
    use_service_account_credentials: bool = False
    node_monitor_grace_period: float = 50.0
    node_monitor_period: float = 5.0
    node_startup_grace_period: float = 60.0
    node_eviction_rate: float = 0.1
    secondary_node_eviction_rate: float = 0.01
    large_cluster_size_threshold: int = 50
    unhealthy_zone_threshold: float = 0.55
    terminated_pod_gc_threshold: int = 12500
    concurrent_gc_syncs: int = 20
    concurrent_namespace_syncs: int = 10
    concurrent_serviceaccount_syncs: int = 5
    concurrent_deployment_syncs: int = 5
    concurrent_replicaset_syncs: int = 5
    concurrent_rc_syncs: int = 5
    concurrent_statefulset_syncs: int = 5
    concurrent_daemonset_syncs: int = 2
    concurrent_job_syncs: int = 5
    concurrent_cron_job_syncs: int = 5
    concurrent_endpoint_syncs: int = 5
    concurrent_service_endpoint_syncs: int = 5
    concurrent_resource_quota_syncs: int = 5
    resource_quota_sync_period: float = 300.0


def parse_controllers(spec: str, known: dict[str, Any] | None = None,
                      disabled_by_default: frozenset[str] = DISABLED_BY_DEFAULT) -> list[str]:
    """``--controllers``: a comma list of ``*`` (every controller on by default),
    ``name`` (on) and ``-name`` (off); the last mention of a name wins, as upstream's
    IsControllerEnabled. Unknown names are a UserError."""
    known = CONTROLLERS if known is None else known
    items = [s.strip() for s in (spec or "*").split(",") if s.strip()]
    explicit: dict[str, bool] = {}
    star = False
    for item in items:
        if item == "*":
            star = True
            continue
        name, on = (item[1:], False) if item.startswith("-") else (item, True)
        if name in NOT_IMPLEMENTED and name not in known:
            if on:
                log.warning("controller %s is not implemented by this controller manager",
                            name)
            continue
        if name not in known:
            raise UserError(f"unknown controller {name!r}", where="--controllers",
                            hint="known controllers: " + ", ".join(sorted(known)))
        explicit[name] = on
    out = []
    for name in known:
        if name in explicit:
            if explicit[name]:
                out.append(name)
        elif star and name not in disabled_by_default:
            out.append(name)
    return out


def load(name: str, table: dict[str, Entry] | None = None) -> type | None:
    """The class of controller ``name``, or None (with a warning) when its module is
    not there yet."""
    entry = (table or CONTROLLERS)[name]
    module_name, _, cls_name = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            log.warning("controller %s is not available: module %s does not exist",
                        name, module_name)
            return None
        raise
    cls = getattr(module, cls_name, None)
    if cls is None:
        log.warning("controller %s is not available: %s has no %s", name, module_name,
                    cls_name)
    return cls


def build(cls: type, client, factory, recorder, options: Options):
    """One controller instance, with the options if it asks for them."""
    from_options = getattr(cls, "from_options", None)
    if from_options is not None:
        return from_options(client, factory, recorder, options)
    return cls(client, factory, recorder)


def check_options(enabled: list[str], options: Options) -> None:
    """Flag combinations a controller cannot start with, as one UserError at start."""
    if "nodeipam" in enabled and options.allocate_node_cidrs:
        from .nodeipam import cidr_sets
        cidr_sets(options)
    if "csrsigning" in enabled and bool(options.cluster_signing_cert_file) != bool(
            options.cluster_signing_key_file):
        raise UserError("both --cluster-signing-cert-file and --cluster-signing-key-file "
                        "are needed", where="--cluster-signing-cert-file",
                        hint="e.g. /etc/kubernetes/pki/ca.crt and ca.key")
    # Files are read now, so a typo is one line at start rather than a failure later.
    if "csrsigning" in enabled and options.cluster_signing_cert_file:
        from .csrsigning import load_ca
        load_ca(options.cluster_signing_cert_file, options.cluster_signing_key_file)
    if "root-ca-cert-publisher" in enabled and options.root_ca_file:
        from .rootcacertpublisher import read_bundle
        read_bundle(options.root_ca_file)


async def run(enabled: list[str], options: Options, client, factory, args,
              table: dict[str, Entry] | None = None) -> None:
    """Build every enabled controller that exists, then run them all until cancelled."""
    import asyncio
    import socket

    from bootstrap.api.events import EventRecorder

    table = table or CONTROLLERS
    accounts = None
    if options.use_service_account_credentials:
        from .credentials import ServiceAccountClients
        accounts = ServiceAccountClients(client, getattr(args, "kubeconfig", None))
    recorders: list[EventRecorder] = []
    controllers = []
    try:
        for name in enabled:
            cls = load(name, table)
            if cls is None:
                continue
            entry = table[name]
            own = await accounts.client(entry.service_account) if accounts else client
            # Events carry the controller's upstream component name ("node-controller").
            recorder = EventRecorder(own, entry.service_account, socket.gethostname())
            recorders.append(recorder)
            ctrl = build(cls, own, factory, recorder, options)
            if ctrl is None:
                log.info("controller %s is not started with these flags", name)
                continue
            controllers.append(ctrl)
        log.info("starting controllers: %s", ", ".join(c.name for c in controllers))
        factory.start()
        await asyncio.gather(*(c.run() for c in controllers))
    finally:
        for r in recorders:
            await r.close()
        if accounts is not None:
            await accounts.close()
