"""The Node object: registration, status and the node Lease.

Pure parts build the Node and its status from facts (``NodeFacts``: machine,
runtime and pressure readings); ``NodeAgent`` registers the node, renews
``kube-node-lease/<node>`` every leaseDuration/4 (10 s by default) and writes
status when it changed or nodeStatusReportFrequency (5 min) passed, as
upstream's kubelet_node_status.go and nodelease do.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bootstrap import component_version
from bootstrap.api.errors import APIError
from bootstrap.api.quantity import value as int_value

log = logging.getLogger(__name__)

# The kubelet reports the API version it implements with the bootstrap install it
# runs from after "-bootstrap." (bootstrap.component_version): clients compare the
# major.minor (1.32, the API surface served and tested); upgrades read our own part.
KUBELET_VERSION = component_version()
NODES = ("", "v1", "nodes")
LEASES = ("coordination.k8s.io", "v1", "leases")
NODE_LEASE_NS = "kube-node-lease"
MAX_IMAGES = 50   # nodeStatusMaxImages

# Condition type -> (reason when fine, message when fine, reason when not, message when not)
CONDITIONS = {
    "MemoryPressure": ("KubeletHasSufficientMemory", "kubelet has sufficient memory available",
                       "KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
    "DiskPressure": ("KubeletHasNoDiskPressure", "kubelet has no disk pressure",
                     "KubeletHasDiskPressure", "kubelet has disk pressure"),
    "PIDPressure": ("KubeletHasSufficientPID", "kubelet has sufficient PID available",
                    "KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
}


@dataclass
class NodeFacts:
    name: str
    ip: str
    hostname: str
    cpus: int
    memory: int                  # bytes
    ephemeral_storage: int       # bytes of the root dir's filesystem
    memory_available: int
    disk_available: int
    pids_available: int = 1 << 22
    pid_max: int = 1 << 22
    kernel: str = ""
    os_image: str = ""
    machine_id: str = ""
    boot_id: str = ""
    runtime_version: str = ""
    runtime_ready: bool = True
    network_ready: bool = True
    runtime_message: str = ""
    images: list[dict] = field(default_factory=list)


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _threshold(value: str, capacity: int) -> int:
    if value.endswith("%"):
        return int(capacity * float(value[:-1]) / 100)
    return int_value(value)


def pressures(facts: NodeFacts, eviction_hard: dict[str, str]) -> dict[str, bool]:
    def under(signal: str, available: int, capacity: int) -> bool:
        limit = eviction_hard.get(signal)
        return limit is not None and available < _threshold(limit, capacity)
    return {
        "MemoryPressure": under("memory.available", facts.memory_available, facts.memory),
        "DiskPressure": under("nodefs.available", facts.disk_available,
                              facts.ephemeral_storage),
        "PIDPressure": under("pid.available", facts.pids_available, facts.pid_max),
    }


def node_object(facts: NodeFacts, labels: dict[str, str], pod_cidr: str = "") -> dict:
    meta_labels = {"kubernetes.io/hostname": facts.hostname, "kubernetes.io/os": "linux",
                   "kubernetes.io/arch": _arch(), "beta.kubernetes.io/os": "linux",
                   "beta.kubernetes.io/arch": _arch(), **labels}
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": facts.name, "labels": meta_labels,
                         "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach":
                                         "true"}},
            "spec": {}}
    if pod_cidr:
        node["spec"]["podCIDR"] = pod_cidr
        node["spec"]["podCIDRs"] = [pod_cidr]
    return node


def _arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


def node_status(facts: NodeFacts, *, max_pods: int, eviction_hard: dict[str, str],
                old: dict | None, now: float, port: int = 10250) -> dict:
    """Capacity, allocatable, conditions (with upstream reasons), addresses, nodeInfo."""
    capacity = {"cpu": str(facts.cpus), "memory": f"{facts.memory // 1024}Ki",
                "ephemeral-storage": f"{facts.ephemeral_storage // 1024}Ki",
                "pods": str(max_pods)}
    mem_reserve = _threshold(eviction_hard.get("memory.available", "0"), facts.memory)
    disk_reserve = _threshold(eviction_hard.get("nodefs.available", "0"),
                              facts.ephemeral_storage)
    allocatable = dict(capacity)
    allocatable["memory"] = f"{max(0, facts.memory - mem_reserve) // 1024}Ki"
    allocatable["ephemeral-storage"] = str(max(0, facts.ephemeral_storage - disk_reserve))
    press = pressures(facts, eviction_hard)
    previous = {c.get("type"): c for c in (old or {}).get("conditions") or []}
    conds = []
    for type_, (ok_reason, ok_msg, bad_reason, bad_msg) in CONDITIONS.items():
        bad = press[type_]
        conds.append(_cond(type_, "True" if bad else "False", bad_reason if bad else ok_reason,
                           bad_msg if bad else ok_msg, previous.get(type_), now))
    ready = facts.runtime_ready and facts.network_ready
    if ready:
        conds.append(_cond("Ready", "True", "KubeletReady", "kubelet is posting ready status",
                           previous.get("Ready"), now))
    else:
        conds.append(_cond("Ready", "False", "KubeletNotReady", facts.runtime_message,
                           previous.get("Ready"), now))
    addresses = [{"type": "InternalIP", "address": facts.ip}] if facts.ip else []
    addresses.append({"type": "Hostname", "address": facts.hostname})
    return {
        "capacity": capacity, "allocatable": allocatable, "conditions": conds,
        "addresses": addresses,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {"machineID": facts.machine_id, "systemUUID": facts.machine_id,
                     "bootID": facts.boot_id, "kernelVersion": facts.kernel,
                     "osImage": facts.os_image, "containerRuntimeVersion": facts.runtime_version,
                     "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": "",
                     "operatingSystem": "linux", "architecture": _arch()},
        "images": facts.images[:MAX_IMAGES],
    }


def _cond(type_: str, status: str, reason: str, message: str, old: dict | None,
          now: float) -> dict:
    transition = old.get("lastTransitionTime") if old and old.get("status") == status else None
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": rfc3339(now), "lastTransitionTime": transition or rfc3339(now)}


def without_heartbeats(status: dict) -> dict:
    out = dict(status)
    out["conditions"] = [{k: v for k, v in c.items() if k != "lastHeartbeatTime"}
                         for c in status.get("conditions") or []]
    return out


def lease_object(node: str, node_uid: str, duration: int, now: float) -> dict:
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": node, "namespace": NODE_LEASE_NS},
             "spec": {"holderIdentity": node, "leaseDurationSeconds": duration,
                      "renewTime": micro_time(now)}}
    if node_uid:
        lease["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node",
                                                 "name": node, "uid": node_uid}]
    return lease


# --- facts from the machine -----------------------------------------------------------

def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return ""


def meminfo() -> dict[str, int]:
    out = {}
    for line in _read("/proc/meminfo").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            out[key] = int(parts[0]) * 1024
    return out


def os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return "Linux"


def machine_facts(name: str, ip: str, root_dir: str) -> NodeFacts:
    mem = meminfo()
    st = os.statvfs(root_dir)
    pid_max = int((_read("/proc/sys/kernel/pid_max") or "4194304").strip())
    try:
        running = len([d for d in os.listdir("/proc") if d.isdigit()])
    except OSError:
        running = 0
    return NodeFacts(
        name=name, ip=ip, hostname=name, cpus=os.cpu_count() or 1,
        memory=mem.get("MemTotal", 0), ephemeral_storage=st.f_blocks * st.f_frsize,
        memory_available=mem.get("MemAvailable", 0), disk_available=st.f_bavail * st.f_frsize,
        pids_available=pid_max - running, pid_max=pid_max, kernel=platform.release(),
        os_image=os_image(), machine_id=_read("/etc/machine-id").strip(),
        boot_id=_read("/proc/sys/kernel/random/boot_id").strip())


def image_list(images) -> list[dict]:
    """Node.status.images from CRI images, largest first."""
    out = []
    for img in sorted(images, key=lambda i: i.size, reverse=True):
        names = list(img.repo_digests) + list(img.repo_tags)
        if names:
            out.append({"names": names, "sizeBytes": int(img.size)})
    return out


class NodeAgent:
    """Registers the node, keeps its status and its Lease fresh."""

    def __init__(self, client, runtime, cfg, node_ip: str, *,
                 clock: Callable[[], float] = time.time,
                 facts: Callable[[], NodeFacts] | None = None):
        self.client = client
        self.runtime = runtime
        self.cfg = cfg
        self.name = cfg.node_name
        self.node_ip = node_ip
        self.clock = clock
        self._facts = facts or (lambda: machine_facts(self.name, node_ip, cfg.root_dir))
        self.node_uid = ""
        self.last_status: dict | None = None
        self.last_report = 0.0
        self.registered = asyncio.Event()

    async def gather(self) -> NodeFacts:
        facts = self._facts()
        try:
            v = await self.runtime.version()
            facts.runtime_version = f"{v.runtime_name}://{v.runtime_version}"
            st = await self.runtime.status()
            conds = {c.type: c for c in st.status.conditions}
            facts.runtime_ready = bool(conds.get("RuntimeReady") and
                                       conds["RuntimeReady"].status)
            net = conds.get("NetworkReady")
            facts.network_ready = bool(net and net.status)
            if not facts.runtime_ready:
                c = conds.get("RuntimeReady")
                facts.runtime_message = ("container runtime not ready: RuntimeReady=false "
                                         f"reason:{c.reason if c else ''} "
                                         f"message:{c.message if c else ''}")
            elif not facts.network_ready:
                facts.runtime_message = ("container runtime network not ready: NetworkReady="
                                         f"false reason:{net.reason if net else ''} "
                                         f"message:{net.message if net else ''}")
            facts.images = image_list(await self.runtime.list_images())
        except Exception as exc:
            facts.runtime_ready = False
            facts.runtime_message = f"container runtime is down: {exc}"
        return facts

    async def register(self) -> dict:
        facts = await self.gather()
        obj = node_object(facts, self.cfg.node_labels, self.cfg.pod_cidr)
        try:
            node = await self.client.create(NODES, obj)
            log.info("registered node %s", self.name)
        except APIError as exc:
            if exc.code != 409:
                raise
            node = await self.client.get(NODES, self.name)
            # Labels the kubelet owns are reconciled on an existing Node (upstream
            # reconcileExtendedResource / updateDefaultLabels).
            wanted = obj["metadata"]["labels"]
            have = (node.get("metadata") or {}).get("labels") or {}
            if any(have.get(k) != v for k, v in wanted.items()):
                node = await self.client.patch(NODES, self.name,
                                               {"metadata": {"labels": wanted}},
                                               patch_type="merge")
        self.node_uid = node["metadata"].get("uid", "")
        self.registered.set()
        await self.update_status(force=True, facts=facts, current=node)
        return node

    async def update_status(self, force: bool = False, facts: NodeFacts | None = None,
                            current: dict | None = None) -> bool:
        facts = facts or await self.gather()
        now = self.clock()
        old = (current or {}).get("status") or self.last_status
        status = node_status(facts, max_pods=self.cfg.max_pods,
                             eviction_hard=self.cfg.eviction_hard, old=old, now=now,
                             port=self.cfg.port)
        due = now - self.last_report >= self.cfg.node_status_report_frequency
        if not force and not due and self.last_status is not None and \
                without_heartbeats(status) == without_heartbeats(self.last_status):
            return False
        await self.client.patch(NODES, self.name, {"status": status}, patch_type="merge",
                                subresource="status")
        self.last_status = status
        self.last_report = now
        return True

    async def renew_lease(self) -> None:
        lease = lease_object(self.name, self.node_uid, self.cfg.node_lease_duration_seconds,
                             self.clock())
        try:
            current = await self.client.get(LEASES, self.name, NODE_LEASE_NS)
        except APIError as exc:
            if exc.code != 404:
                raise
            await self.client.create(LEASES, lease, NODE_LEASE_NS)
            return
        current["spec"] = lease["spec"]
        if self.node_uid:
            current["metadata"]["ownerReferences"] = lease["metadata"]["ownerReferences"]
        await self.client.update(LEASES, current, NODE_LEASE_NS)

    async def run(self) -> None:
        while True:
            try:
                await self.register()
                break
            except Exception as exc:
                log.warning("registering node %s failed: %s", self.name, exc)
                await asyncio.sleep(2)
        await asyncio.gather(self._loop(self.renew_lease,
                                        self.cfg.node_lease_duration_seconds / 4),
                             self._loop(self.update_status,
                                        self.cfg.node_status_update_frequency))

    async def _loop(self, fn, period: float) -> None:
        while True:
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("node %s: %s failed: %s", self.name, fn.__name__, exc)
            await asyncio.sleep(period)
