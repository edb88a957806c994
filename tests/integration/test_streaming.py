"""kubectl exec, attach, port-forward and cp through the API server to a kubelet on containerd.

A sandbox host runs containerd (converged by roles/containerd) and a kubelet
HTTPS server with the streaming endpoints (``stream_kubelet``: the real
``bootstrap.agents.kubelet.streaming`` behind mTLS); pods are started on that
containerd through the CRI with the kubelet's labels, and their API objects are
bound to the node. The API server runs on the machine (running real etcd) and
reaches the kubelet at the node's InternalIP with its kubelet-client pair,
verifying the kubelet's serving certificate with the cluster CA.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import grpc
import pytest
from cri_api.v1 import api_pb2 as cri
from cri_api.v1 import api_pb2_grpc as cri_grpc

from bootstrap import sandbox
from bootstrap.config.inventory import load_inventory
from bootstrap.engine import Play, run_play
from bootstrap.images import BUSYBOX_REF, build, busybox_spec, pause_spec
from bootstrap.pki import CLIENT_AUTH, SERVER_AUTH, CertSpec, load_ca
from bootstrap.pki.certs import cert_to_pem, sign_leaf
from bootstrap.pki.keys import generate_key, key_to_pem
from bootstrap.remote.pool import close_all, connect_all
from bootstrap.sandbox import state as sandbox_state

from .cluster import ROOT, Cluster

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(900)]

SANDBOX = os.environ.get("BOOTSTRAP_E2E_PREFIX", "") + "rtst"
NODE = f"{SANDBOX}-1"
KUBELET_PORT = 10250
POD_CIDR = "10.244.21.0/24"
CONFLIST = {
    "cniVersion": "0.4.0", "name": "rtst",
    "plugins": [{"type": "bridge", "bridge": "cni0", "isGateway": True,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_CIDR}]]}},
                {"type": "portmap", "capabilities": {"portMappings": True}},
                {"type": "loopback"}],
}


def kubectl(kc, *args, stdin: str | None = None, check: bool = True, timeout: float = 60):
    proc = subprocess.run(["/usr/bin/kubectl", f"--kubeconfig={kc}", *args], input=stdin,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
    return proc


def _write_pair(d: Path, name: str, spec: CertSpec, ca) -> tuple[str, str]:
    key = generate_key("ECDSA-P256")
    cert = sign_leaf(spec, key.public_key(), ca.cert, ca.key, timedelta(days=1))
    (d / f"{name}.crt").write_bytes(cert_to_pem(cert))
    (d / f"{name}.key").write_bytes(key_to_pem(key))
    return str(d / f"{name}.crt"), str(d / f"{name}.key")


class Pods:
    """Pod sandboxes and containers on the host's containerd, labelled as the kubelet does."""

    def __init__(self, socket_path: str):
        self.channel = grpc.insecure_channel(f"unix:{socket_path}")
        self.rt = cri_grpc.RuntimeServiceStub(self.channel)
        self.sandboxes: list[str] = []

    def run(self, name: str, uid: str, containers: dict[str, list[str]]) -> None:
        labels = {"io.kubernetes.pod.namespace": "default", "io.kubernetes.pod.name": name,
                  "io.kubernetes.pod.uid": uid}
        cfg = cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(name=name, namespace="default", uid=uid),
            hostname=name, labels=labels, log_directory=f"/var/log/pods/default_{name}_{uid}",
            linux=cri.LinuxPodSandboxConfig(cgroup_parent=f"/kubepods/pod{uid}"))
        sid = self.rt.RunPodSandbox(cri.RunPodSandboxRequest(config=cfg), timeout=60).pod_sandbox_id
        self.sandboxes.append(sid)
        for cname, command in containers.items():
            ccfg = cri.ContainerConfig(
                metadata=cri.ContainerMetadata(name=cname), image=cri.ImageSpec(image=BUSYBOX_REF),
                command=command, log_path=f"{cname}/0.log", stdin=True,
                labels={**labels, "io.kubernetes.container.name": cname})
            cid = self.rt.CreateContainer(cri.CreateContainerRequest(
                pod_sandbox_id=sid, config=ccfg, sandbox_config=cfg), timeout=60).container_id
            self.rt.StartContainer(cri.StartContainerRequest(container_id=cid), timeout=60)

    def close(self) -> None:
        for sid in self.sandboxes:
            self.rt.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=sid), timeout=60)
            self.rt.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=sid), timeout=60)
        self.channel.close()


