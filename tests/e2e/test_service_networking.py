"""Service networking end to end on two sandbox hosts.

The API server runs on the machine (real etcd, loopback) and is reached from
the hosts through a relay on the sandbox bridge's gateway. Each host runs our
kube-proxy (with its node routes loop) as a systemd unit; host 1 also runs
bootstrap-dns registered behind the kube-dns Service. The endpointslice
controller runs in this process.

Pods are hand-made, honestly so: each host gets a bridge with its podCIDR's
first address and two network namespaces on veths, each running busybox
httpd, and the test writes matching Pod objects (nodeName, labels) and marks
them Running/Ready with their IPs through pods/status, as a kubelet would.
That exercises everything this area owns (controllers, rules, routes, DNS)
without depending on the container runtime.

Proves: pod-to-pod across hosts by IP without NAT, a ClusterIP Service reachable
from the other host, a NodePort reachable from the machine on every host's IP,
DNS answering the Service name through the kube-dns Service IP, and a teardown
that leaves no KUBE chain and no route on the hosts or the machine.
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
from e2e_names import sandbox_name

from bootstrap import sandbox
from bootstrap.agents.dns.registration import kube_dns_service
from bootstrap.config.inventory import load_inventory
from bootstrap.flows.apiobjects import dns_rbac as rbac_objects
from bootstrap.sandbox import state as sandbox_state

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from integration.cluster import eventually, running_cluster  # noqa: E402
from integration.kubelet_host import Relay, gateway, retarget, ssh  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(900)]

SANDBOX = sandbox_name("pxnet")
PYTHON, DNS_IP, SA = px.PYTHON, px.DNS_IP, px.SA


def kubectl(env, *args, input=None, check=True):
    return px.kubectl(env.cluster.admin, *args, input=input, check=check)


def apply(env, *objs):
    px.apply(env.cluster.admin, *objs)


def host_setup_script(index: int, work: Path) -> str:
    """A bridge at the podCIDR's .1 and two 'pods' (netns + veth + busybox httpd)."""
    lines = ["set -e", "ip link add pxbr0 type bridge",
             f"ip addr add 10.244.{index}.1/24 dev pxbr0", "ip link set pxbr0 up"]
    for p in (10, 11):
        ns, www = f"pxpod{p}", work / f"www-{index}-{p}"
        lines += [
            f"ip netns add {ns}",
            f"ip link add pxv{p} type veth peer name eth0 netns {ns}",
            f"ip link set pxv{p} master pxbr0 up",
            f"ip -n {ns} addr add 10.244.{index}.{p}/24 dev eth0",
            f"ip -n {ns} link set eth0 up", f"ip -n {ns} link set lo up",
            f"ip -n {ns} route add default via 10.244.{index}.1",
            f"systemd-run --unit pxhttpd{p} --collect ip netns exec {ns} "
            f"busybox httpd -f -p 8080 -h {www}"]
    return "\n".join(lines)


def host_teardown_script() -> str:
    return "\n".join(["systemctl stop pxhttpd10 pxhttpd11 px-proxy px-dns 2>/dev/null",
                      "ip netns del pxpod10 2>/dev/null", "ip netns del pxpod11 2>/dev/null",
                      "ip link del pxbr0 2>/dev/null", "true"])


@pytest.fixture(scope="module")
def env(sandbox_factory):
    work = Path(tempfile.mkdtemp(prefix="pxnet-", dir="/var/tmp"))   # hosts see /var/tmp
    relay = slices = None
    env = SimpleNamespace(work=work, hosts=[])
    with running_cluster() as cluster:
        env.cluster = cluster
        try:
            inv = load_inventory(sandbox_factory(SANDBOX, 2))
            st = sandbox_state.load(SANDBOX)
            sp = sandbox.paths(SANDBOX)
            paths = {"key": sp["key"], "known": sp["known_hosts"]}
            for i, name in enumerate(sorted(inv.hosts), start=1):
                h = SimpleNamespace(name=name, ip=st.hosts[name].ip, index=i)
                h.sh = (lambda ip: lambda script, **kw: ssh(paths["key"], paths["known"], ip,
                                                             script, **kw))(h.ip)
                env.hosts.append(h)
                for p in (10, 11):
                    (work / f"www-{i}-{p}").mkdir()
                    (work / f"www-{i}-{p}" / "index.html").write_text(f"pod-{i}-{p}\n")
            relay = Relay(gateway(SANDBOX), cluster.server.port)
            env.proxy_kubeconfig = retarget(cluster.kubeconfig("system:kube-proxy"),
                                            relay.address, work / "proxy.conf")
            apply(env, *rbac_objects())
            # The DNS Service first, so no other Service is given its address.
            apply(env, kube_dns_service("kube-system", "kube-dns", DNS_IP))
            env.dns_kubeconfig = retarget(cluster.kubeconfig("system:bootstrap-dns"),
                                          relay.address, work / "dns.conf")
            kubectl(env, "create", "serviceaccount", "default", check=False)
            # Nodes as the kubelet and nodeipam would leave them.
            apply(env, *({"apiVersion": "v1", "kind": "Node", "metadata": {"name": h.name},
                          "spec": {"podCIDR": f"10.244.{h.index}.0/24",
                                   "podCIDRs": [f"10.244.{h.index}.0/24"]},
                          "status": {"addresses": [{"type": "InternalIP", "address": h.ip}]}}
                         for h in env.hosts))
            slices = px.SliceController(cluster.kubeconfig(SA + "endpointslice-controller"))
            slices.start()
            (work / "resolv.conf").write_text("")     # no forwarding off the machine
            for h in env.hosts:
                h.sh(host_setup_script(h.index, work))
                px.start_proxy(h, px.proxy_config(work, env.proxy_kubeconfig, h))
            px.start_dns(env.hosts[0], env.dns_kubeconfig, work / "resolv.conf")
            yield env
        finally:
            if slices is not None:
                slices.stop()
            for h in env.hosts:
                try:
                    out = h.sh("journalctl -u px-proxy -u px-dns --no-pager | tail -40",
                               check=False)
                    print(out.stdout)
                    h.sh(host_teardown_script(), check=False)
                except Exception as exc:   # the sandbox goes anyway
                    print(f"{h.name}: teardown: {exc}")
            if relay is not None:
                relay.close()
            sandbox_factory.down(SANDBOX)
            shutil.rmtree(work, ignore_errors=True)


