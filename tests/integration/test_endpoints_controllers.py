"""endpoint and endpointslice controllers against the real API server on real
etcd, driven with the real kubectl: fake pods (marked Running/Ready with IPs
through pods/status by the test) behind a Service. The controllers run in this
process under their upstream identities (system:serviceaccount:kube-system:
endpoint[slice]-controller, x509), so the default RBAC roles are exercised."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading

import pytest

from bootstrap.agents.controllers.endpoints import EndpointsController
from bootstrap.agents.controllers.endpointslice import EndpointSliceController
from bootstrap.api.client import Client
from bootstrap.api.informer import SharedInformerFactory

from .cluster import eventually, running_cluster

pytestmark = pytest.mark.timeout(180)
SA = "system:serviceaccount:kube-system:"


def kubectl(kubeconfig, *args, input=None, check=True):
    proc = subprocess.run(["/usr/bin/kubectl", f"--kubeconfig={kubeconfig}", *args],
                          input=input, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr}")
    return proc


class Controllers:
    """The two controllers on their own event loop in a thread, stopped on exit."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def _run(self):
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:  # reported by stop()
            self.error = exc

    async def _main(self):
        clients = [Client.from_kubeconfig(self.cluster.kubeconfig(SA + name))
                   for name in ("endpoint-controller", "endpointslice-controller")]
        ctls = []
        factories = []
        for client, cls in zip(clients, (EndpointsController, EndpointSliceController),
                               strict=True):
            factory = SharedInformerFactory(client)
            factories.append(factory)
            ctls.append(cls(client, factory))
        self.task = asyncio.current_task()
        runs = [asyncio.create_task(c.run()) for c in ctls]
        for f in factories:
            f.start()
            await f.wait_synced(timeout=30)
        self.ready.set()
        try:
            await asyncio.gather(*runs)
        except asyncio.CancelledError:
            pass
        finally:
            for r in runs:
                r.cancel()
            await asyncio.gather(*runs, return_exceptions=True)
            for f in factories:
                await f.stop()
            for c in clients:
                await c.close()

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(60), f"controllers did not start: {self.error!r}"
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(30)
        assert not self.thread.is_alive()


NODE = {"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-a", "labels": {"topology.kubernetes.io/zone": "zone-1"}}}
SERVICE = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
           "spec": {"selector": {"app": "web"},
                    "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


def pod(name, port):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
            "spec": {"nodeName": "node-a", "containers": [{
                "name": "c", "image": "busybox",
                "ports": [{"name": "http", "containerPort": port}]}]}}


def set_status(kc, name, ip, ready):
    status = {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                         "conditions": [{"type": "Ready",
                                         "status": "True" if ready else "False"}]}}
    kubectl(kc, "patch", "pod", name, "--subresource=status", "--type=merge",
            "-p", json.dumps(status))


def slices(kc):
    out = kubectl(kc, "get", "endpointslices", "-l", "kubernetes.io/service-name=web",
                  "-o", "json").stdout
    return json.loads(out)["items"]


def slice_view(kc):
    return sorted((e["addresses"][0], e["conditions"]["ready"], s["ports"][0]["port"]
                   if s.get("ports") else None)
                  for s in slices(kc) for e in s.get("endpoints") or [])


def endpoints_view(kc):
    proc = kubectl(kc, "get", "endpoints", "web", "-o", "json", check=False)
    if proc.returncode:
        return None
    subsets = json.loads(proc.stdout).get("subsets") or []
    return sorted((a["ip"], key == "addresses", s["ports"][0]["port"])
                  for s in subsets for key in ("addresses", "notReadyAddresses")
                  for a in s.get(key) or [])


@pytest.fixture(scope="module")
def cluster():
    with running_cluster() as c:
        yield c


def test_service_endpoints_follow_pods(cluster):
    kc = cluster.admin
    # No serviceaccount controller here: the admission plugin needs the default SA.
    kubectl(kc, "create", "serviceaccount", "default", check=False)
    with Controllers(cluster):
        for obj in (NODE, SERVICE, pod("web-1", 8080), pod("web-2", 9090)):
            kubectl(kc, "apply", "-f", "-", input=json.dumps(obj))
        # Pods without IPs are not endpoints; the Service has its placeholder slice.
        assert eventually(lambda: len(slices(kc)) == 1)
        assert slice_view(kc) == []
        set_status(kc, "web-1", "10.244.1.10", True)
        set_status(kc, "web-2", "10.244.1.11", False)
        # named port resolved per pod: two port sets, two slices
        want = [("10.244.1.10", True, 8080), ("10.244.1.11", False, 9090)]
        assert eventually(lambda: slice_view(kc) == want), slice_view(kc)
        assert eventually(lambda: endpoints_view(kc) == want), endpoints_view(kc)
        s = next(s for s in slices(kc) if s.get("endpoints"))
        assert s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == \
            "endpointslice-controller.k8s.io"
        assert s["metadata"]["ownerReferences"][0]["kind"] == "Service"
        assert s["endpoints"][0]["zone"] == "zone-1" and s["addressType"] == "IPv4"
        # readiness change
        set_status(kc, "web-2", "10.244.1.11", True)
        want = [("10.244.1.10", True, 8080), ("10.244.1.11", True, 9090)]
        assert eventually(lambda: slice_view(kc) == want), slice_view(kc)
        assert eventually(lambda: endpoints_view(kc) == want), endpoints_view(kc)
        # deletion
        kubectl(kc, "delete", "pod", "web-1", "--grace-period=0", "--force", "--wait=false")
        want = [("10.244.1.11", True, 9090)]
        assert eventually(lambda: slice_view(kc) == want), slice_view(kc)
        assert eventually(lambda: endpoints_view(kc) == want), endpoints_view(kc)
        # the kubernetes Service's objects stay the API server's
        k8s = json.loads(kubectl(kc, "get", "endpointslices", "-n", "default",
                                 "kubernetes", "-o", "json").stdout)
        assert "endpointslice.kubernetes.io/managed-by" not in k8s["metadata"].get("labels", {})
        # Service deleted: its Endpoints and slices go
        kubectl(kc, "delete", "service", "web")
        assert eventually(lambda: endpoints_view(kc) is None)
        assert eventually(lambda: slices(kc) == [])


def test_controller_identities_are_limited(cluster):
    """The endpoint controller's credentials cannot write slices, and an
    unknown user cannot read the pods the controllers need."""
    kc = cluster.kubeconfig(SA + "endpoint-controller")
    body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "forged", "namespace": "default"},
            "addressType": "IPv4", "endpoints": []}
    proc = kubectl(kc, "create", "-f", "-", input=json.dumps(body), check=False)
    assert proc.returncode != 0 and "forbidden" in proc.stderr.lower()
    nobody = cluster.kubeconfig("mallory")
    proc = kubectl(nobody, "get", "pods", "-A", check=False)
    assert proc.returncode != 0 and "forbidden" in proc.stderr.lower()
