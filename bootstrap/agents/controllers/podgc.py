"""podgc: pod garbage collection every 20 s (upstream's PodGCController):

- terminated pods (Succeeded / Failed) beyond --terminated-pod-gc-threshold, oldest
  first (0 turns this off);
- pods bound to a node that no longer exists, confirmed with a live GET after the
  node has been missing for a quarantine period (a node object may be re-created);
  they are marked Failed with a DisruptionTarget condition first;
- terminating pods that were never scheduled;
- terminating pods on a not-ready node tainted node.kubernetes.io/out-of-service.

Every deletion is forced (grace period 0), as upstream.
"""

from __future__ import annotations

import time

from bootstrap.api.cache import NODE_NAME, index_by_node_name
from bootstrap.api.controller import Controller
from bootstrap.api.errors import APIError
from bootstrap.api.resources import by_gvr

from .taints import OUT_OF_SERVICE
from .util import find_condition, rfc3339

PODS = by_gvr("", "v1", "pods")
NODES = by_gvr("", "v1", "nodes")
PERIOD = 20.0
QUARANTINE = 40.0
KEY = "podgc"
TERMINATED = ("Succeeded", "Failed")
ORPHAN_CONDITION = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                    "message": "PodGC: node no longer exists"}
OUT_OF_SERVICE_CONDITION = {"type": "DisruptionTarget", "status": "True",
                            "reason": "DeletionByPodGC",
                            "message": "PodGC: node is out-of-service"}


def terminated_to_delete(pods: list[dict], threshold: int) -> list[dict]:
    """The oldest terminated pods beyond ``threshold`` (by creationTimestamp)."""
    if threshold <= 0:
        return []
    done = [p for p in pods if (p.get("status") or {}).get("phase") in TERMINATED
            and not p["metadata"].get("deletionTimestamp")]
    excess = len(done) - threshold
    if excess <= 0:
        return []
    done.sort(key=lambda p: (p["metadata"].get("creationTimestamp", ""),
                             p["metadata"].get("namespace", ""), p["metadata"]["name"]))
    return done[:excess]


class PodGCController(Controller):
    name = "podgc"

    def __init__(self, client, factory, recorder=None, *, threshold: int = 12500,
                 period: float = PERIOD, quarantine: float = QUARANTINE, clock=time.time):
        super().__init__(client, factory, recorder)
        self.threshold = threshold
        self.period = period
        self.quarantine = quarantine
        self.clock = clock
        self.pods = factory.informer(PODS)
        self.pods.add_indexers({NODE_NAME: index_by_node_name})
        self.nodes = factory.informer(NODES)
        self._missing_since: dict[str, float] = {}
        self.queue.add(KEY)  # one periodic pass, like upstream's gcCheckPeriod loop

    @classmethod
    def from_options(cls, client, factory, recorder, options):
        return cls(client, factory, recorder, threshold=options.terminated_pod_gc_threshold)

    async def reconcile(self, key: str) -> float | None:
        pods = self.pods.list()
        for pod in terminated_to_delete(pods, self.threshold):
            await self._delete(pod)
        await self._orphaned(pods)
        for pod in pods:
            md = pod["metadata"]
            if md.get("deletionTimestamp") and not (pod.get("spec") or {}).get("nodeName"):
                await self._delete(pod)
        await self._out_of_service()
        return self.period

    async def _orphaned(self, pods: list[dict]) -> None:
        now = self.clock()
        bound = {(p.get("spec") or {}).get("nodeName") for p in pods} - {None, ""}
        for name in list(self._missing_since):
            if name not in bound or self.nodes.get(name) is not None:
                del self._missing_since[name]
        for name in sorted(bound):
            if self.nodes.get(name) is not None:
                continue
            since = self._missing_since.setdefault(name, now)
            if now - since < self.quarantine:
                continue
            try:
                await self.client.get(NODES, name)
                continue  # it exists after all: our cache is behind
            except APIError as exc:
                if exc.code != 404:
                    raise
            for pod in self.pods.indexer.by_index(NODE_NAME, name):
                await self._fail_and_delete(pod, ORPHAN_CONDITION)

    async def _out_of_service(self) -> None:
        for node in self.nodes.list():
            taints = (node.get("spec") or {}).get("taints") or []
            if not any(t.get("key") == OUT_OF_SERVICE for t in taints):
                continue
            ready = find_condition((node.get("status") or {}).get("conditions"), "Ready")
            if ready is not None and ready.get("status") == "True":
                continue
            for pod in self.pods.indexer.by_index(NODE_NAME, node["metadata"]["name"]):
                if pod["metadata"].get("deletionTimestamp"):
                    await self._fail_and_delete(pod, OUT_OF_SERVICE_CONDITION)

    async def _fail_and_delete(self, pod: dict, condition: dict) -> None:
        md = pod["metadata"]
        if (pod.get("status") or {}).get("phase") not in TERMINATED:
            conds = [c for c in (pod.get("status") or {}).get("conditions") or []
                     if c.get("type") != condition["type"]]
            conds.append({**condition, "lastTransitionTime": rfc3339(self.clock())})
            patch = {"status": {"phase": "Failed", "conditions": conds}}
            try:
                await self.client.patch(PODS, md["name"], patch, md.get("namespace"),
                                        patch_type="merge", subresource="status")
            except APIError as exc:
                if exc.code == 404:
                    return
                raise
        await self._delete(pod)

    async def _delete(self, pod: dict) -> None:
        md = pod["metadata"]
        self.log.info("deleting pod %s/%s", md.get("namespace"), md["name"])
        try:
            await self.client.delete(PODS, md["name"], md.get("namespace"),
                                     grace_period_seconds=0,
                                     preconditions={"uid": md.get("uid")})
        except APIError as exc:
            if exc.code not in (404, 409):
                raise
