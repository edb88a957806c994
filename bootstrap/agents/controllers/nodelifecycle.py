"""nodelifecycle: Node health from Leases and Ready heartbeats, the condition and
not-ready / unreachable taints, and pods marked not ready on an unhealthy node.

Each Node key is reconciled on every change and again every --node-monitor-period
(upstream's monitorNodeHealth loop). Evicting pods from NoExecute taints is the
taint-eviction-controller's job (tainteviction.py), as upstream since 1.29.

New NoExecute taints are rate limited per zone, as upstream's zone tainters:
--node-eviction-rate nodes per second in a healthy zone, the secondary rate in a
partially disrupted one (none at all in a zone of at most
--large-cluster-size-threshold nodes), and none anywhere while every zone is fully
disrupted: then the controller, not the nodes, is most likely cut off, so existing
NoExecute taints are removed rather than pods evicted ("master disruption mode").
"""

from __future__ import annotations

import copy
import time

from bootstrap.api.cache import NODE_NAME, index_by_node_name
from bootstrap.api.controller import Controller
from bootstrap.api.errors import APIError
from bootstrap.api.events import NORMAL, WARNING
from bootstrap.api.resources import by_gvr

from .nodehealth import (
    ADD,
    EXCLUDE_DISRUPTION,
    KEEP,
    REMOVE,
    ZONE_FULL,
    ZONE_NORMAL,
    ZONE_PARTIAL,
    NodeHealth,
    wanted_taints,
    zone_key,
    zone_state,
)
from .util import find_condition, object_ref, rfc3339, timestamp

NODES = by_gvr("", "v1", "nodes")
PODS = by_gvr("", "v1", "pods")
LEASES = by_gvr("coordination.k8s.io", "v1", "leases")
NODE_LEASE_NAMESPACE = "kube-node-lease"
ZONE_REFRESH = 1.0
NODE_NOT_READY = "NodeNotReady"
REGISTERED_NODE = "RegisteredNode"
REMOVING_NODE = "RemovingNode"


