"""Shared steps of the service-networking e2e modules: the API server reached
from sandbox hosts, the endpointslice controller in this process, kube-proxy
and DNS as units on the hosts, and HTTP/DNS probes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import yaml

from bootstrap.agents.controllers.endpointslice import EndpointSliceController
from bootstrap.api.client import Client
from bootstrap.api.informer import SharedInformerFactory

PYTHON = sys.executable
CLUSTER_CIDR = "10.244.0.0/16"
DNS_IP = "10.96.0.10"
SA = "system:serviceaccount:kube-system:"


def kubectl(kubeconfig, *args, input=None, check=True):
    r = subprocess.run(["/usr/bin/kubectl", f"--kubeconfig={kubeconfig}", *args],
                       capture_output=True, text=True, input=input, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {r.stderr}")
    return r.stdout


def apply(kubeconfig, *objs):
    kubectl(kubeconfig, "apply", "-f", "-", input=yaml.safe_dump_all(objs))


class SliceController:
    """The endpointslice controller on its own loop in a thread."""

    def __init__(self, kubeconfig):
        self.kubeconfig = kubeconfig
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=lambda: self.loop.run_until_complete(
            self._main()), daemon=True)
        self.started = threading.Event()

    async def _main(self):
        client = Client.from_kubeconfig(self.kubeconfig)
        factory = SharedInformerFactory(client)
        self.task = asyncio.create_task(EndpointSliceController(client, factory).run())
        self.started.set()
        try:
            await self.task
        except asyncio.CancelledError:
            pass
        finally:
            await factory.stop()
            await client.close()

    def start(self):
        self.thread.start()
        self.started.wait(30)

    def stop(self):
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(30)


def proxy_config(work: Path, kubeconfig: Path, host) -> Path:
    path = work / f"proxy-{host.name}.yaml"
    path.write_text(yaml.safe_dump({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables", "clusterCIDR": CLUSTER_CIDR, "hostnameOverride": host.name,
        "healthzBindAddress": f"{host.ip}:10256", "metricsBindAddress": "127.0.0.1:10249",
        "iptables": {"syncPeriod": "30s", "minSyncPeriod": "200ms"}}))
    return path


def start_proxy(host, config: Path) -> None:
    host.sh(f"systemd-run --unit px-proxy --collect {PYTHON} -m bootstrap.agents.proxy "
            f"--config {config} -v 2")


def start_dns(host, kubeconfig: Path, resolv: Path) -> None:
    host.sh(f"systemd-run --unit px-dns --collect {PYTHON} -m bootstrap.agents.dns "
            f"--kubeconfig {kubeconfig} --listen {host.ip}:53 "
            f"--health-address {host.ip}:8080 --metrics-address {host.ip}:9153 "
            f"--node-name {host.name} --register-address {host.ip} "
            f"--service-cluster-ip {DNS_IP} --resolv-conf {resolv}")


def machine_fetch(url):
    r = subprocess.run(["curl", "-s", "--max-time", "3", url], capture_output=True, text=True,
                       timeout=10)
    return r.stdout.strip() if r.returncode == 0 else None


def cleanup_host(host) -> None:
    """Stop our units and run upstream's --cleanup; then nothing of ours is left."""
    host.sh("systemctl stop px-proxy px-dns 2>/dev/null; true")
    host.sh(f"{PYTHON} -m bootstrap.agents.proxy --cleanup")
    assert "KUBE-" not in host.sh("iptables-save").stdout
    assert host.sh("ip route show proto 200").stdout.strip() == ""
