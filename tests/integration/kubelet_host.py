"""A sandbox host made ready for the kubelet: containerd converged by the
containerd role over SSH with the toolkit's busybox and pause images, and the
loopback API server made reachable from the host through a relay on the
sandbox bridge's gateway address (only there: the relay binds that one IP).

The API server's certificate names 127.0.0.1, so kubeconfigs for the host carry
``tls-server-name: 127.0.0.1`` while their server is the relay.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path

import yaml
from cri_api.v1 import api_pb2, api_pb2_grpc

from bootstrap.config.inventory import load_inventory
from bootstrap.engine import Play, run_play
from bootstrap.images import build, busybox_spec, pause_spec
from bootstrap.remote.pool import close_all, connect_all
from bootstrap.sandbox import state as sandbox_state

SOCKET = "/run/containerd/containerd.sock"


class Relay:
    """TCP relay ``bind_ip:port`` -> ``127.0.0.1:target`` in threads."""

    def __init__(self, bind_ip: str, target: int):
        self.target = target
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((bind_ip, 0))
        self.sock.listen(64)
        self.address = f"{bind_ip}:{self.sock.getsockname()[1]}"
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                conn.close()
                continue
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop = True
        self.sock.close()


def gateway(name: str) -> str:
    subnet = sandbox_state.load(name).subnet
    return subnet.rsplit(".", 1)[0] + ".1"


def host_socket(name: str, host: str) -> str:
    h = sandbox_state.load(name).hosts[host]
    return f"/proc/{h.init_pid}/root{SOCKET}"


def retarget(kubeconfig: Path, server: str, out: Path) -> Path:
    """A copy of ``kubeconfig`` pointing at ``server`` with the cert's name pinned."""
    cfg = yaml.safe_load(kubeconfig.read_text())
    for c in cfg["clusters"]:
        c["cluster"]["server"] = f"https://{server}"
        c["cluster"]["tls-server-name"] = "127.0.0.1"
    out.write_text(yaml.safe_dump(cfg))
    out.chmod(0o600)
    return out


def converge_containerd(inventory: Path, images: Path) -> None:
    build(busybox_spec(), images)
    build(pause_spec(), images)
    inv = load_inventory(inventory)
    conns = connect_all(list(inv.hosts.values()))
    try:
        recap = run_play(Play("node", ["all"], ["containerd"]), inv, conns,
                         extra_vars={"containerd_images_local": str(images),
                                     "registry_enabled": False}, dry_run=False)
        recap.raise_on_failure()
    finally:
        close_all(conns)


def ssh(inventory_key: Path, known_hosts: Path, ip: str, script: str, *, timeout: float = 60,
        check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(
        ["ssh", "-i", str(inventory_key), "-o", f"UserKnownHostsFile={known_hosts}",
         "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", f"root@{ip}", script],
        capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{ip}: {script[:100]!r} failed ({r.returncode}): "
                           f"{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return r


class CRI:
    """A plain CRI client on a host's socket (for checks, and the benchmark's floor)."""

    def __init__(self, path: str):
        import grpc
        self.channel = grpc.insecure_channel(f"unix:{path}")
        self.runtime = api_pb2_grpc.RuntimeServiceStub(self.channel)
        self.images = api_pb2_grpc.ImageServiceStub(self.channel)

    def sandboxes(self, uid: str | None = None) -> list:
        flt = api_pb2.PodSandboxFilter(
            label_selector={"io.kubernetes.pod.uid": uid} if uid else {})
        return list(self.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest(filter=flt),
                                                timeout=30).items)

    def containers(self, uid: str | None = None) -> list:
        flt = api_pb2.ContainerFilter(
            label_selector={"io.kubernetes.pod.uid": uid} if uid else {})
        return list(self.runtime.ListContainers(api_pb2.ListContainersRequest(filter=flt),
                                                timeout=30).containers)

    def close(self) -> None:
        self.channel.close()
