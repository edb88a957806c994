"""`bootstrap cluster up` from bare sandbox hosts to a cluster, both topologies, over SSH.

Stacked: 3 control plane + 2 workers from the sandbox inventory, plus a sixth
host joined by hand with `bootstrap join` after `bootstrap token create
--print-join-command`. External: 3 etcd + 2 control plane + 1 worker. One
sandbox per topology for the whole module (the tests only read, except the
hand join, which runs last in its module).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from e2e_names import sandbox_name
from etcd_helpers import cli, freeze_wheelhouse, ok

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(1800)]

STACKED = sandbox_name("cust")
EXTERNAL = sandbox_name("cuex")
KUBECTL = "/usr/bin/kubectl"


def _without(inventory: dict, host: str) -> dict:
    inv = json.loads(json.dumps(inventory))
    inv["all"]["hosts"].pop(host)
    for group in inv["all"]["children"].values():
        (group.get("hosts") or {}).pop(host, None)
    return inv


def kubectl(admin: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([KUBECTL, "--kubeconfig", str(admin), *args], capture_output=True,
                          text=True, timeout=timeout)


def ssh(name: str, host: str, cmd: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return cli("sandbox", "ssh", name, host, "--", cmd, timeout=timeout)


def nodes(admin: Path) -> dict[str, bool]:
    out = kubectl(admin, "get", "nodes", "-o", "json")
    assert out.returncode == 0, out.stderr
    return {n["metadata"]["name"]: any(c["type"] == "Ready" and c["status"] == "True"
                                       for c in (n.get("status") or {}).get("conditions", []))
            for n in json.loads(out.stdout)["items"]}


def eventually(fn, timeout: float = 180, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


class Up:
    def __init__(self, name: str, inventory: Path, first, second):
        self.name, self.inventory, self.first, self.second = name, inventory, first, second
        self.admin = inventory.parent / "artifacts" / "admin.conf"


@pytest.fixture(scope="module")
def stacked(sandbox_factory, tmp_path_factory):
    sandbox_inv = sandbox_factory(STACKED, 6)
    freeze_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))
    full = yaml.safe_load(sandbox_inv.read_text())
    hand = list(full["all"]["hosts"])[5]
    # Same directory: the hand-joined host shares the artifacts (PKI, token).
    cluster = sandbox_inv.parent / "cluster.yaml"
    cluster.write_text(yaml.safe_dump(_without(full, hand)))
    try:
        first = cli("cluster", "up", "-i", str(cluster), timeout=1500)
        second = cli("cluster", "up", "-i", str(cluster), timeout=600)
        up = Up(STACKED, cluster, first, second)
        up.dry = cli("cluster", "up", "-i", str(cluster), "--dry-run", timeout=600)
        up.hand, up.full = hand, sandbox_inv
        yield up
    finally:
        sandbox_factory.down(STACKED)


def test_stacked_first_run_brings_every_node_ready(stacked):
    out = ok(stacked.first)
    assert "Cluster is up:" in out and "localhost-lb" in out
    assert str(stacked.admin) in out and "kubectl --kubeconfig" in out
    state = nodes(stacked.admin)
    assert sorted(state) == sorted(f"{STACKED}-{i}" for i in range(1, 6))
    assert all(state.values()), state


def test_stacked_second_run_changes_nothing(stacked):
    out = ok(stacked.second)
    assert "cluster up: converged, nothing changed (0 changed)" in out, out[-3000:]


def test_stacked_dry_run_on_a_converged_cluster_would_change_nothing(stacked):
    out = ok(stacked.dry)
    assert "cluster up (dry run): 0 change(s) would be made" in out, out[-3000:]


def test_control_plane_nodes_are_marked_and_tainted(stacked):
    out = kubectl(stacked.admin, "get", "node", f"{STACKED}-1", "-o", "json")
    node = json.loads(out.stdout)
    assert "node-role.kubernetes.io/control-plane" in node["metadata"]["labels"]
    assert {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in \
        node["spec"]["taints"]
    worker = json.loads(kubectl(stacked.admin, "get", "node", f"{STACKED}-4", "-o",
                                "json").stdout)
    assert "node-role.kubernetes.io/control-plane" not in worker["metadata"]["labels"]


def test_workers_reach_the_api_through_the_localhost_balancer(stacked):
    r = ssh(STACKED, "4", "curl -sk https://127.0.0.1:6443/readyz; echo; "
                          "systemctl is-active haproxy; grep -c '^ *server ' /etc/haproxy/haproxy.cfg")
    assert r.returncode == 0, r.stderr
    readyz, active, servers = r.stdout.split()
    assert (readyz, active, servers) == ("ok", "active", "3")
    # The kubelet's kubeconfig names the balancer, not one API server.
    conf = ssh(STACKED, "4", "grep server: /etc/kubernetes/kubelet.conf "
                             "/etc/kubernetes/bootstrap-kubelet.conf | head -1").stdout
    assert "https://127.0.0.1:6443" in conf


def test_kubeadm_objects_are_in_the_cluster(stacked):
    cm = json.loads(kubectl(stacked.admin, "-n", "kube-public", "get", "cm", "cluster-info",
                            "-o", "json").stdout)
    assert any(k.startswith("jws-kubeconfig-") for k in cm["data"])  # the bootstrapsigner's
    svc = json.loads(kubectl(stacked.admin, "-n", "kube-system", "get", "svc", "kube-dns",
                             "-o", "json").stdout)
    assert svc["spec"]["clusterIP"] == "10.96.0.10"
    assert kubectl(stacked.admin, "-n", "kube-system", "get", "cm",
                   "kubeadm-config").returncode == 0


def test_anonymous_and_wrong_token_are_refused(stacked):
    admin = yaml.safe_load(stacked.admin.read_text())
    server = admin["clusters"][0]["cluster"]["server"]
    anon = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}",
                           f"{server}/api/v1/namespaces/kube-system/secrets"],
                          capture_output=True, text=True, timeout=30)
    assert anon.stdout in ("401", "403")
    bad = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                          "Authorization: Bearer abcdef.0123456789abcdef",
                          f"{server}/api/v1/nodes"], capture_output=True, text=True, timeout=30)
    assert bad.stdout == "401"


HTTPD = 'echo "hello from $(hostname)" > /index.html; exec httpd -f -p 8080 -h /'


def serve_and_reach(up: Up, client_node: str, replicas: int) -> None:
    """A busybox httpd Deployment behind a NodePort Service (the image is imported on
    every node by cluster up), reached the ways a user reaches it: the NodePort on
    every node from this machine, pod-to-pod and the ClusterIP from a pod on a node
    that runs none of the web pods, and the Service's DNS name. Cleaned up after."""
    k = lambda *a, **kw: kubectl(up.admin, *a, **kw)  # noqa: E731
    ok(k("create", "deployment", "web", "--image=busybox:1.35", f"--replicas={replicas}",
         "--", "sh", "-c", HTTPD))
    try:
        ok(k("expose", "deployment", "web", "--port=80", "--target-port=8080",
             "--type=NodePort"))
        ok(k("rollout", "status", "deployment/web", "--timeout=240s", timeout=300))
        pods = json.loads(ok(k("get", "pods", "-l", "app=web", "-o", "json")))["items"]
        web_nodes = {p["spec"]["nodeName"] for p in pods}
        assert client_node not in web_nodes
        port = json.loads(ok(k("get", "svc", "web", "-o", "json")))["spec"]["ports"][0][
            "nodePort"]
        node_list = json.loads(ok(k("get", "nodes", "-o", "json")))["items"]
        for ip in [a["address"] for n in node_list for a in n["status"]["addresses"]
                   if a["type"] == "InternalIP"]:
            page = eventually(lambda ip=ip: subprocess.run(
                ["curl", "-fsS", "--max-time", "3", f"http://{ip}:{port}/"],
                capture_output=True, text=True).stdout, timeout=60)
            assert page.startswith("hello from web-"), (ip, page)
        ok(k("run", "client", "--image=busybox:1.35", "--restart=Never", "--overrides",
             json.dumps({"spec": {"nodeName": client_node}}), "--", "sleep", "3600"))
        ok(k("wait", "--for=condition=Ready", "pod/client", "--timeout=120s", timeout=150))

        def fetch(address: str, port_: int) -> str:
            r = k("exec", "client", "--", "sh", "-c",
                  f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {address} {port_}")
            return r.stdout if "hello from web-" in r.stdout else ""
        for pod in pods:  # pod-to-pod across nodes, no NAT in between
            assert eventually(lambda p=pod: fetch(p["status"]["podIP"], 8080), timeout=60)
        cluster_ip = json.loads(ok(k("get", "svc", "web", "-o", "json")))["spec"]["clusterIP"]
        assert eventually(lambda: fetch(cluster_ip, 80), timeout=60)
        looked_up = eventually(lambda: k("exec", "client", "--", "nslookup",
                                         "web.default.svc.cluster.local").stdout, timeout=60)
        assert cluster_ip in looked_up, looked_up
        assert eventually(lambda: fetch("web.default.svc.cluster.local", 80), timeout=60)
    finally:
        k("delete", "pod", "client", "--grace-period=0", "--wait=false")
        k("delete", "service", "web", "--wait=false")
        k("delete", "deployment", "web", "--wait=false")


def test_stacked_serves_a_workload_by_nodeport_clusterip_and_dns(stacked):
    serve_and_reach(stacked, f"{STACKED}-1", replicas=2)


def test_a_worker_joined_by_hand_with_a_created_token(stacked):
    hand = stacked.hand
    # The toolkit, containerd and the CA on the new host, as `cluster up` would.
    ok(cli("cluster", "up", "-i", str(stacked.full), "--limit", hand,
           "--tags", "prepare,pki,agents,containerd", timeout=900))
    printed = ssh(STACKED, "1", "/opt/bootstrap/current/bin/bootstrap token create "
                                "--print-join-command --ttl 30m")
    assert printed.returncode == 0, printed.stderr
    command = printed.stdout.strip()
    assert command.startswith("bootstrap join ") and "--discovery-token-ca-cert-hash sha256:" \
        in command
    ip = yaml.safe_load(stacked.full.read_text())["all"]["hosts"][hand]["ip"]
    join = ssh(STACKED, hand, f"/opt/bootstrap/current/bin/{command} --node-name {hand} "
                              f"--advertise-address {ip}", timeout=600)
    assert join.returncode == 0, join.stdout[-3000:] + join.stderr[-2000:]
    assert "This node has joined the cluster" in join.stdout
    assert eventually(lambda: nodes(stacked.admin).get(hand)), nodes(stacked.admin)
    listed = ssh(STACKED, "1", "/opt/bootstrap/current/bin/bootstrap token list").stdout
    token_id = command.split("--token ")[1].split(".")[0]
    assert token_id in listed
    # A join with a wrong token fails discovery in one line.
    wrong = command.replace(command.split("--token ")[1].split()[0],
                            "zzzzzz.0123456789abcdef")
    bad = ssh(STACKED, hand, f"/opt/bootstrap/current/bin/{wrong} --node-name x --dry-run "
                             f"--advertise-address {ip} --ignore-preflight-errors all")
    assert bad.returncode == 2 and "no JWS signed token" in bad.stderr
    assert bad.stderr.strip().count("\n") == 0


def test_api_answers_through_the_balancer_with_a_control_plane_host_off(stacked):
    """Power off the first control-plane host (the one admin.conf names): the workers'
    balancer and the other API servers (etcd keeps quorum with 2 of 3) still answer."""
    first = f"{STACKED}-1"
    leases = ("kube-scheduler", "kube-controller-manager")
    ok(cli("sandbox", "stop", STACKED, first))
    try:
        def answering() -> bool:
            r = ssh(STACKED, "4", "curl -sk --max-time 5 https://127.0.0.1:6443/readyz")
            return r.stdout.strip() == "ok"
        assert eventually(answering, timeout=60)
        via_second = ssh(STACKED, "2", f"{KUBECTL} --kubeconfig /etc/kubernetes/admin.conf "
                                       "get nodes --no-headers")
        assert via_second.returncode == 0 and f"{STACKED}-5" in via_second.stdout

        # Whatever leader ran on the powered-off host, its Lease moves to a live one.
        def holders() -> dict[str, str]:
            r = ssh(STACKED, "2", f"{KUBECTL} --kubeconfig /etc/kubernetes/admin.conf -n "
                                  "kube-system get lease " + " ".join(leases) + " -o json")
            items = json.loads(r.stdout)["items"] if r.returncode == 0 else []
            return {i["metadata"]["name"]: i["spec"].get("holderIdentity", "") for i in items}
        def moved() -> bool:
            h = holders()
            return len(h) == 2 and all(v and not v.startswith(first + "_") for v in h.values())
        assert eventually(moved, timeout=90), holders()
    finally:
        ok(cli("sandbox", "start", STACKED, first))
    # Back with the same IP and disk: its units come up again and the node is Ready.
    def back() -> bool:
        try:
            return bool(nodes(stacked.admin).get(first))
        except AssertionError:
            return False  # its API server (the one admin.conf names) not up yet
    if not eventually(back, timeout=420):
        report = ssh(STACKED, "1", "systemctl is-active etcd kube-apiserver kubelet containerd; "
                                   "journalctl -u kube-apiserver -u etcd -n 20 --no-pager")
        pytest.fail(f"{first} not Ready after its boot:\n{report.stdout[-3000:]}")


@pytest.fixture(scope="module")
def external(sandbox_factory, tmp_path_factory):
    inv = sandbox_factory(EXTERNAL, 3, etcd_hosts=3, control_plane=2)
    freeze_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))
    try:
        first = cli("cluster", "up", "-i", str(inv), timeout=1500)
        second = cli("cluster", "up", "-i", str(inv), timeout=600)
        yield Up(EXTERNAL, inv, first, second)
    finally:
        sandbox_factory.down(EXTERNAL)


def test_external_etcd_cluster_comes_up_and_converges(external):
    out = ok(external.first)
    assert "Cluster is up:" in out
    state = nodes(external.admin)
    assert sorted(state) == sorted(f"{EXTERNAL}-{i}" for i in range(1, 4))
    assert all(state.values()), state
    assert "nothing changed (0 changed)" in ok(external.second)
    # The API servers use the etcd group, not a local member.
    unit = ssh(EXTERNAL, "1", "grep -o 'etcd-servers=[^ ]*' "
                              "/etc/systemd/system/kube-apiserver.service").stdout
    assert unit.count("https://") == 3 and "127.0.0.1" not in unit
    assert ssh(EXTERNAL, "1", "systemctl is-active etcd").stdout.strip() != "active"


def test_external_serves_a_workload_by_nodeport_clusterip_and_dns(external):
    # One worker: a single replica there, the client on a control-plane host.
    serve_and_reach(external, f"{EXTERNAL}-1", replicas=1)