def pods(env):
    """Pod objects for the hand-made pods, marked Running/Ready with their IPs."""
    for h in env.hosts:
        for p in (10, 11):
            name = f"pod-{h.index}-{p}"
            labels = {"app": "web"} | ({"only": "one"} if h.index == 1 and p == 10 else {})
            apply(env, {"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": name, "namespace": "default", "labels": labels},
                        "spec": {"nodeName": h.name, "containers": [{
                            "name": "httpd", "image": "busybox",
                            "ports": [{"name": "http", "containerPort": 8080}]}]}})
            ip = f"10.244.{h.index}.{p}"
            status = {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                                 "hostIP": h.ip,
                                 "conditions": [{"type": "Ready", "status": "True"}]}}
            kubectl(env, "patch", "pod", name, "--subresource=status", "--type=merge",
                    "-p", json.dumps(status))


def fetch(host, url, netns=None):
    prefix = f"ip netns exec {netns} " if netns else ""
    r = host.sh(f"{prefix}curl -s --max-time 3 {url}", check=False)
    return r.stdout.strip() if r.returncode == 0 else None


def test_service_networking(env):
    h1, h2 = env.hosts
    pods(env)
    apply(env,
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web",
                                                               "namespace": "default"},
           "spec": {"type": "NodePort", "selector": {"app": "web"},
                    "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "only1",
                                                               "namespace": "default"},
           "spec": {"selector": {"only": "one"},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
    web = json.loads(kubectl(env, "get", "svc", "web", "-o", "json"))
    only1 = json.loads(kubectl(env, "get", "svc", "only1", "-o", "json"))["spec"]["clusterIP"]
    node_port = web["spec"]["ports"][0]["nodePort"]

    # routes: each host routes the other's podCIDR via its InternalIP
    assert eventually(lambda: f"10.244.2.0/24 via {h2.ip}" in
                      h1.sh("ip route show proto 200").stdout, 60)
    assert eventually(lambda: f"10.244.1.0/24 via {h1.ip}" in
                      h2.sh("ip route show proto 200").stdout, 60)

    # pod-to-pod across hosts by IP, and without NAT: httpd logs are not needed,
    # the reply itself proves the route back to the source pod's IP.
    assert eventually(lambda: fetch(h1, "http://10.244.2.11:8080/", "pxpod10") == "pod-2-11")
    assert eventually(lambda: fetch(h2, "http://10.244.1.10:8080/", "pxpod11") == "pod-1-10")

    # a ClusterIP Service whose only endpoint is on host 1, from a pod on host 2
    assert eventually(lambda: fetch(h2, f"http://{only1}/", "pxpod10") == "pod-1-10", 60), \
        h2.sh("iptables-save -t nat").stdout

    # the NodePort from the machine on every host's IP; all four pods answer
    for h in env.hosts:
        assert eventually(lambda h=h: (px.machine_fetch(f"http://{h.ip}:{node_port}/") or "")
                          .startswith("pod-"), 60)
    seen = {px.machine_fetch(f"http://{h1.ip}:{node_port}/") for _ in range(40)}
    assert seen - {None} <= {"pod-1-10", "pod-1-11", "pod-2-10", "pod-2-11"}
    assert len(seen - {None}) >= 2     # load-balanced across endpoints

    # DNS: the Service name through the kube-dns Service IP, from a pod on host 2
    script = ("from dnslib import DNSRecord; import sys; "
              "r = DNSRecord.parse(DNSRecord.question(sys.argv[1]).send("
              f"'{DNS_IP}', 53, timeout=3)); print(' '.join(str(x.rdata) for x in r.rr))")

    def lookup(name):
        r = h2.sh(f"ip netns exec pxpod10 {PYTHON} -c \"{script}\" {name}", check=False)
        return r.stdout.strip() if r.returncode == 0 else None
    assert eventually(lambda: lookup("only1.default.svc.cluster.local") == only1, 60), \
        h1.sh("journalctl -u px-dns --no-pager | tail -20").stdout

    # health on the node address, as upstream's healthz
    health = json.loads(h1.sh(f"curl -s http://{h1.ip}:10256/healthz").stdout)
    assert "lastUpdated" in health and "currentTime" in health


def test_teardown_leaves_nothing(env):
    for h in env.hosts:
        px.cleanup_host(h)
    # Nothing of ours ever reached the machine's own tables.
    machine = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    assert "KUBE-POD-EGRESS" not in machine and "bootstrap pod egress" not in machine