class NodeLifecycleController(Controller):
    name = "nodelifecycle"

    def __init__(self, client, factory, recorder=None, *, grace: float = 50.0,
                 startup_grace: float = 60.0, period: float = 5.0,
                 eviction_rate: float = 0.1, secondary_eviction_rate: float = 0.01,
                 large_cluster_threshold: int = 50, unhealthy_zone_threshold: float = 0.55,
                 clock=time.time):
        super().__init__(client, factory, recorder)
        self.clock = clock
        self.period = period
        self.eviction_rate = eviction_rate
        self.secondary_eviction_rate = secondary_eviction_rate
        self.large_cluster_threshold = large_cluster_threshold
        self.unhealthy_zone_threshold = unhealthy_zone_threshold
        self._last_taint: dict[str, float] = {}  # zone -> when a NoExecute taint was added
        self._disrupted = False
        self._zones: dict[str, dict[str, str]] | None = None
        self._zones_at = 0.0
        self.health = NodeHealth(grace, startup_grace)
        self._known: set[str] = set()  # upstream's knownNodeSet
        self.nodes = factory.informer(NODES)
        self.leases = factory.informer(LEASES, NODE_LEASE_NAMESPACE)
        self.pods = factory.informer(PODS)
        self.pods.add_indexers({NODE_NAME: index_by_node_name})
        self.nodes.add_handler(on_add=self.enqueue, on_update=lambda o, n: self.enqueue(n),
                               on_delete=self._deleted)
        self.leases.add_handler(on_add=self._lease, on_update=lambda o, n: self._lease(n))
        self.pods.add_handler(on_add=self._pod, on_update=lambda o, n: self._pod(n))

    @classmethod
    def from_options(cls, client, factory, recorder, options):
        return cls(client, factory, recorder, grace=options.node_monitor_grace_period,
                   startup_grace=options.node_startup_grace_period,
                   period=options.node_monitor_period,
                   eviction_rate=options.node_eviction_rate,
                   secondary_eviction_rate=options.secondary_node_eviction_rate,
                   large_cluster_threshold=options.large_cluster_size_threshold,
                   unhealthy_zone_threshold=options.unhealthy_zone_threshold)

    def _lease(self, lease: dict) -> None:
        self.enqueue(lease["metadata"]["name"])

    def _pod(self, pod: dict) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            self.enqueue(node)

    def _deleted(self, node: dict) -> None:
        name = node["metadata"]["name"]
        self.health.forget(name)
        self._known.discard(name)
        if self.recorder is not None:
            self.recorder.event(_node_ref(node), NORMAL, REMOVING_NODE,
                                f"Node {name} event: Removing Node {name} from Controller")

    async def reconcile(self, key: str) -> float | None:
        node = self.nodes.get(key)
        if node is None:
            return None
        now = self.clock()
        if key not in self._known:
            self._known.add(key)
            if self.recorder is not None:
                self.recorder.event(_node_ref(node), NORMAL, REGISTERED_NODE,
                                    f"Node {key} event: Registered Node {key} in Controller")
        lease = self.leases.get(key, NODE_LEASE_NAMESPACE)
        created = timestamp(node["metadata"].get("creationTimestamp"), now)
        stale, observed, _ = self.health.observe(node, lease, now, created)
        if stale is not None:
            node = await self.client.update(NODES, stale, subresource="status")
        ready = _ready(node)
        if observed == "True" and ready != "True" and self.recorder is not None:
            self.recorder.event(_node_ref(node), NORMAL, NODE_NOT_READY,
                                f"Node {key} status is now: {NODE_NOT_READY}")
        mode, wait = self._no_execute_mode(node, now)
        taints = wanted_taints(node, now, mode)
        if taints != ((node.get("spec") or {}).get("taints") or []):
            desired = copy.deepcopy(node)
            desired.setdefault("spec", {})["taints"] = taints
            await self.client.update(NODES, desired)
            if mode == ADD and _new_no_execute(node, taints):
                self._last_taint[zone_key(node)] = now
        if ready != "True":
            await self._mark_pods_not_ready(key, now)
        return min(self.period, wait) if wait else self.period

    def _members(self, now: float) -> dict[str, dict[str, str]]:
        """zone -> node -> Ready status from the cache, rebuilt at most once a second
        (upstream computes zone states once per monitor pass, not once per node)."""
        if self._zones is None or now - self._zones_at >= ZONE_REFRESH or now < self._zones_at:
            zones: dict[str, dict[str, str]] = {}
            for n in self.nodes.list():
                if _counts(n):
                    zones.setdefault(zone_key(n), {})[n["metadata"]["name"]] = _ready(n)
            self._zones, self._zones_at = zones, now
        return self._zones

    def zone_states(self, current: dict, now: float) -> dict[str, tuple[str, int]]:
        """zone -> (state, node count), with ``current`` as just written in place of its
        cached copy."""
        zones = dict(self._members(now))
        name, zone = current["metadata"]["name"], zone_key(current)
        for z, members in zones.items():
            if name in members and (z != zone or not _counts(current)):
                zones[z] = {k: v for k, v in members.items() if k != name}
        if _counts(current):
            zones[zone] = {**zones.get(zone, {}), name: _ready(current)}
        return {z: (zone_state(list(m.values()), self.unhealthy_zone_threshold), len(m))
                for z, m in zones.items() if m}

    def _no_execute_mode(self, node: dict, now: float) -> tuple[str, float]:
        """How this pass may treat NoExecute taints, and when to look again if a new
        one has to wait for its zone's rate."""
        states = self.zone_states(node, now)
        disrupted = bool(states) and all(s == ZONE_FULL for s, _ in states.values())
        if disrupted != self._disrupted:
            self._disrupted = disrupted
            if disrupted:
                self.log.warning("all nodes are not ready: entering master disruption mode "
                                 "(no taint-based eviction)")
            else:
                self.log.info("some nodes are ready again: leaving master disruption mode")
        if disrupted:
            return REMOVE, 0.0
        state, size = states.get(zone_key(node), (ZONE_NORMAL, 0))
        if state == ZONE_PARTIAL:
            rate = self.secondary_eviction_rate if size > self.large_cluster_threshold else 0
        else:
            rate = self.eviction_rate
        if rate <= 0:
            return KEEP, 0.0
        last = self._last_taint.get(zone_key(node))
        if last is not None and now - last < 1 / rate:
            return KEEP, 1 / rate - (now - last)
        return ADD, 0.0

    async def _mark_pods_not_ready(self, node_name: str, now: float) -> None:
        """MarkPodsNotReady: every pod on the node gets Ready=False (level-triggered:
        pods that already say False are left alone)."""
        for pod in self.pods.indexer.by_index(NODE_NAME, node_name):
            conds = (pod.get("status") or {}).get("conditions") or []
            ready = find_condition(conds, "Ready")
            if ready is None or ready.get("status") == "False":
                continue
            updated = copy.deepcopy(pod)
            cond = find_condition(updated["status"]["conditions"], "Ready")
            cond["status"] = "False"
            cond["lastTransitionTime"] = rfc3339(now)
            try:
                await self.client.update(PODS, updated, subresource="status")
            except APIError as exc:
                if exc.code == 404:
                    continue
                raise
            if self.recorder is not None:
                self.recorder.event(object_ref(pod, "Pod"), WARNING, NODE_NOT_READY,
                                    "Node is not ready")


def _counts(node: dict) -> bool:
    return EXCLUDE_DISRUPTION not in ((node.get("metadata") or {}).get("labels") or {})


def _ready(node: dict) -> str:
    c = find_condition((node.get("status") or {}).get("conditions"), "Ready")
    return (c or {}).get("status", "Unknown")


def _new_no_execute(node: dict, taints: list[dict]) -> bool:
    """Whether ``taints`` add a NoExecute taint the node did not carry at all."""
    before = {t.get("key") for t in (node.get("spec") or {}).get("taints") or []
              if t.get("effect") == "NoExecute"}
    return any(t.get("effect") == "NoExecute" and t.get("key") not in before and
               before.isdisjoint({"node.kubernetes.io/not-ready",
                                  "node.kubernetes.io/unreachable"}) for t in taints)


def _node_ref(node: dict) -> dict:
    return object_ref(node, "Node")
