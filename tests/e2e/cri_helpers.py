"""A plain CRI client for tests: pods and containers on a sandbox host's containerd.

The machine reaches a host's containerd socket through the host's root
(``/proc/<init pid>/root``), the way the kubelet on the host reaches it locally.
"""

from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
from cri_api.v1 import api_pb2, api_pb2_grpc

from bootstrap.sandbox import state as sandbox_state

SOCKET = "/run/containerd/containerd.sock"
RPC_TIMEOUT = 60


def host_socket(sandbox: str, host: str) -> str:
    h = sandbox_state.load(sandbox).hosts[host]
    return f"/proc/{h.init_pid}/root{SOCKET}"


def conflist(name: str, subnet: str, bridge: str = "cni0") -> str:
    """The bridge + host-local + loopback conflist the kubelet would write."""
    return json.dumps({
        "cniVersion": "0.4.0", "name": name,
        "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": False,
             "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "loopback"},
        ],
    }, indent=2)


@dataclass
class CRI:
    channel: grpc.Channel

    @property
    def runtime(self) -> api_pb2_grpc.RuntimeServiceStub:
        return api_pb2_grpc.RuntimeServiceStub(self.channel)

    @property
    def images(self) -> api_pb2_grpc.ImageServiceStub:
        return api_pb2_grpc.ImageServiceStub(self.channel)

    def run_pod(self, name: str, namespace: str = "default") -> tuple[str, api_pb2.PodSandboxConfig]:
        uid = str(uuid.uuid4())
        cfg = api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(name=name, namespace=namespace, uid=uid),
            hostname=name, log_directory=f"/var/log/pods/{namespace}_{name}_{uid}",
            linux=api_pb2.LinuxPodSandboxConfig(cgroup_parent=f"/kubepods/pod{uid}"))
        resp = self.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg),
                                          timeout=RPC_TIMEOUT)
        return resp.pod_sandbox_id, cfg

    def start_container(self, pod_id: str, pod_cfg, name: str, image: str,
                        command: list[str], *, stdin: bool = False, tty: bool = False) -> str:
        cfg = api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name=name), image=api_pb2.ImageSpec(image=image),
            command=command, log_path=f"{name}/0.log", stdin=stdin, tty=tty)
        cid = self.runtime.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=cfg, sandbox_config=pod_cfg),
            timeout=RPC_TIMEOUT).container_id
        self.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid),
                                    timeout=RPC_TIMEOUT)
        return cid

    def pod_ip(self, pod_id: str) -> str:
        st = self.runtime.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod_id),
                                           timeout=RPC_TIMEOUT)
        return st.status.network.ip

    def remove_pod(self, pod_id: str) -> None:
        self.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id),
                                    timeout=RPC_TIMEOUT)
        self.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id),
                                      timeout=RPC_TIMEOUT)

    def remove_all_pods(self) -> None:
        for pod in self.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest(),
                                               timeout=RPC_TIMEOUT).items:
            self.remove_pod(pod.id)


@contextmanager
def cri_client(socket_path: str):
    channel = grpc.insecure_channel(f"unix://{socket_path}")
    try:
        grpc.channel_ready_future(channel).result(timeout=30)
        yield CRI(channel)
    finally:
        channel.close()


@contextmanager
def pod(cri: CRI, name: str):
    """A pod sandbox that is stopped and removed on exit, on failure too."""
    pod_id, cfg = cri.run_pod(name)
    try:
        yield pod_id, cfg
    finally:
        cri.remove_pod(pod_id)
