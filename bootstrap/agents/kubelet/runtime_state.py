"""The runtime's view of one pod, as plain data built from CRI messages.

The pod worker reads it from the runtime (``read_pod``), status.py turns it into
a PodStatus, and sync.py decides what to start or stop from it. Instances are
ordered newest first, so ``[0]`` is the current one and ``[1]`` the previous
(for lastState and ``logs --previous``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cri_api.v1 import api_pb2 as cri

from bootstrap.agents.kubelet import labels as L
from bootstrap.agents.kubelet.cri import not_found

RUNNING, EXITED, CREATED, UNKNOWN = "running", "exited", "created", "unknown"
_STATES = {cri.CONTAINER_CREATED: CREATED, cri.CONTAINER_RUNNING: RUNNING,
           cri.CONTAINER_EXITED: EXITED, cri.CONTAINER_UNKNOWN: UNKNOWN}


@dataclass
class ContainerRecord:
    id: str
    name: str
    attempt: int
    state: str
    sandbox_id: str = ""
    created_at: float = 0.0     # seconds since the epoch
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    image: str = ""
    image_ref: str = ""
    hash: str = ""
    log_path: str = ""

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    @property
    def exited(self) -> bool:
        return self.state in (EXITED, UNKNOWN) or (self.state == CREATED and
                                                   self.finished_at > 0)


@dataclass
class SandboxRecord:
    id: str
    attempt: int
    ready: bool
    created_at: float = 0.0
    ips: tuple[str, ...] = ()
    host_network: bool = False


@dataclass
class PodRuntime:
    uid: str
    sandboxes: list[SandboxRecord] = field(default_factory=list)
    containers: dict[str, list[ContainerRecord]] = field(default_factory=dict)

    @property
    def sandbox(self) -> SandboxRecord | None:
        return self.sandboxes[0] if self.sandboxes else None

    def current(self, name: str) -> ContainerRecord | None:
        items = self.containers.get(name) or []
        return items[0] if items else None

    def previous(self, name: str) -> ContainerRecord | None:
        items = self.containers.get(name) or []
        return items[1] if len(items) > 1 else None

    def all_containers(self) -> list[ContainerRecord]:
        return [c for items in self.containers.values() for c in items]

    @property
    def empty(self) -> bool:
        return not self.sandboxes and not any(self.containers.values())


def _seconds(ns: int) -> float:
    return ns / 1e9 if ns else 0.0


def container_record(status: cri.ContainerStatus, sandbox_id: str = "") -> ContainerRecord:
    return ContainerRecord(
        id=status.id, name=status.metadata.name, attempt=status.metadata.attempt,
        state=_STATES.get(status.state, UNKNOWN), sandbox_id=sandbox_id,
        created_at=_seconds(status.created_at), started_at=_seconds(status.started_at),
        finished_at=_seconds(status.finished_at), exit_code=status.exit_code,
        reason=status.reason, message=status.message, image=status.image.image,
        image_ref=status.image_ref, hash=status.annotations.get(L.CONTAINER_HASH, ""),
        log_path=status.log_path)


def sandbox_record(status: cri.PodSandboxStatus) -> SandboxRecord:
    ips: list[str] = []
    if status.network.ip:
        ips.append(status.network.ip)
    ips.extend(ip.ip for ip in status.network.additional_ips if ip.ip)
    host_net = status.linux.namespaces.options.network == cri.NODE
    return SandboxRecord(id=status.id, attempt=status.metadata.attempt,
                         ready=status.state == cri.SANDBOX_READY,
                         created_at=_seconds(status.created_at), ips=tuple(ips),
                         host_network=host_net)


def sort_records(runtime: PodRuntime) -> PodRuntime:
    runtime.sandboxes.sort(key=lambda s: (s.attempt, s.created_at), reverse=True)
    for items in runtime.containers.values():
        items.sort(key=lambda c: (c.attempt, c.created_at), reverse=True)
    return runtime


async def read_pod(runtime, uid: str) -> PodRuntime:
    """Every sandbox and container the runtime holds for pod ``uid``, with statuses."""
    out = PodRuntime(uid)
    selector = {L.POD_UID: uid}
    for sb in await runtime.list_pod_sandbox(selector):
        try:
            out.sandboxes.append(sandbox_record(await runtime.pod_sandbox_status(sb.id)))
        except Exception as exc:
            if not not_found(exc):
                raise
    for c in await runtime.list_containers(selector):
        try:
            rec = container_record(await runtime.container_status(c.id), c.pod_sandbox_id)
        except Exception as exc:
            if not not_found(exc):
                raise
            continue
        out.containers.setdefault(rec.name, []).append(rec)
    return sort_records(out)