def _pod(name: str, uid_containers: dict[str, list[str]], node: str | None) -> dict:
    spec = {"containers": [{"name": c, "image": "busybox:1.35", "command": cmd}
                           for c, cmd in uid_containers.items()]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": spec}


WEB = {"web": ["httpd", "-f", "-p", "8080", "-h", "/etc"],
       "side": ["sh", "-c", "while true; do echo tick; sleep 1; done"]}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    work = tmp_path_factory.mktemp("rtst")
    images = work / "images"
    build(busybox_spec(), images)
    build(pause_spec(), images)
    cluster = Cluster()
    # The API server verifies the kubelet's serving certificate with the cluster CA.
    cluster.extra.append(f"--kubelet-certificate-authority={cluster.pki.path('ca.crt')}")
    kubelet = pods = None
    try:
        inv = load_inventory(sandbox.up(SANDBOX, 1))
        conns = connect_all(list(inv.hosts.values()))
        try:
            run_play(Play("node", ["all"], ["containerd"]), inv, conns, extra_vars={
                "containerd_images_local": str(images), "registry_enabled": False},
                dry_run=False).raise_on_failure()
            conns[NODE].run("cat > /etc/cni/net.d/10-rtst.conflist", input=json.dumps(CONFLIST))
        finally:
            close_all(conns)
        host = sandbox_state.load(SANDBOX).hosts[NODE]
        socket_path = f"/proc/{host.init_pid}/root/run/containerd/containerd.sock"
        cluster.start()
        ca = load_ca(cluster.pki.dir, "ca")
        import ipaddress
        crt, key = _write_pair(work, "kubelet", CertSpec(
            f"system:node:{NODE}", ("system:nodes",), (SERVER_AUTH,), dns_names=(NODE,),
            ips=(ipaddress.ip_address(host.ip),)), ca)
        kubelet = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{host.netns}", "--", sys.executable, "-m",
             "tests.integration.stream_kubelet", "--runtime-endpoint", socket_path,
             "--listen", f"{host.ip}:{KUBELET_PORT}", "--cert", crt, "--key", key,
             "--client-ca", cluster.pki.path("ca.crt")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert kubelet.stdout.readline().strip() == "ready"
        admin = cluster.kubeconfig("kubernetes-admin", ("system:masters",))
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}
        kubectl(admin, "create", "-f", "-", stdin=json.dumps(node))
        kubectl(admin, "patch", "node", NODE, "--subresource=status", "--type=merge", "-p",
                json.dumps({"status": {
                    "addresses": [{"type": "InternalIP", "address": host.ip},
                                  {"type": "Hostname", "address": NODE}],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_PORT}}}}))
        kubectl(admin, "create", "serviceaccount", "default")  # no controller manager here
        pods = Pods(socket_path)
        kubectl(admin, "create", "-f", "-", stdin=json.dumps(_pod("web", WEB, NODE)))
        uid = json.loads(kubectl(admin, "get", "pod", "web", "-o", "json").stdout)["metadata"]["uid"]
        pods.run("web", uid, WEB)
        # What the kubelet would report; kubectl port-forward checks it first.
        kubectl(admin, "patch", "pod", "web", "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": {"phase": "Running"}}))
        kubectl(admin, "create", "-f", "-",
                stdin=json.dumps(_pod("pending", {"c": ["sleep", "1000"]}, None)))
        yield SimpleNamespace(cluster=cluster, admin=admin, host=host, work=work)
    finally:
        if pods is not None:
            pods.close()
        if kubelet is not None:
            kubelet.terminate()
            kubelet.wait(10)
        cluster.stop()
        sandbox.down(SANDBOX)


def test_exec_echo(env):
    out = kubectl(env.admin, "exec", "web", "-c", "web", "--", "echo", "hello", "world")
    assert out.stdout == "hello world\n"


def test_exec_websocket_refused_by_containerd_falls_back_to_spdy(env):
    # containerd 1.6 speaks channel.k8s.io up to v4, kubectl 1.32 asks for v5 only: the
    # runtime's refusal reaches kubectl unchanged and it retries with SPDY (ADR 0004).
    out = kubectl(env.admin, "exec", "-v=4", "web", "-c", "web", "--", "echo", "ok")
    assert out.stdout == "ok\n"
    assert "fallback" in out.stderr.lower()


def test_exec_exit_code_and_stderr(env):
    out = kubectl(env.admin, "exec", "web", "-c", "web", "--", "sh", "-c",
                  "echo oops >&2; exit 3", check=False)
    assert out.returncode == 3
    assert "oops" in out.stderr


def test_exec_stdin_reaches_eof(env):
    # cat only exits when stdin is closed: the half-close must pass every hop.
    data = "line one\nline two\n" * 100
    out = kubectl(env.admin, "exec", "-i", "web", "-c", "web", "--", "cat", stdin=data)
    assert out.stdout == data


