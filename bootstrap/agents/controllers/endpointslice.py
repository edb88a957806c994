"""The endpointslice controller (upstream pkg/controller/endpointslice): the
EndpointSlices of every selector-based Service.

Slices carry ``kubernetes.io/service-name`` and
``endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io`` and an
ownerReference to the Service; endpoints have ready/serving/terminating
conditions, nodeName, zone (from the node's topology label), targetRef and, for
a pod whose subdomain is the Service, its hostname. Pods whose named target
ports resolve to different numbers land in different slices (one port set per
slice); each slice holds at most 100 endpoints. Reconcile keeps endpoints in the
slice they are in, fills free room before creating slices, and writes only
slices whose content changed. A Service with nothing to list keeps one empty
placeholder slice, as upstream.

Slices managed by anyone else (the API server's ``kubernetes`` slice, the DNS
servers' own slices of the selector-less kube-dns Service) are never touched.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

from bootstrap.agents.controllers.endpoints import (
    PODS,
    SERVICES,
    derived_labels,
    endpoint_port,
    find_port,
    is_headless,
    pod_ip,
    pod_ready,
    selected_pods,
    service_selector,
    should_include,
    should_set_hostname,
    target_ref,
)
from bootstrap.api.cache import NAMESPACE, NODE_NAME, index_by_node_name, split_key
from bootstrap.api.controller import Controller
from bootstrap.api.errors import APIError

SLICES = ("discovery.k8s.io", "v1", "endpointslices")
NODES = ("", "v1", "nodes")
SERVICE_NAME = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
ZONE_LABEL = "topology.kubernetes.io/zone"
MAX_PER_SLICE = 100      # --max-endpoints-per-slice default
BY_SERVICE = "service"   # index: slices by "ns/service-name"
MISSING_NODE_RETRY = 5.0
FAILED_UPDATE = "FailedToUpdateEndpointSlices"
STALE_GIVE_UP = 10.0     # seconds to wait for the cache to show our own writes


def _slice_service_index(obj: dict) -> list[str]:
    md = obj.get("metadata") or {}
    name = (md.get("labels") or {}).get(SERVICE_NAME)
    return [f"{md.get('namespace', '')}/{name}"] if name else []


# ---------------------------------------------------------------- the pure core

def pod_endpoint(pod: dict, node: dict | None, service: dict) -> dict:
    serving = pod_ready(pod)
    terminating = bool((pod.get("metadata") or {}).get("deletionTimestamp"))
    # "ready" is never true for a terminating pod, unless publishNotReadyAddresses.
    ready = bool((service.get("spec") or {}).get("publishNotReadyAddresses")) or (
        serving and not terminating)
    ep: dict = {"addresses": [pod_ip(pod)],
                "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
                "targetRef": target_ref(pod)}
    node_name = (pod.get("spec") or {}).get("nodeName")
    if node_name:
        ep["nodeName"] = node_name
    zone = (((node or {}).get("metadata") or {}).get("labels") or {}).get(ZONE_LABEL)
    if zone:
        ep["zone"] = zone
    if should_set_hostname(pod, service):
        ep["hostname"] = pod["spec"]["hostname"]
    return ep


def _ports_key(ports: list[dict]) -> tuple:
    return tuple(sorted(tuple(sorted(p.items())) for p in ports))


def endpoint_id(ep: dict) -> tuple:
    ref = ep.get("targetRef") or {}
    return (ep["addresses"][0], ref.get("uid", ""), ref.get("name", ""))


def desired_endpoints(service: dict, pods: list[dict], nodes: dict[str, dict]
                      ) -> tuple[dict[tuple, tuple[list[dict], dict[tuple, dict]]], bool]:
    """(port set key -> (ports, endpoint id -> endpoint), a node was missing)."""
    spec = service.get("spec") or {}
    publish = bool(spec.get("publishNotReadyAddresses"))
    out: dict[tuple, tuple[list[dict], dict[tuple, dict]]] = {}
    missing = False
    for pod in pods:
        if not should_include(pod, True):
            continue
        ports = []
        for sp in spec.get("ports") or []:
            n = find_port(pod, sp)
            if n is not None:
                ports.append(endpoint_port(sp, n))
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        node = nodes.get(node_name)
        if node is None and not publish:
            # Upstream skips a pod on an unknown node and retries the Service later.
            missing = True
            continue
        key = _ports_key(ports)
        bucket = out.setdefault(key, (sorted(ports, key=lambda p: (p.get("name", ""),
                                                                    p["port"])), {}))
        ep = pod_endpoint(pod, node, service)
        bucket[1][endpoint_id(ep)] = ep
    return out, missing


def slice_labels(service: dict) -> dict:
    labels = derived_labels(service)
    labels.pop(SERVICE_NAME, None)
    labels[SERVICE_NAME] = service["metadata"]["name"]
    labels[MANAGED_BY] = CONTROLLER_NAME
    return labels


def owner_ref(service: dict) -> dict:
    md = service["metadata"]
    return {"apiVersion": "v1", "kind": "Service", "name": md["name"], "uid": md.get("uid", ""),
            "controller": True, "blockOwnerDeletion": True}


def new_slice(service: dict, ports: list[dict], endpoints: list[dict]) -> dict:
    md = service["metadata"]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"generateName": f"{md['name'][:57]}-",
                         "namespace": md.get("namespace", "default"),
                         "labels": slice_labels(service),
                         "ownerReferences": [owner_ref(service)]},
            "addressType": "IPv4", "ports": copy.deepcopy(ports), "endpoints": endpoints}


@dataclass
class SlicePlan:
    create: list[dict] = field(default_factory=list)
    update: list[dict] = field(default_factory=list)
    delete: list[dict] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.create or self.update or self.delete)


def plan_slices(service: dict, desired: dict[tuple, tuple[list[dict], dict[tuple, dict]]],
                existing: list[dict], max_per_slice: int = MAX_PER_SLICE) -> SlicePlan:
    plan = SlicePlan()
    labels, owners = slice_labels(service), [owner_ref(service)]
    by_key: dict[tuple, list[dict]] = {}
    for s in sorted(existing, key=lambda s: s["metadata"].get("name", "")):
        by_key.setdefault(_ports_key(s.get("ports") or []), []).append(s)

    def finish(s: dict, endpoints: list[dict]) -> None:
        new = copy.deepcopy(s)
        new["endpoints"] = endpoints
        new["metadata"]["labels"] = labels
        new["metadata"]["ownerReferences"] = owners
        new["addressType"] = "IPv4"
        if (new["endpoints"], new["metadata"]["labels"], new["metadata"]["ownerReferences"]) \
                != ((s.get("endpoints") or []), (s["metadata"].get("labels") or {}),
                    s["metadata"].get("ownerReferences") or []):
            plan.update.append(new)

    if not any(eps for _, eps in desired.values()):
        # Nothing to list: exactly one placeholder (no ports, no endpoints).
        placeholders = by_key.get((), [])
        keep = next((s for s in placeholders if not s.get("endpoints")), None)
        for s in existing:
            if s is not keep:
                plan.delete.append(s)
        if keep is None:
            plan.create.append(new_slice(service, [], []))
        else:
            finish(keep, [])
        return plan

    for key, slices in by_key.items():
        if key not in desired:
            plan.delete.extend(slices)
    for key, (ports, eps) in desired.items():
        todo = dict(eps)
        kept: list[tuple[dict, list[dict]]] = []
        for s in by_key.get(key, []):
            stay = []
            for ep in s.get("endpoints") or []:
                eid = endpoint_id(ep) if ep.get("addresses") else None
                if eid in todo:
                    stay.append(todo.pop(eid))
            kept.append((s, stay))
        rest = [todo[k] for k in sorted(todo)]
        for _s, stay in kept:
            room = max_per_slice - len(stay)
            if room > 0 and rest:
                stay.extend(rest[:room])
                rest = rest[room:]
        for s, stay in kept:
            if stay:
                finish(s, stay)
            else:
                plan.delete.append(s)
        for i in range(0, len(rest), max_per_slice):
            plan.create.append(new_slice(service, ports, rest[i:i + max_per_slice]))
    return plan


# ---------------------------------------------------------------- the controller

class EndpointSliceController(Controller):
    name = "endpointslice"
    workers = 5          # --concurrent-service-endpoint-syncs

    def __init__(self, client, factory, recorder=None):
        super().__init__(client, factory, recorder)
        self.max_per_slice = MAX_PER_SLICE
        self.services = factory.informer(SERVICES)
        self.pods = factory.informer(PODS)
        self.nodes = factory.informer(NODES)
        self.slices = factory.informer(SLICES, label_selector=f"{MANAGED_BY}={CONTROLLER_NAME}")
        self.slices.add_indexers({BY_SERVICE: _slice_service_index})
        self.pods.add_indexers({NODE_NAME: index_by_node_name})
        self.services.add_handler(on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n),
                                  on_delete=self.enqueue)
        self.pods.add_handler(on_add=self._pod, on_update=self._pod_update, on_delete=self._pod)
        self.slices.add_handler(on_add=self._slice, on_update=lambda _o, n: self._slice(n),
                                on_delete=self._slice)
        # A node's zone label is copied into endpoints; a node appearing unblocks pods.
        self.nodes.add_handler(on_add=self._node, on_update=self._node_update,
                               on_delete=self._node)
        # What we wrote last, per service: the cache must show it before we act
        # again, or we would create a second slice for the same endpoints
        # (upstream's endpointSliceTracker).
        self._written: dict[str, tuple[float, dict[str, int]]] = {}
        self.clock = time.monotonic

    @classmethod
    def from_options(cls, client, factory, recorder, options):
        ctl = cls(client, factory, recorder)
        ctl.workers = getattr(options, "concurrent_service_endpoint_syncs", cls.workers)
        return ctl

    def _services_for(self, pod: dict) -> list[str]:
        ns = pod["metadata"].get("namespace")
        labels = pod["metadata"].get("labels")
        return [f"{ns}/{s['metadata']['name']}" for s in self.services.list(ns)
                if (sel := service_selector(s)) is not None and sel.matches(labels)]

    def _pod(self, pod: dict) -> None:
        for key in self._services_for(pod):
            self.enqueue(key)

    def _pod_update(self, old: dict, new: dict) -> None:
        for key in set(self._services_for(old)) | set(self._services_for(new)):
            self.enqueue(key)

    def _slice(self, s: dict) -> None:
        for key in _slice_service_index(s):
            self.enqueue(key)

    def _node(self, node: dict) -> None:
        for pod in self.pods.indexer.by_index(NODE_NAME, node["metadata"]["name"]):
            self._pod(pod)

    def _node_update(self, old: dict, new: dict) -> None:
        if ((old.get("metadata") or {}).get("labels") or {}).get(ZONE_LABEL) != \
                ((new.get("metadata") or {}).get("labels") or {}).get(ZONE_LABEL):
            self._node(new)

    def _stale(self, key: str, slices: list[dict]) -> bool:
        entry = self._written.get(key)
        if not entry:
            return False
        at, written = entry
        if self.clock() - at > STALE_GIVE_UP:
            # Someone else removed what we wrote before our cache saw it.
            del self._written[key]
            return False
        cached = {s["metadata"]["name"]: int(s["metadata"].get("resourceVersion") or 0)
                  for s in slices}
        for name, rv in written.items():
            if rv < 0:               # we deleted it
                if name in cached:
                    return True
            elif cached.get(name, -1) < rv:
                return True
        del self._written[key]
        return False

    async def reconcile(self, key: str) -> float | None:
        ns, name = split_key(key)
        slices = self.slices.indexer.by_index(BY_SERVICE, key)
        if self._stale(key, slices):
            return 0.05
        service = self.services.get(name, ns)
        if service is None or service_selector(service) is None:
            # Deleted Service: its slices go too (the garbage collector would
            # remove them through the ownerReference; not relying on it keeps
            # this controller whole on its own).
            if slices:
                await self._apply(key, ns, SlicePlan(delete=list(slices)))
            return None
        pods = selected_pods(service, self.pods.indexer.by_index(NAMESPACE, ns or ""))
        nodes = {n["metadata"]["name"]: n for n in self.nodes.list()}
        desired, missing = desired_endpoints(service, pods, nodes)
        plan = plan_slices(service, desired, slices, self.max_per_slice)
        if plan:
            try:
                await self._apply(key, ns, plan)
            except APIError as exc:
                if exc.code != 409 and self.recorder is not None:
                    self.recorder.event(service, "Warning", FAILED_UPDATE,
                                        f"Error updating Endpoint Slices for Service {key}: "
                                        f"{exc.message}")
                raise
        return MISSING_NODE_RETRY if missing else None

    async def _apply(self, key: str, ns: str | None, plan: SlicePlan) -> None:
        written: dict[str, int] = {}
        self._written[key] = (self.clock(), written)
        # Creates and updates before deletes: endpoints moving between slices are
        # never absent from all of them.
        for s in plan.create:
            out = await self.client.create(SLICES, s, ns)
            written[out["metadata"]["name"]] = int(out["metadata"]["resourceVersion"])
        for s in plan.update:
            out = await self.client.update(SLICES, s, ns)
            written[out["metadata"]["name"]] = int(out["metadata"]["resourceVersion"])
        for s in plan.delete:
            try:
                await self.client.delete(SLICES, s["metadata"]["name"], ns)
            except APIError as exc:
                if exc.code != 404:
                    raise
            written[s["metadata"]["name"]] = -1


__all__ = ["EndpointSliceController", "desired_endpoints", "plan_slices", "pod_endpoint",
           "is_headless"]
