"""An in-memory CRI runtime with RuntimeClient's surface, for unit tests.

Sandboxes and containers keep the state machine containerd keeps (created ->
running -> exited; sandboxes ready -> notready), answer with the same protobuf
messages, and raise ``cri.NotFound`` where containerd answers NOT_FOUND. Tests
drive what containerd would decide on its own: a container's process exiting
(``exit``), an image that cannot be pulled (``pull_errors``), exec results
(``exec_handler``).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cri_api.v1 import api_pb2 as cri

from bootstrap.agents.kubelet.cri import NotFound


@dataclass
class _Sandbox:
    id: str
    config: cri.PodSandboxConfig
    created_at: int
    ready: bool = True
    ip: str = ""


@dataclass
class _Container:
    id: str
    sandbox_id: str
    config: cri.ContainerConfig
    created_at: int
    state: int = cri.CONTAINER_CREATED
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    image_ref: str = ""


@dataclass
class FakeRuntime:
    clock: Callable[[], float] = time.time
    images: dict[str, str] = field(default_factory=dict)      # name -> image id
    pull_errors: dict[str, str] = field(default_factory=dict)  # name -> error text
    exec_handler: Callable[[str, list[str]], tuple[int, bytes]] = \
        lambda cid, cmd: (0, b"")
    sandboxes: dict[str, _Sandbox] = field(default_factory=dict)
    containers: dict[str, _Container] = field(default_factory=dict)
    calls: list[tuple] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _ips: itertools.count = field(default_factory=lambda: itertools.count(2))

    def _now(self) -> int:
        return int(self.clock() * 1e9)

    def _sandbox(self, sid: str) -> _Sandbox:
        if sid not in self.sandboxes:
            raise NotFound(f"sandbox {sid} not found")
        return self.sandboxes[sid]

    def _container(self, cid: str) -> _Container:
        if cid not in self.containers:
            raise NotFound(f"container {cid} not found")
        return self.containers[cid]

    # test controls -----------------------------------------------------------------

    def exit(self, cid: str, code: int = 0, reason: str = "") -> None:
        c = self._container(cid)
        c.state, c.exit_code, c.finished_at = cri.CONTAINER_EXITED, code, self._now()
        c.reason = reason or ("Completed" if code == 0 else "Error")

    def kill_sandbox(self, sid: str) -> None:
        self._sandbox(sid).ready = False

    def by_name(self, name: str, *, running: bool | None = None) -> list[_Container]:
        out = [c for c in self.containers.values() if c.config.metadata.name == name]
        if running is not None:
            out = [c for c in out if (c.state == cri.CONTAINER_RUNNING) == running]
        return sorted(out, key=lambda c: c.config.metadata.attempt)

    # runtime -----------------------------------------------------------------------

    async def version(self) -> cri.VersionResponse:
        return cri.VersionResponse(version="0.1.0", runtime_name="fake",
                                   runtime_version="1.0", runtime_api_version="v1")

    async def status(self) -> cri.StatusResponse:
        return cri.StatusResponse(status=cri.RuntimeStatus(conditions=[
            cri.RuntimeCondition(type="RuntimeReady", status=True),
            cri.RuntimeCondition(type="NetworkReady", status=True)]))

    async def run_pod_sandbox(self, config: cri.PodSandboxConfig) -> str:
        self.calls.append(("RunPodSandbox", config.metadata.name))
        sid = f"sb{next(self._ids)}"
        host = config.linux.security_context.namespace_options.network == cri.NODE
        self.sandboxes[sid] = _Sandbox(sid, config, self._now(),
                                       ip="" if host else f"10.244.0.{next(self._ips)}")
        return sid

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        self.calls.append(("StopPodSandbox", sandbox_id))
        sb = self.sandboxes.get(sandbox_id)
        if sb is None:
            return
        sb.ready = False
        for c in self.containers.values():
            if c.sandbox_id == sandbox_id and c.state == cri.CONTAINER_RUNNING:
                self.exit(c.id, 137, "Error")

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        self.calls.append(("RemovePodSandbox", sandbox_id))
        self.sandboxes.pop(sandbox_id, None)
        for cid in [c.id for c in self.containers.values() if c.sandbox_id == sandbox_id]:
            del self.containers[cid]

    async def pod_sandbox_status(self, sandbox_id: str) -> cri.PodSandboxStatus:
        sb = self._sandbox(sandbox_id)
        return cri.PodSandboxStatus(
            id=sb.id, metadata=sb.config.metadata,
            state=cri.SANDBOX_READY if sb.ready else cri.SANDBOX_NOTREADY,
            created_at=sb.created_at, network=cri.PodSandboxNetworkStatus(ip=sb.ip),
            linux=cri.LinuxPodSandboxStatus(namespaces=cri.Namespace(
                options=sb.config.linux.security_context.namespace_options)),
            labels=sb.config.labels, annotations=sb.config.annotations)

    async def list_pod_sandbox(self, labels: dict[str, str] | None = None
                               ) -> list[cri.PodSandbox]:
        out = []
        for sb in self.sandboxes.values():
            if all(sb.config.labels.get(k) == v for k, v in (labels or {}).items()):
                out.append(cri.PodSandbox(
                    id=sb.id, metadata=sb.config.metadata, created_at=sb.created_at,
                    state=cri.SANDBOX_READY if sb.ready else cri.SANDBOX_NOTREADY,
                    labels=sb.config.labels, annotations=sb.config.annotations))
        return out

    async def create_container(self, sandbox_id: str, config: cri.ContainerConfig,
                               sandbox_config: cri.PodSandboxConfig) -> str:
        self.calls.append(("CreateContainer", config.metadata.name, config.metadata.attempt))
        self._sandbox(sandbox_id)
        if config.image.image not in self.images and \
                config.image.image not in self.images.values():
            raise NotFound(f"image {config.image.image} not found")
        cid = f"c{next(self._ids)}"
        c = _Container(cid, sandbox_id, cri.ContainerConfig(), self._now())
        c.config.CopyFrom(config)
        c.image_ref = self.images.get(config.image.image, config.image.image)
        self.containers[cid] = c
        return cid

    async def start_container(self, container_id: str) -> None:
        self.calls.append(("StartContainer", container_id))
        c = self._container(container_id)
        c.state, c.started_at = cri.CONTAINER_RUNNING, self._now()

    async def stop_container(self, container_id: str, timeout: int) -> None:
        self.calls.append(("StopContainer", container_id, timeout))
        c = self._container(container_id)
        if c.state == cri.CONTAINER_RUNNING:
            self.exit(container_id, 137 if timeout == 0 else 143, "Error")
        elif c.state == cri.CONTAINER_CREATED:
            c.state, c.finished_at = cri.CONTAINER_EXITED, self._now()

    async def remove_container(self, container_id: str) -> None:
        self.calls.append(("RemoveContainer", container_id))
        c = self.containers.get(container_id)
        if c is not None and c.state == cri.CONTAINER_RUNNING:
            raise RuntimeError(f"container {container_id} is running")
        self.containers.pop(container_id, None)

    async def list_containers(self, labels: dict[str, str] | None = None,
                              sandbox_id: str = "") -> list[cri.Container]:
        out = []
        for c in self.containers.values():
            if sandbox_id and c.sandbox_id != sandbox_id:
                continue
            if all(c.config.labels.get(k) == v for k, v in (labels or {}).items()):
                out.append(cri.Container(id=c.id, pod_sandbox_id=c.sandbox_id,
                                         metadata=c.config.metadata, image=c.config.image,
                                         image_ref=c.image_ref, state=c.state,
                                         created_at=c.created_at, labels=c.config.labels,
                                         annotations=c.config.annotations))
        return out

    async def container_status(self, container_id: str) -> cri.ContainerStatus:
        c = self._container(container_id)
        return cri.ContainerStatus(
            id=c.id, metadata=c.config.metadata, state=c.state, created_at=c.created_at,
            started_at=c.started_at, finished_at=c.finished_at, exit_code=c.exit_code,
            image=c.config.image, image_ref=c.image_ref, reason=c.reason,
            labels=c.config.labels, annotations=c.config.annotations,
            log_path=c.config.log_path)

    async def exec_sync(self, container_id: str, cmd: list[str], timeout: int
                        ) -> cri.ExecSyncResponse:
        self.calls.append(("ExecSync", container_id, tuple(cmd)))
        self._container(container_id)
        code, out = self.exec_handler(container_id, cmd)
        return cri.ExecSyncResponse(stdout=out, exit_code=code)

    # images --------------------------------------------------------------------------

    async def pull_image(self, image: str, sandbox_config=None, auth=None) -> str:
        self.calls.append(("PullImage", image))
        if image in self.pull_errors:
            raise RuntimeError(self.pull_errors[image])
        self.images.setdefault(image, f"sha256:{abs(hash(image)):064x}"[:71])
        return self.images[image]

    async def image_status(self, image: str) -> cri.Image | None:
        if image not in self.images:
            return None
        return cri.Image(id=self.images[image], repo_tags=[image], size=1000)

    async def list_images(self) -> list[cri.Image]:
        return [cri.Image(id=i, repo_tags=[n], size=1000) for n, i in self.images.items()]

    async def image_fs_info(self) -> cri.ImageFsInfoResponse:
        return cri.ImageFsInfoResponse()

    async def close(self) -> None:
        pass
