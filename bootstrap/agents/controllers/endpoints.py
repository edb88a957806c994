"""The endpoint controller (upstream pkg/controller/endpoint): a core/v1
Endpoints object per selector-based Service, listing its pods' addresses.

Selector-less Services (``default/kubernetes``, kube-dns in our packaging, and
any a user fills by hand) are never touched: their Endpoints belong to whoever
wrote them. The helpers at the top are shared with the endpointslice controller,
as upstream's controller/util/endpoint is.
"""

from __future__ import annotations

import copy

from bootstrap.api.cache import NAMESPACE, split_key
from bootstrap.api.controller import Controller
from bootstrap.api.errors import APIError
from bootstrap.api.selectors import LabelSelector, Requirement

SERVICES = ("", "v1", "services")
PODS = ("", "v1", "pods")
ENDPOINTS = ("", "v1", "endpoints")
HEADLESS_LABEL = "service.kubernetes.io/headless"
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
MAX_ENDPOINTS = 1000       # upstream truncates Endpoints beyond this
FAILED_CREATE = "FailedToCreateEndpoint"
FAILED_UPDATE = "FailedToUpdateEndpoint"


# ---------------------------------------------------------------- shared helpers

def service_selector(service: dict) -> LabelSelector | None:
    """The pod selector, or None for a selector-less Service."""
    sel = (service.get("spec") or {}).get("selector")
    if not sel:
        return None
    return LabelSelector(tuple(sorted((Requirement(k, "in", (v,)) for k, v in sel.items()),
                                      key=lambda r: r.key)))


def is_headless(service: dict) -> bool:
    return (service.get("spec") or {}).get("clusterIP") == "None"


def pod_ready(pod: dict) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def pod_ip(pod: dict) -> str | None:
    status = pod.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or []] or [status.get("podIP")]
    return next((ip for ip in ips if ip and ":" not in ip), None)


def should_include(pod: dict, include_terminating: bool) -> bool:
    """ShouldPodBeInEndpoints: not terminal, has an IP, and not being deleted
    unless terminating pods are wanted."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    if not pod_ip(pod):
        return False
    if not include_terminating and (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return True


def find_port(pod: dict, service_port: dict) -> int | None:
    """The pod's port for a service port: targetPort by number, or by name among
    the containers' (and restartable init containers') ports of that protocol."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = service_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or []) + [
        c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    for c in containers:
        for p in c.get("ports") or []:
            if p.get("name") == target and (p.get("protocol") or "TCP") == protocol:
                return int(p["containerPort"])
    return None


def should_set_hostname(pod: dict, service: dict) -> bool:
    spec = pod.get("spec") or {}
    return bool(spec.get("hostname")) and spec.get("subdomain") == service["metadata"]["name"] \
        and pod["metadata"].get("namespace") == service["metadata"].get("namespace")


def target_ref(pod: dict) -> dict:
    md = pod["metadata"]
    return {"kind": "Pod", "namespace": md.get("namespace"), "name": md["name"],
            "uid": md.get("uid", "")}


def endpoint_port(service_port: dict, number: int) -> dict:
    out = {"port": number, "protocol": service_port.get("protocol") or "TCP"}
    if service_port.get("name"):
        out["name"] = service_port["name"]
    if service_port.get("appProtocol"):
        out["appProtocol"] = service_port["appProtocol"]
    return out


def derived_labels(service: dict) -> dict:
    labels = dict((service.get("metadata") or {}).get("labels") or {})
    labels.pop(HEADLESS_LABEL, None)
    if is_headless(service):
        labels[HEADLESS_LABEL] = ""
    return labels


def selected_pods(service: dict, pods: list[dict]) -> list[dict]:
    sel = service_selector(service)
    if sel is None:
        return []
    return [p for p in pods if sel.matches((p.get("metadata") or {}).get("labels"))]


# ---------------------------------------------------------------- the pure core

def _address(pod: dict, service: dict) -> dict:
    addr = {"ip": pod_ip(pod), "targetRef": target_ref(pod)}
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        addr["nodeName"] = node
    if should_set_hostname(pod, service):
        addr["hostname"] = pod["spec"]["hostname"]
    return addr


def _port_key(p: dict) -> tuple:
    return (p.get("name", ""), p["port"], p["protocol"])


