"""Service networking with real pods: two sandbox hosts with containerd
(converged by the containerd role over SSH) and our kubelet, pods from the
offline busybox image running httpd, and our kube-proxy, node routes and DNS.

The API server runs on the machine and is reached through a relay on the
sandbox bridge's gateway; the kubelets use node client certificates
(system:node:<host>) so no CSR approver is needed; the endpointslice controller
runs in this process. Pods are bound by nodeName (no scheduler needed).

Proves, as a user would see it with kubectl: pod-to-pod across hosts by IP,
a ClusterIP Service reachable from a pod on the other host, a NodePort
reachable from the machine on every host's IP, and `nslookup` of the Service
name from a pod through the kube-dns Service IP (the kubelet's clusterDNS).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import px_net as px
import pytest
import yaml
from e2e_names import sandbox_name

from bootstrap import sandbox
from bootstrap.agents.dns.registration import kube_dns_service
from bootstrap.config.inventory import load_inventory
from bootstrap.flows.apiobjects import dns_rbac as rbac_objects
from bootstrap.sandbox import state as sandbox_state

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from integration.cluster import eventually, running_cluster  # noqa: E402
from integration.kubelet_host import (  # noqa: E402
    Relay,
    converge_containerd,
    gateway,
    retarget,
    ssh,
)

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(1200)]

SANDBOX = sandbox_name("pxpods")
IMAGE = "docker.io/library/busybox:1.35"


def kubectl(env, *args, input=None, check=True):
    return px.kubectl(env.cluster.admin, *args, input=input, check=check)


def kubelet_config(env, h) -> Path:
    path = env.work / f"kubelet-{h.name}.yaml"
    (env.work / f"manifests-{h.name}").mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump({
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "clusterDNS": [px.DNS_IP], "clusterDomain": "cluster.local",
        "staticPodPath": str(env.work / f"manifests-{h.name}"),
        "podCIDR": f"10.244.{h.index}.0/24",
        "authentication": {"x509": {"clientCAFile": str(env.work / "ca.crt")},
                           "webhook": {"enabled": True}, "anonymous": {"enabled": False}},
        "authorization": {"mode": "Webhook"}, "syncFrequency": "10s",
        "nodeStatusUpdateFrequency": "2s", "serverTLSBootstrap": False,
        "rotateCertificates": False}))
    return path


@pytest.fixture(scope="module")
def env(sandbox_factory):
    work = Path(tempfile.mkdtemp(prefix="pxpods-", dir="/var/tmp"))
    relay = slices = None
    env = SimpleNamespace(work=work, hosts=[])
    with running_cluster() as cluster:
        env.cluster = cluster
        try:
            inventory = sandbox_factory(SANDBOX, 2)
            inv = load_inventory(inventory)
            st = sandbox_state.load(SANDBOX)
            sp = sandbox.paths(SANDBOX)
            for i, name in enumerate(sorted(inv.hosts), start=1):
                h = SimpleNamespace(name=name, ip=st.hosts[name].ip, index=i)
                h.sh = (lambda ip: lambda script, **kw: ssh(sp["key"], sp["known_hosts"], ip,
                                                             script, **kw))(h.ip)
                env.hosts.append(h)
            converge_containerd(inventory, work / "images")
            relay = Relay(gateway(SANDBOX), cluster.server.port)
            admin = cluster.admin
            px.apply(admin, *rbac_objects())
            px.apply(admin, kube_dns_service("kube-system", "kube-dns", px.DNS_IP))
            px.apply(admin, {"apiVersion": "v1", "kind": "ServiceAccount",
                             "metadata": {"name": "default", "namespace": "default"}},
                     {"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "kube-root-ca.crt", "namespace": "default"},
                      "data": {"ca.crt": Path(cluster.pki.path("ca.crt")).read_text()}})
            shutil.copy(cluster.pki.path("ca.crt"), work / "ca.crt")
            proxy_kc = retarget(cluster.kubeconfig("system:kube-proxy"), relay.address,
                                work / "proxy.conf")
            dns_kc = retarget(cluster.kubeconfig("system:bootstrap-dns"), relay.address,
                              work / "dns.conf")
            (work / "resolv.conf").write_text("")
            slices = px.SliceController(cluster.kubeconfig(px.SA + "endpointslice-controller"))
            slices.start()
            for h in env.hosts:
                node_kc = retarget(cluster.kubeconfig(f"system:node:{h.name}", ("system:nodes",)),
                                   relay.address, work / f"kubelet-{h.name}.conf")
                h.sh(f"systemd-run --unit px-kubelet --collect -p KillMode=process "
                     f"{px.PYTHON} -m bootstrap.agents.kubelet --kubeconfig={node_kc} "
                     f"--config={kubelet_config(env, h)} --node-ip={h.ip} "
                     f"--hostname-override={h.name} -v=1")
                px.start_proxy(h, px.proxy_config(work, proxy_kc, h))
            px.start_dns(env.hosts[0], dns_kc, work / "resolv.conf")
            yield env
        finally:
            if slices is not None:
                slices.stop()
            for h in env.hosts:
                try:
                    kubectl(env, "delete", "pods", "--all", "--grace-period=1", "--wait=true",
                            "--timeout=60s", check=False)
                    out = h.sh("journalctl -u px-kubelet -u px-proxy -u px-dns --no-pager "
                               "| tail -60", check=False)
                    print(out.stdout)
                    h.sh("systemctl stop px-kubelet px-proxy px-dns 2>/dev/null; true",
                         check=False)
                except Exception as exc:   # the sandbox goes anyway
                    print(f"{h.name}: teardown: {exc}")
            if relay is not None:
                relay.close()
            sandbox_factory.down(SANDBOX)
            shutil.rmtree(work, ignore_errors=True)


def ready_nodes(env):
    out = json.loads(kubectl(env, "get", "nodes", "-o", "json"))
    return sorted(n["metadata"]["name"] for n in out["items"]
                  if any(c["type"] == "Ready" and c["status"] == "True"
                         for c in n.get("status", {}).get("conditions", [])))


def pod(name, node, labels):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "containers": [{
                "name": "httpd", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", f"mkdir -p /www && echo {name} > /www/index.html "
                                        "&& exec httpd -f -p 8080 -h /www"],
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}


def pod_ips(env):
    out = json.loads(kubectl(env, "get", "pods", "-o", "json"))
    return {p["metadata"]["name"]: p["status"].get("podIP") for p in out["items"]
            if any(c["type"] == "Ready" and c["status"] == "True"
                   for c in p.get("status", {}).get("conditions", []))}


def exec_in(env, pod_name, *cmd):
    r = subprocess.run(["/usr/bin/kubectl", f"--kubeconfig={env.cluster.admin}", "exec",
                        pod_name, "--", *cmd], capture_output=True, text=True, timeout=60)
    env.last_exec = r.stderr
    return r.stdout.strip() if r.returncode == 0 else None


def http_get(env, pod_name, ip, port=80):
    """GET / from inside a pod with busybox nc (busybox-static's wget segfaults)."""
    out = exec_in(env, pod_name, "sh", "-c",
                  f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} {port}")
    return out.splitlines()[-1].strip() if out else None


def diagnose(env) -> str:
    """What a person would look at when cross-node traffic fails."""
    out = [f"last kubectl exec stderr: {getattr(env, 'last_exec', '')}"]
    for h in env.hosts:
        r = h.sh("ip -br addr; ip route; iptables-save -t filter | grep -v '^#' | head -40; "
                 "sysctl net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables", check=False)
        out.append(f"--- {h.name}\n{r.stdout}{r.stderr}")
    return "\n".join(out)


def test_real_pods_service_networking(env):
    h1, h2 = env.hosts
    assert eventually(lambda: ready_nodes(env) == sorted(h.name for h in env.hosts), 120)
    px.apply(env.cluster.admin,
             pod("web-1", h1.name, {"app": "web", "only": "one"}),
             pod("web-2", h2.name, {"app": "web"}),
             {"apiVersion": "v1", "kind": "Service",
              "metadata": {"name": "web", "namespace": "default"},
              "spec": {"type": "NodePort", "selector": {"app": "web"},
                       "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
             {"apiVersion": "v1", "kind": "Service",
              "metadata": {"name": "only1", "namespace": "default"},
              "spec": {"selector": {"only": "one"},
                       "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
    assert eventually(lambda: len(pod_ips(env)) == 2, 180), kubectl(env, "get", "pods", "-o",
                                                                     "wide")
    ips = pod_ips(env)
    assert ips["web-1"].startswith("10.244.1.") and ips["web-2"].startswith("10.244.2.")
    only1 = json.loads(kubectl(env, "get", "svc", "only1", "-o", "json"))["spec"]["clusterIP"]
    node_port = json.loads(kubectl(env, "get", "svc", "web", "-o", "json"))["spec"]["ports"][0][
        "nodePort"]

    # pod-to-pod across hosts by IP
    assert eventually(lambda: http_get(env, "web-2", ips["web-1"], 8080) == "web-1", 60), \
        diagnose(env)
    # a ClusterIP Service whose only endpoint is on host 1, from the pod on host 2
    assert eventually(lambda: http_get(env, "web-2", only1) == "web-1", 60), diagnose(env)
    # the NodePort from the machine on every host's IP
    for h in env.hosts:
        assert eventually(lambda h=h: px.machine_fetch(f"http://{h.ip}:{node_port}/")
                          in ("web-1", "web-2"), 60)
    # DNS from a pod, through the kubelet's clusterDNS (the kube-dns Service IP)
    def lookup():
        out = exec_in(env, "web-2", "nslookup", "only1.default.svc.cluster.local") or ""
        return only1 in out
    assert eventually(lookup, 60), exec_in(env, "web-2", "cat", "/etc/resolv.conf")


def test_teardown_leaves_nothing(env):
    kubectl(env, "delete", "pods", "--all", "--grace-period=1", "--wait=true", "--timeout=60s")
    for h in env.hosts:
        px.cleanup_host(h)
