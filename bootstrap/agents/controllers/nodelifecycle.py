"""nodelifecycle: Node health from Leases and Ready heartbeats, the condition and
not-ready / unreachable taints, and pods marked not ready on an unhealthy node.

Each Node key is reconciled on every change and again every --node-monitor-period
(upstream's monitorNodeHealth loop). Evicting pods from NoExecute taints is the
taint-eviction-controller's job (tainteviction.py), as upstream since 1.29.
Upstream's zone disruption rate limiting of NoExecute tainting is not
implemented: a node is tainted as soon as its condition says so.
"""

from __future__ import annotations

import copy
import time

from bootstrap.api.cache import NODE_NAME, index_by_node_name
from bootstrap.api.controller import Controller
from bootstrap.api.errors import APIError
from bootstrap.api.events import NORMAL, WARNING
from bootstrap.api.resources import by_gvr

from .nodehealth import NodeHealth, wanted_taints
from .util import find_condition, object_ref, rfc3339, timestamp

NODES = by_gvr("", "v1", "nodes")
PODS = by_gvr("", "v1", "pods")
LEASES = by_gvr("coordination.k8s.io", "v1", "leases")
NODE_LEASE_NAMESPACE = "kube-node-lease"
NODE_NOT_READY = "NodeNotReady"
REGISTERED_NODE = "RegisteredNode"
REMOVING_NODE = "RemovingNode"


class NodeLifecycleController(Controller):
    name = "nodelifecycle"

    def __init__(self, client, factory, recorder=None, *, grace: float = 50.0,
                 startup_grace: float = 60.0, period: float = 5.0, clock=time.time):
        super().__init__(client, factory, recorder)
        self.clock = clock
        self.period = period
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
                   period=options.node_monitor_period)

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
        ready = (find_condition((node.get("status") or {}).get("conditions"), "Ready")
                 or {}).get("status", "Unknown")
        if observed == "True" and ready != "True" and self.recorder is not None:
            self.recorder.event(_node_ref(node), NORMAL, NODE_NOT_READY,
                                f"Node {key} status is now: {NODE_NOT_READY}")
        taints = wanted_taints(node, now)
        if taints != ((node.get("spec") or {}).get("taints") or []):
            desired = copy.deepcopy(node)
            desired.setdefault("spec", {})["taints"] = taints
            await self.client.update(NODES, desired)
        if ready != "True":
            await self._mark_pods_not_ready(key, now)
        return self.period

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


def _node_ref(node: dict) -> dict:
    return object_ref(node, "Node")
