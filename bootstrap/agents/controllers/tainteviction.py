"""taint-eviction-controller: pods on a node with NoExecute taints they do not
tolerate are deleted; tolerated ones after the smallest tolerationSeconds of the
tolerations in use (upstream's tainteviction controller).

Level-triggered: the countdown starts at the taint's timeAdded (set by the node
lifecycle controller), not at the moment this process noticed it, so a newly
elected leader evicts at the same moment the old one would have. A taint without
timeAdded counts from when this process first saw it.
"""

from __future__ import annotations

import copy
import time

from bootstrap.api.cache import NODE_NAME, index_by_node_name
from bootstrap.api.controller import Controller
from bootstrap.api.errors import APIError
from bootstrap.api.events import NORMAL
from bootstrap.api.placement import tolerates
from bootstrap.api.resources import by_gvr

from .taints import NO_EXECUTE
from .util import find_condition, object_ref, rfc3339, timestamp

NODES = by_gvr("", "v1", "nodes")
PODS = by_gvr("", "v1", "pods")
EVICTION_REASON = "TaintManagerEviction"
DISRUPTION_TARGET = {"type": "DisruptionTarget", "status": "True",
                     "reason": "DeletionByTaintManager",
                     "message": "Taint manager: deleting due to NoExecute taint"}


def eviction_delay(pod: dict, taints: list[dict]) -> float | None:
    """Seconds the pod may stay once ``taints`` (NoExecute) are on its node: 0 when one
    is not tolerated, the smallest tolerationSeconds among the tolerations in use,
    None when it tolerates them forever (upstream's getMinTolerationTime)."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    used: list[dict] = []
    for taint in taints:
        matching = [t for t in tolerations if tolerates(t, taint)]
        if not matching:
            return 0.0
        used.extend(matching)
    limits = [t["tolerationSeconds"] for t in used if t.get("tolerationSeconds") is not None]
    if not limits:
        return None
    return float(max(0, min(limits)))


class TaintEvictionController(Controller):
    name = "taint-eviction-controller"
    workers = 8

    def __init__(self, client, factory, recorder=None, clock=time.time):
        super().__init__(client, factory, recorder)
        self.clock = clock
        self.nodes = factory.informer(NODES)
        self.pods = factory.informer(PODS)
        self.pods.add_indexers({NODE_NAME: index_by_node_name})
        self.pods.add_handler(on_add=self.enqueue, on_update=lambda o, n: self.enqueue(n))
        self.nodes.add_handler(on_add=self._node, on_update=self._node_changed)
        self._first_seen: dict[tuple[str, str, str], float] = {}

    def _node_changed(self, old: dict, new: dict) -> None:
        if _no_execute(old) != _no_execute(new):
            name = new["metadata"]["name"]
            keep = {(t.get("key"), t.get("effect")) for t in _no_execute(new)}
            for seen in [s for s in self._first_seen if s[0] == name and s[1:] not in keep]:
                del self._first_seen[seen]
            self._node(new)

    def _node(self, node: dict) -> None:
        for key in self.pods.indexer.index_keys(NODE_NAME, node["metadata"]["name"]):
            self.enqueue(key)

    def _start(self, node_name: str, taints: list[dict], now: float) -> float:
        start = 0.0
        for t in taints:
            added = timestamp(t.get("timeAdded"))
            if added is None:
                added = self._first_seen.setdefault((node_name, t["key"], t["effect"]), now)
            start = max(start, added)
        return start

    async def reconcile(self, key: str) -> float | None:
        pod = self.pods.indexer.get(key)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return None
        node_name = (pod.get("spec") or {}).get("nodeName")
        node = self.nodes.get(node_name) if node_name else None
        if node is None:
            return None
        taints = _no_execute(node)
        if not taints:
            return None
        delay = eviction_delay(pod, taints)
        if delay is None:
            return None
        now = self.clock()
        remaining = self._start(node_name, taints, now) + delay - now
        if delay > 0 and remaining > 0:
            return remaining
        await self._evict(pod)
        return None

    async def _evict(self, pod: dict) -> None:
        ns, name = pod["metadata"].get("namespace"), pod["metadata"]["name"]
        if self.recorder is not None:
            self.recorder.event(object_ref(pod, "Pod"), NORMAL, EVICTION_REASON,
                                f"Marking for deletion Pod {ns}/{name}")
        conds = (pod.get("status") or {}).get("conditions") or []
        if find_condition(conds, "DisruptionTarget") is None:
            updated = copy.deepcopy(pod)
            updated.setdefault("status", {}).setdefault("conditions", []).append(
                {**DISRUPTION_TARGET, "lastTransitionTime": rfc3339(self.clock())})
            try:
                await self.client.update(PODS, updated, subresource="status")
            except APIError as exc:
                if exc.code == 404:
                    return
                raise
        try:
            await self.client.delete(PODS, name, ns,
                                     preconditions={"uid": pod["metadata"]["uid"]})
        except APIError as exc:
            if exc.code not in (404, 409):
                raise


def _no_execute(node: dict) -> list[dict]:
    return [t for t in (node.get("spec") or {}).get("taints") or []
            if t.get("effect") == NO_EXECUTE]
