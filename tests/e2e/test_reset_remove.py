"""`bootstrap reset`, `cluster remove-node` on one stacked sandbox cluster (3 control plane + 1 worker).

Built once for the module; the tests run in order and each leaves the cluster
as the next one expects:

1. reset of the worker with a pod running leaves nothing of ours (units,
   chains, interfaces, netns, mounts, files); a second reset has nothing to
   do; the host joins again (`cluster up --limit`);
2. remove-node of the worker: drained, reset, Node gone;
3. a removal that would break quorum (one member down) is refused, nothing changes;
4. remove-node of a control-plane host: 2 etcd members left, both healthy;
   the host is clean, kubeadm-config forgets it; it joins again (3 members);
5. a dead control-plane host (powered off): `--force` removes its member by ID
   and its Node; the 2 members left are healthy;
6. `cluster reset` (after the dead host comes back) leaves nothing on any host.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from e2e_names import sandbox_name
from etcd_helpers import cli, etcdctl, freeze_wheelhouse, ok

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(3600)]

NAME = sandbox_name("rm")
KUBECTL = "/usr/bin/kubectl"
IMAGE = "docker.io/library/busybox:1.35"

# What a reset must leave no trace of, listed independently of bootstrap.flows.reset.
LEFTOVERS = r"""
for u in kubelet kube-apiserver kube-controller-manager kube-scheduler kube-proxy \
         bootstrap-dns etcd haproxy docker-registry; do
  a=$(systemctl is-active $u 2>/dev/null); e=$(systemctl is-enabled $u 2>/dev/null)
  case "$a" in active|activating|reloading|deactivating) echo "unit active: $u";; esac
  [ "$e" = enabled ] && echo "unit enabled: $u"