def endpoint_subsets(service: dict, pods: list[dict]) -> tuple[list[dict], bool]:
    """(subsets, truncated): the repacked subsets upstream writes, one per
    distinct port set, addresses and notReadyAddresses sorted by IP."""
    spec = service.get("spec") or {}
    tolerate = bool(spec.get("publishNotReadyAddresses"))
    # address key -> (address, ready, set of ports)
    groups: dict[tuple, dict[str, list]] = {}
    for pod in pods:
        if not should_include(pod, tolerate):
            continue
        addr = _address(pod, service)
        ready = tolerate or pod_ready(pod)
        ports = spec.get("ports") or []
        if not ports:
            if not is_headless(service):
                continue
            resolved: tuple = ()
        else:
            found = []
            for sp in ports:
                n = find_port(pod, sp)
                if n is not None:
                    found.append(endpoint_port(sp, n))
            if not found:
                continue
            resolved = tuple(sorted(tuple(sorted(p.items())) for p in found))
        bucket = groups.setdefault(resolved, {"addresses": [], "notReadyAddresses": []})
        bucket["addresses" if ready else "notReadyAddresses"].append(addr)
    subsets = []
    total = 0
    truncated = False
    for ports in sorted(groups):
        bucket = groups[ports]
        subset: dict = {}
        for field in ("addresses", "notReadyAddresses"):
            addrs = sorted(bucket[field], key=lambda a: (a["ip"], a["targetRef"]["uid"]))
            room = MAX_ENDPOINTS - total
            if len(addrs) > room:
                addrs, truncated = addrs[:room], True
            total += len(addrs)
            if addrs:
                subset[field] = addrs
        if not subset:
            continue
        if ports:
            subset["ports"] = sorted((dict(p) for p in ports), key=_port_key)
        subsets.append(subset)
    return subsets, truncated


def desired_endpoints(service: dict, pods: list[dict], current: dict | None) -> dict | None:
    """The Endpoints object to write, or None when ``current`` already matches."""
    subsets, truncated = endpoint_subsets(service, pods)
    md = service["metadata"]
    labels = derived_labels(service)
    annotations = dict(((current or {}).get("metadata") or {}).get("annotations") or {})
    if truncated:
        annotations[OVER_CAPACITY] = "truncated"
    else:
        annotations.pop(OVER_CAPACITY, None)
    if current is not None:
        cur_md = current.get("metadata") or {}
        if (current.get("subsets") or []) == subsets and (cur_md.get("labels") or {}) == labels \
                and (cur_md.get("annotations") or {}) == annotations:
            return None
        new = copy.deepcopy(current)
    else:
        new = {"apiVersion": "v1", "kind": "Endpoints",
               "metadata": {"name": md["name"], "namespace": md.get("namespace", "default")}}
    new["metadata"]["labels"] = labels
    if annotations:
        new["metadata"]["annotations"] = annotations
    else:
        new["metadata"].pop("annotations", None)
    new["subsets"] = subsets
    return new


# ---------------------------------------------------------------- the controller

class EndpointsController(Controller):
    name = "endpoint"
    workers = 5            # --concurrent-endpoint-syncs

    def __init__(self, client, factory, recorder=None):
        super().__init__(client, factory, recorder)
        self.services = factory.informer(SERVICES)
        self.pods = factory.informer(PODS)
        self.endpoints = factory.informer(ENDPOINTS)
        self.services.add_handler(on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n),
                                  on_delete=self.enqueue)
        self.pods.add_handler(on_add=self._pod, on_update=self._pod_update,
                              on_delete=self._pod)
        # A deleted Endpoints of a live selector Service is written again.
        self.endpoints.add_handler(on_delete=self.enqueue)

    @classmethod
    def from_options(cls, client, factory, recorder, options):
        ctl = cls(client, factory, recorder)
        ctl.workers = getattr(options, "concurrent_endpoint_syncs", cls.workers)
        return ctl

    def _services_for(self, pod: dict) -> list[dict]:
        ns = pod["metadata"].get("namespace")
        labels = pod["metadata"].get("labels")
        out = []
        for svc in self.services.list(ns):
            sel = service_selector(svc)
            if sel is not None and sel.matches(labels):
                out.append(svc)
        return out

    def _pod(self, pod: dict) -> None:
        for svc in self._services_for(pod):
            self.enqueue(svc)

    def _pod_update(self, old: dict, new: dict) -> None:
        keys = {f"{s['metadata'].get('namespace')}/{s['metadata']['name']}"
                for s in self._services_for(old) + self._services_for(new)}
        for key in keys:
            self.enqueue(key)

    async def reconcile(self, key: str) -> float | None:
        ns, name = split_key(key)
        service = self.services.get(name, ns)
        if service is None:
            try:
                await self.client.delete(ENDPOINTS, name, ns)
            except APIError as exc:
                if exc.code != 404:
                    raise
            return None
        if service_selector(service) is None:
            return None
        pods = selected_pods(service, self.pods.indexer.by_index(NAMESPACE, ns or ""))
        current = self.endpoints.get(name, ns)
        new = desired_endpoints(service, pods, current)
        if new is None:
            return None
        try:
            if current is None:
                # 409 AlreadyExists (our cache lags a create) is requeued like any conflict.
                await self.client.create(ENDPOINTS, new, ns)
            else:
                await self.client.update(ENDPOINTS, new, ns)
        except APIError as exc:
            if exc.code != 409 and self.recorder is not None:
                reason = FAILED_CREATE if current is None else FAILED_UPDATE
                verb = "create" if current is None else "update"
                self.recorder.event(service, "Warning", reason,
                                    f"Failed to {verb} endpoint {ns}/{name}: {exc.message}")
            raise
        return None
