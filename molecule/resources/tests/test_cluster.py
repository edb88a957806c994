"""What a host looks like after `bootstrap cluster up`, checked over SSH with testinfra.

Run by the stacked and external scenarios' verifier with the ansible backend on
the sandbox's own inventory (its key, its pinned known_hosts), so each host's
role comes from its groups: kube_control_plane, kube_node, etcd.
"""

from __future__ import annotations

import json

import pytest

PKI = "/etc/kubernetes/pki"
KUBECTL = "/usr/bin/kubectl --kubeconfig /etc/kubernetes/admin.conf"
CONTROL_PLANE_UNITS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
NODE_UNITS = ("kubelet", "kube-proxy", "containerd")
WILDCARDS = ("0.0.0.0", "*", "[::]")


def _vars(host) -> dict:
    return host.ansible.get_variables()


def _groups(host) -> set[str]:
    return set(_vars(host)["group_names"])


def _k8s_hosts(host) -> set[str]:
    groups = _vars(host)["groups"]
    return set(groups.get("kube_control_plane", [])) | set(groups.get("kube_node", []))


def _role(host, group: str):
    if group not in _groups(host):
        pytest.skip(f"not in {group}")
    return host


@pytest.fixture
def control_plane(host):
    return _role(host, "kube_control_plane")


@pytest.fixture
def node(host):
    # Every Kubernetes host is a node (control-plane hosts are in kube_node or not).
    if not _groups(host) & {"kube_control_plane", "kube_node"}:
        pytest.skip("not a Kubernetes host")
    return host


@pytest.fixture
def etcd(host):
    return _role(host, "etcd")


def _listening(host) -> set[tuple[str, int]]:
    out = set()
    for line in host.check_output("ss -Htln").splitlines():
        local = line.split()[3]
        addr, _, port = local.rpartition(":")
        out.add((addr.split("%")[0], int(port)))
    return out


def _listens_on(host, addr: str, port: int) -> bool:
    sockets = _listening(host)
    return (addr, port) in sockets or any((w, port) in sockets for w in WILDCARDS)


def _active_and_enabled(host, unit: str) -> None:
    svc = host.service(unit)
    assert svc.is_running, f"{unit} not active on {host.backend.get_hostname()}"
    assert svc.is_enabled, f"{unit} not enabled on {host.backend.get_hostname()}"


@pytest.mark.parametrize("unit", CONTROL_PLANE_UNITS)
def test_control_plane_units_active(control_plane, unit):
    _active_and_enabled(control_plane, unit)


@pytest.mark.parametrize("unit", NODE_UNITS)
def test_node_units_active(node, unit):
    _active_and_enabled(node, unit)


def test_etcd_unit_active(etcd):
    _active_and_enabled(etcd, "etcd")


def test_etcd_only_on_etcd_hosts(host):
    if "etcd" in _groups(host):
        pytest.skip("an etcd member")
    assert not host.service("etcd").is_running


def test_localhost_balancer_where_kubespray_puts_it(host):
    """haproxy on the nodes that are not control plane, when there are several
    control-plane hosts; nowhere else."""
    groups = _groups(host)
    several = len(_vars(host)["groups"].get("kube_control_plane", [])) > 1
    wanted = several and "kube_node" in groups and "kube_control_plane" not in groups
    assert host.service("haproxy").is_running == wanted
    if wanted:
        assert _listens_on(host, "127.0.0.1", 6443)
        assert host.check_output("curl -sk --max-time 10 https://127.0.0.1:6443/readyz") == "ok"


@pytest.mark.parametrize("port", (6443, 10257, 10259))
def test_control_plane_ports_on_loopback(control_plane, port):
    assert _listens_on(control_plane, "127.0.0.1", port)


def test_kubelet_port(node):
    assert _listens_on(node, _vars(node)["ip"], 10250)


@pytest.mark.parametrize("port", (2379, 2380))
def test_etcd_ports(etcd, port):
    assert _listens_on(etcd, _vars(etcd)["ip"], port)


def test_every_private_key_is_0600_root(host):
    keys = host.check_output(f"find {PKI} -name '*.key' -type f").split()
    groups = _groups(host)
    if "kube_control_plane" in groups:
        for name in ("ca.key", "sa.key", "apiserver.key", "front-proxy-ca.key"):
            assert f"{PKI}/{name}" in keys
    if "etcd" in groups:
        assert f"{PKI}/etcd/server.key" in keys
    for key in keys:
        f = host.file(key)
        assert f.mode == 0o600, key
        # The image registry's serving key belongs to the account its unit runs as.
        owner = "docker-registry" if key == f"{PKI}/registry.key" else "root"
        assert f.user == owner, key


def test_no_cluster_secrets_on_plain_workers(host):
    if _groups(host) & {"kube_control_plane", "etcd"}:
        pytest.skip("holds cluster keys by design")
    for name in ("ca.key", "sa.key", "etcd/ca.key"):
        assert not host.file(f"{PKI}/{name}").exists, name


def test_every_node_ready_from_each_control_plane_host(control_plane):
    out = json.loads(control_plane.check_output(f"{KUBECTL} get nodes -o json"))
    ready = {n["metadata"]["name"]: any(c["type"] == "Ready" and c["status"] == "True"
                                        for c in n.get("status", {}).get("conditions", []))
             for n in out["items"]}
    assert set(ready) == _k8s_hosts(control_plane)
    assert all(ready.values()), ready


def test_api_refuses_anonymous_reads(control_plane):
    code = control_plane.check_output(
        "curl -sk -o /dev/null -w '%{http_code}' --max-time 10 "
        "https://127.0.0.1:6443/api/v1/namespaces/kube-system/secrets")
    assert code in ("401", "403")


def test_kubelet_refuses_anonymous(node):
    code = node.check_output(
        "curl -sk -o /dev/null -w '%{http_code}' --max-time 10 "
        f"https://{_vars(node)['ip']}:10250/pods")
    assert code == "401"