done
grep -ls 'Managed by bootstrap' /etc/systemd/system/*.service | grep -v '/containerd.service$' \
  | sed 's/^/unit file: /'
iptables-save | grep -E '^:(KUBE-|CNI-HOSTPORT-|CNI-DN-)|-[jg] (KUBE-|CNI-HOSTPORT-|CNI-DN-)' \
  | sed 's/^/iptables: /'
ip -o link show | grep -E ': cni0[:@]|master cni0' | sed 's/^/interface: /'
ls /var/run/netns 2>/dev/null | grep '^cni-' | sed 's/^/netns: /'
awk '{print $5}' /proc/self/mountinfo | grep -E '^/var/lib/kubelet|^/(var/)?run/netns/cni-' \
  | sed 's/^/mount: /'
# /var/lib/etcd itself may be the etcd package's (empty); its contents are ours.
[ -n "$(ls -A /var/lib/etcd 2>/dev/null)" ] && echo "file: /var/lib/etcd/*"
for p in /etc/kubernetes /var/lib/kubelet /var/lib/kube-proxy /var/log/pods \
         /etc/cni/net.d/10-bootstrap.conflist /var/lib/cni/networks/bootstrap \
         /etc/etcd/bootstrap.env; do
  [ -e $p ] && echo "file: $p"
done
ip route show proto 200 | sed 's/^/route: /'
ctr -n k8s.io tasks ls -q 2>/dev/null | sed 's/^/task: /'
true
"""


def ssh(host: int, cmd: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return cli("sandbox", "ssh", NAME, str(host), "--", cmd, timeout=timeout)


def leftovers(host: int) -> list[str]:
    r = ssh(host, LEFTOVERS, timeout=120)
    assert r.returncode == 0, r.stderr
    return [ln for ln in r.stdout.splitlines() if ln.strip()]


def kubectl(c, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([KUBECTL, "--kubeconfig", str(c.admin), *args], capture_output=True,
                          text=True, timeout=timeout)


def nodes(c) -> dict[str, bool]:
    out = kubectl(c, "get", "nodes", "-o", "json")
    assert out.returncode == 0, out.stderr
    return {n["metadata"]["name"]: any(x["type"] == "Ready" and x["status"] == "True"
                                       for x in (n.get("status") or {}).get("conditions", []))
            for n in json.loads(out.stdout)["items"]}


def eventually(fn, timeout: float = 300, interval: float = 2.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def host_name(i: int) -> str:
    return f"{NAME}-{i}"


def ip(i: int) -> str:
    return yaml.safe_load(CLUSTER.inventory.read_text())["all"]["hosts"][host_name(i)][
        "ansible_host"]


def members(via: int) -> list[dict]:
    r = ssh(via, etcdctl("--write-out=json member list", [f"https://{ip(via)}:2379"]))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["members"]


def healthy(via: int) -> list[dict]:
    urls = [m["clientURLs"][0] for m in members(via) if m.get("clientURLs")]
    r = ssh(via, etcdctl("--write-out=json endpoint health", urls))
    return json.loads(r.stdout) if r.stdout.strip().startswith("[") else []


class Cluster:
    def __init__(self, inventory: Path):
        self.inventory = inventory
        self.admin = inventory.parent / "artifacts" / "admin.conf"


CLUSTER: Cluster


@pytest.fixture(scope="module")
def c(sandbox_factory, tmp_path_factory):
    global CLUSTER
    inv = sandbox_factory(NAME, 4)
    try:
        freeze_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))
        ok(cli("cluster", "up", "-i", str(inv), timeout=1800))
        CLUSTER = Cluster(inv)
        yield CLUSTER
    finally:
        sandbox_factory.down(NAME)


def test_reset_of_a_worker_with_a_pod_leaves_nothing_behind(c):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rs-sleeper"},
           "spec": {"nodeName": host_name(4), "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "c", "image": IMAGE, "imagePullPolicy": "Never",
                                    "command": ["sleep", "3600"],
                                    "volumeMounts": [{"name": "mem", "mountPath": "/mem"}]}],
                    "volumes": [{"name": "mem", "emptyDir": {"medium": "Memory"}}]}}
    r = subprocess.run([KUBECTL, "--kubeconfig", str(c.admin), "apply", "-f", "-"],
                       input=json.dumps(pod), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert eventually(lambda: "Running" in kubectl(c, "get", "pod", "rs-sleeper", "-o",
                                                   "jsonpath={.status.phase}").stdout, 180)
    before = leftovers(4)
    assert any(x.startswith("mount: /var/lib/kubelet") for x in before), before
    assert any(x.startswith("netns: cni-") for x in before), before

    out = ok(ssh(4, "/opt/bootstrap/current/bin/bootstrap reset --yes"))
    assert "Removing 1 container(s) and 1 pod sandbox(es) through the CRI" in out, out
    assert leftovers(4) == []
    again = ok(ssh(4, "/opt/bootstrap/current/bin/bootstrap reset --yes"))
    assert "[reset] 0 changed (nothing to do)" in again, again
    # Joins again; the pod bound to the old node goes.
    kubectl(c, "delete", "pod", "rs-sleeper", "--force", "--grace-period=0")
    ok(cli("cluster", "up", "-i", str(c.inventory), "--limit", host_name(4), timeout=1200))
    assert eventually(lambda: nodes(c).get(host_name(4)), 180), nodes(c)


def test_remove_node_of_a_worker(c):
    out = ok(cli("cluster", "remove-node", "-i", str(c.inventory), host_name(4), "--yes",
                 timeout=1200))
    assert f"remove-node: {host_name(4)} removed (drained, reset, Node deleted)" in out, out
    assert host_name(4) not in nodes(c)
    assert leftovers(4) == []


def test_a_removal_that_would_break_quorum_is_refused(c):
    ok(ssh(3, "systemctl stop etcd"))
    try:
        r = cli("cluster", "remove-node", "-i", str(c.inventory), host_name(2), "--yes",
                timeout=600)
        assert r.returncode != 0
        assert f"refusing to remove {host_name(2)}" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
        assert len(members(1)) == 3 and host_name(2) in nodes(c)
    finally:
        ok(ssh(3, "systemctl start etcd"))
    assert eventually(lambda: len([h for h in healthy(1) if h["health"]]) == 3, 120)


def test_remove_node_of_a_control_plane_host_keeps_etcd_healthy(c):
    out = ok(cli("cluster", "remove-node", "-i", str(c.inventory), host_name(3), "--yes",
                 timeout=1200))
    assert "etcd healthy: 2 member(s)" in out, out
    ms = members(1)
    assert sorted(m["name"] for m in ms) == [host_name(1), host_name(2)]
    assert all(h["health"] for h in healthy(1)) and len(healthy(1)) == 2
    assert host_name(3) not in nodes(c)
    status = json.loads(kubectl(c, "-n", "kube-system", "get", "cm", "kubeadm-config", "-o",
                                "json").stdout)["data"]["ClusterStatus"]
    assert host_name(3) not in yaml.safe_load(status)["apiEndpoints"]
    assert leftovers(3) == []
    # A new member on the reset host: the same path as a replacement host.
    ok(cli("cluster", "up", "-i", str(c.inventory), "--limit", host_name(3), timeout=1500))
    assert eventually(lambda: len([h for h in healthy(1) if h["health"]]) == 3, 180)
    assert eventually(lambda: nodes(c).get(host_name(3)), 180), nodes(c)


def test_a_dead_control_plane_host_is_removed_by_member_id(c):
    mid = next(format(int(m["ID"]), "x") for m in members(1) if m["name"] == host_name(3))
    ok(cli("sandbox", "stop", NAME, "3", timeout=120))
    out = ok(cli("cluster", "remove-node", "-i", str(c.inventory), host_name(3), "--force",
                 "--etcd-member-id", f"{host_name(3)}={mid}", "--yes", timeout=900))
    assert f"removing etcd member {host_name(3)} ({mid})" in out, out
    assert sorted(m["name"] for m in members(1)) == [host_name(1), host_name(2)]
    assert len(healthy(1)) == 2 and all(h["health"] for h in healthy(1))
    assert host_name(3) not in nodes(c)


def test_cluster_reset_leaves_nothing_on_any_host(c):
    # The dead host comes back with its old disk; its member is long gone.
    ok(cli("sandbox", "start", NAME, "3", timeout=180))
    asked = cli("cluster", "reset", "-i", str(c.inventory), timeout=120)
    assert asked.returncode != 0  # no --yes and no terminal: nothing happens
    assert len(members(1)) == 2
    out = ok(cli("cluster", "reset", "-i", str(c.inventory), "--yes", timeout=1200))
    assert "cluster reset: 4 host(s) reset" in out, out
    for i in range(1, 5):
        assert leftovers(i) == [], i
