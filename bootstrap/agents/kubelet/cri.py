"""A small async client for the CRI (runtime.v1) over gRPC, as the kubelet uses it.

Methods take and return the generated protobuf messages (cri_api.v1.api_pb2), so
the pure translation in translate.py builds exactly what goes on the wire.
``FakeRuntime`` (fakeruntime.py) implements the same surface for unit tests.
Errors are grpc.aio.AioRpcError; ``not_found(exc)`` tells a vanished object apart.
"""

from __future__ import annotations

import grpc
from cri_api.v1 import api_pb2 as cri
from cri_api.v1 import api_pb2_grpc as cri_grpc

# Large messages (ListContainers on a busy node, ExecSync output) exceed gRPC's 4 MiB
# default; upstream's kubelet uses 16 MiB.
MAX_MESSAGE = 16 * 1024 * 1024


class NotFound(Exception):
    """Raised by FakeRuntime where containerd answers NOT_FOUND."""


def not_found(exc: BaseException) -> bool:
    if isinstance(exc, NotFound):
        return True
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.NOT_FOUND


def grpc_target(endpoint: str) -> str:
    """``unix:///run/containerd/containerd.sock`` (the kubelet flag) -> a gRPC target."""
    if endpoint.startswith("unix://"):
        return "unix:" + endpoint[len("unix://"):]
    if endpoint.startswith("/"):
        return "unix:" + endpoint
    return endpoint


class RuntimeClient:
    def __init__(self, endpoint: str, *, timeout: float = 120.0):
        self.endpoint = endpoint
        self.timeout = timeout
        self.channel = grpc.aio.insecure_channel(
            grpc_target(endpoint),
            options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                     ("grpc.max_send_message_length", MAX_MESSAGE)])
        self.runtime = cri_grpc.RuntimeServiceStub(self.channel)
        self.images = cri_grpc.ImageServiceStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()

    # runtime ------------------------------------------------------------------------

    async def version(self) -> cri.VersionResponse:
        return await self.runtime.Version(cri.VersionRequest(version="v1"), timeout=self.timeout)

    async def status(self) -> cri.StatusResponse:
        return await self.runtime.Status(cri.StatusRequest(), timeout=self.timeout)

    async def run_pod_sandbox(self, config: cri.PodSandboxConfig) -> str:
        resp = await self.runtime.RunPodSandbox(cri.RunPodSandboxRequest(config=config),
                                                timeout=self.timeout)
        return resp.pod_sandbox_id

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        await self.runtime.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=sandbox_id),
                                          timeout=self.timeout)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        await self.runtime.RemovePodSandbox(
            cri.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id), timeout=self.timeout)

    async def pod_sandbox_status(self, sandbox_id: str) -> cri.PodSandboxStatus:
        resp = await self.runtime.PodSandboxStatus(
            cri.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id), timeout=self.timeout)
        return resp.status

    async def list_pod_sandbox(self, labels: dict[str, str] | None = None
                               ) -> list[cri.PodSandbox]:
        flt = cri.PodSandboxFilter(label_selector=labels or {})
        resp = await self.runtime.ListPodSandbox(cri.ListPodSandboxRequest(filter=flt),
                                                 timeout=self.timeout)
        return list(resp.items)

    async def create_container(self, sandbox_id: str, config: cri.ContainerConfig,
                               sandbox_config: cri.PodSandboxConfig) -> str:
        resp = await self.runtime.CreateContainer(cri.CreateContainerRequest(
            pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox_config),
            timeout=self.timeout)
        return resp.container_id

    async def start_container(self, container_id: str) -> None:
        await self.runtime.StartContainer(cri.StartContainerRequest(container_id=container_id),
                                          timeout=self.timeout)

    async def stop_container(self, container_id: str, timeout: int) -> None:
        # The RPC itself may take the whole grace period plus the SIGKILL.
        await self.runtime.StopContainer(
            cri.StopContainerRequest(container_id=container_id, timeout=timeout),
            timeout=self.timeout + timeout)

    async def remove_container(self, container_id: str) -> None:
        await self.runtime.RemoveContainer(cri.RemoveContainerRequest(container_id=container_id),
                                           timeout=self.timeout)

    async def list_containers(self, labels: dict[str, str] | None = None,
                              sandbox_id: str = "") -> list[cri.Container]:
        flt = cri.ContainerFilter(label_selector=labels or {}, pod_sandbox_id=sandbox_id)
        resp = await self.runtime.ListContainers(cri.ListContainersRequest(filter=flt),
                                                 timeout=self.timeout)
        return list(resp.containers)

    async def container_status(self, container_id: str) -> cri.ContainerStatus:
        resp = await self.runtime.ContainerStatus(
            cri.ContainerStatusRequest(container_id=container_id), timeout=self.timeout)
        return resp.status

    async def exec_sync(self, container_id: str, cmd: list[str], timeout: int
                        ) -> cri.ExecSyncResponse:
        return await self.runtime.ExecSync(
            cri.ExecSyncRequest(container_id=container_id, cmd=cmd, timeout=timeout),
            timeout=timeout + 10 if timeout else None)

    # images ---------------------------------------------------------------------------

    async def pull_image(self, image: str, sandbox_config: cri.PodSandboxConfig | None = None,
                         auth: cri.AuthConfig | None = None) -> str:
        resp = await self.images.PullImage(cri.PullImageRequest(
            image=cri.ImageSpec(image=image), auth=auth, sandbox_config=sandbox_config),
            timeout=None)
        return resp.image_ref

    async def image_status(self, image: str) -> cri.Image | None:
        resp = await self.images.ImageStatus(
            cri.ImageStatusRequest(image=cri.ImageSpec(image=image)), timeout=self.timeout)
        return resp.image if resp.HasField("image") and resp.image.id else None

    async def list_images(self) -> list[cri.Image]:
        resp = await self.images.ListImages(cri.ListImagesRequest(), timeout=self.timeout)
        return list(resp.images)

    async def image_fs_info(self) -> cri.ImageFsInfoResponse:
        return await self.images.ImageFsInfo(cri.ImageFsInfoRequest(), timeout=self.timeout)