def test_cp_both_ways(env):
    src = env.work / "payload.txt"
    src.write_text("copied through tar\n" * 50)
    kubectl(env.admin, "cp", str(src), "default/web:/tmp/payload.txt", "-c", "web")
    assert kubectl(env.admin, "exec", "web", "-c", "web", "--", "cat",
                   "/tmp/payload.txt").stdout == src.read_text()
    back = env.work / "back.txt"
    kubectl(env.admin, "cp", "default/web:/tmp/payload.txt", str(back), "-c", "web")
    assert back.read_text() == src.read_text()


def test_attach_streams_the_container_output(env):
    proc = subprocess.Popen(["/usr/bin/kubectl", f"--kubeconfig={env.admin}", "attach", "web",
                             "-c", "side"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "tick"
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.parametrize("websocket", ["true", "false"], ids=["websocket-tunnel", "spdy"])
def test_port_forward_to_httpd(env, websocket):
    # kubectl 1.32 tunnels SPDY through a WebSocket by default; "false" makes it speak SPDY.
    proc = subprocess.Popen(["/usr/bin/kubectl", f"--kubeconfig={env.admin}", "port-forward",
                             "-v=4", "pod/web", ":8080"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "KUBECTL_PORT_FORWARD_WEBSOCKETS": websocket})
    try:
        line = proc.stdout.readline()  # "Forwarding from 127.0.0.1:PORT -> 8080"
        assert "-> 8080" in line, line + proc.stderr.read()
        port = int(line.split("127.0.0.1:")[1].split()[0])
        import urllib.request
        for _ in range(2):  # two connections over the one forwarding session
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/hostname", timeout=10) as r:
                assert r.read().decode().strip() == "web"
    finally:
        proc.terminate()
        proc.wait(10)
    # The WebSocket path worked by itself: kubectl did not fall back to SPDY.
    assert "fallback" not in proc.stderr.read().lower()


def test_python_client_exec_over_websocket(env):
    from kubernetes import client, config
    from kubernetes.stream import stream
    api = client.CoreV1Api(config.new_client_from_config(str(env.admin)))
    out = stream(api.connect_get_namespaced_pod_exec, "web", "default", container="web",
                 command=["echo", "via websocket"], stderr=True, stdin=False, stdout=True,
                 tty=False)
    assert out == "via websocket\n"


def test_container_required_and_validated(env):
    out = kubectl(env.admin, "exec", "web", "--", "true", check=False)
    # kubectl picks the first container itself; the raw API refuses to guess.
    assert out.returncode == 0
    bad = kubectl(env.admin, "exec", "web", "-c", "nope", "--", "true", check=False)
    assert "container nope is not valid for pod web" in bad.stderr
    raw = _raw_ws(env, "/api/v1/namespaces/default/pods/web/exec?command=true&stdout=1")
    assert raw[0] == 400
    assert raw[1]["message"] == ("a container name must be specified for pod web, "
                                 "choose one of: [web side]")


def test_unbound_pod_is_bad_request(env):
    out = kubectl(env.admin, "exec", "pending", "--", "true", check=False)
    assert "pod pending does not have a host assigned" in out.stderr
    # Logs of a pod no node runs yet are an empty stream, as upstream's LogLocation.
    logs = kubectl(env.admin, "get", "--raw", "/api/v1/namespaces/default/pods/pending/log")
    assert logs.stdout == ""
    status, body = _raw_ws(env, "/api/v1/namespaces/default/pods/pending/exec?command=true")
    assert status == 400 and body["reason"] == "BadRequest"


def _grant(env, user: str, resources: list[str], verbs: list[str]) -> Path:
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": user, "namespace": "default"},
            "rules": [{"apiGroups": [""], "resources": resources, "verbs": verbs}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": user, "namespace": "default"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user},
               "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}]}
    for obj in (role, binding):
        kubectl(env.admin, "create", "-f", "-", stdin=json.dumps(obj))
    return env.cluster.kubeconfig(user)


def test_user_without_exec_permission_is_forbidden(env):
    kc = _grant(env, "viewer", ["pods"], ["get", "list"])
    out = kubectl(kc, "exec", "web", "-c", "web", "--", "echo", "hi", check=False)
    assert out.returncode != 0
    assert 'cannot create resource "pods/exec"' in out.stderr
    pf = kubectl(kc, "port-forward", "pod/web", ":8080", check=False, timeout=30)
    assert 'cannot create resource "pods/portforward"' in pf.stderr


def test_get_on_exec_is_not_enough_for_a_websocket(env):
    # A WebSocket upgrade is a GET; upstream also requires create, so get alone is refused.
    kc = _grant(env, "getter", ["pods", "pods/exec"], ["get"])
    ctx = env.cluster.ssl_context("getter", groups=())
    status, body = _raw_ws(env, "/api/v1/namespaces/default/pods/web/exec?container=web"
                                "&command=true&stdout=1", ctx=ctx)
    assert status == 403 and body["reason"] == "Forbidden"
    assert 'cannot create resource "pods/exec"' in body["message"]
    assert kubectl(kc, "exec", "web", "-c", "web", "--", "true", check=False).returncode != 0


def test_forged_credentials_are_refused(env, tmp_path):
    from bootstrap.config.model import ClusterConfig
    from bootstrap.pki import ensure_cas, write_kubeconfig
    ensure_cas(tmp_path / "evil", ClusterConfig())
    forged = tmp_path / "forged.kubeconfig"
    write_kubeconfig(forged, cluster_name="kubernetes", server=env.cluster.server.url,
                     ca=load_ca(tmp_path / "evil", "ca"),
                     spec=CertSpec("kubernetes-admin", ("system:masters",), (CLIENT_AUTH,)),
                     validity=timedelta(days=1))
    # A client certificate from another CA fails the TLS handshake, as upstream's does.
    out = kubectl(forged, "--insecure-skip-tls-verify", "exec", "web", "-c", "web", "--",
                  "echo", "pwned", check=False)
    assert out.returncode != 0 and "pwned" not in out.stdout
    # A bearer token nobody issued is 401.
    out = subprocess.run(["/usr/bin/kubectl", f"--server={env.cluster.server.url}",
                          f"--certificate-authority={env.cluster.pki.path('ca.crt')}",
                          "--token=abcdef.0123456789abcdef", "exec", "web", "-c", "web", "--",
                          "echo", "pwned"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "pwned" not in out.stdout
    assert "Unauthorized" in out.stderr or "must be logged in" in out.stderr


def test_kubelet_refuses_clients_without_the_apiserver_certificate(env):
    ctx = ssl.create_default_context(cafile=env.cluster.pki.path("ca.crt"))
    url = f"https://{env.host.ip}:{KUBELET_PORT}/exec/default/web/web?command=true&stdout=1"

    async def go():
        async with aiohttp.ClientSession() as s:
            async with s.get(url, ssl=ctx) as r:
                return r.status

    with pytest.raises((aiohttp.ClientError, ssl.SSLError, OSError)):
        asyncio.run(go())


def test_kubelet_unknown_container_is_404_through_the_apiserver(env):
    # The API object names a container containerd does not run: the kubelet says so.
    kubectl(env.admin, "create", "-f", "-", stdin=json.dumps(
        _pod("ghost", {"g": ["sleep", "1"]}, NODE)))
    out = kubectl(env.admin, "exec", "ghost", "--", "true", check=False)
    assert out.returncode != 0
    assert 'container not found ("g")' in out.stderr


def _raw_ws(env, path: str, ctx: ssl.SSLContext | None = None) -> tuple[int, dict]:
    """A WebSocket upgrade GET as kubectl sends it, for requests that must be refused:
    (status, Status body)."""
    ctx = ctx or env.cluster.ssl_context()

    async def go():
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
            async with s.get(env.cluster.server.url + path, ssl=ctx, headers={
                    "Connection": "Upgrade", "Upgrade": "websocket",
                    "Sec-WebSocket-Version": "13", "Sec-WebSocket-Protocol": "v5.channel.k8s.io",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}) as r:
                assert r.status != 101
                return r.status, await r.json(content_type=None)

    return asyncio.run(go())


def test_nodes_proxy_needs_its_own_permission(env):
    kc = _grant(env, "noproxy", ["pods"], ["get"])
    out = kubectl(kc, "get", "--raw", f"/api/v1/nodes/{NODE}/proxy/healthz", check=False)
    assert 'cannot get resource "nodes/proxy"' in out.stderr
    assert kubectl(env.admin, "get", "--raw", f"/api/v1/nodes/{NODE}/proxy/healthz").stdout == "ok"
    missing = kubectl(env.admin, "get", "--raw", "/api/v1/nodes/no-such-node/proxy/healthz",
                      check=False)
    assert 'nodes "no-such-node" not found' in missing.stderr


def test_unknown_pod_and_bad_ports_are_client_errors(env):
    status, body = _raw_ws(env, "/api/v1/namespaces/default/pods/nope/exec?command=true")
    assert (status, body["reason"]) == (404, "NotFound")
    assert body["message"] == 'pods "nope" not found'
    status, body = _raw_ws(env, "/api/v1/namespaces/default/pods/web/portforward?ports=99999")
    assert (status, body["reason"]) == (400, "BadRequest")
