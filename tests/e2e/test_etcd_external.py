"""External etcd layout: 2 control-plane hosts and 3 separate etcd hosts.

Control-plane hosts reach etcd with the apiserver-etcd-client pair; etcd
hosts hold their serving/peer pairs but no CA key.
"""

from __future__ import annotations

import pytest
from e2e_names import sandbox_name
from etcd_helpers import PKI, bring_up, cli, close, etcdctl, leader, ok, put_with_retry

from bootstrap.flows.etcd import wait_healthy

pytestmark = [pytest.mark.slow, pytest.mark.root]

NAME = sandbox_name("etcx")


@pytest.fixture(scope="module")
def cluster(sandbox_factory, tmp_path_factory):
    path = sandbox_factory(NAME, 2, etcd_hosts=3)
    c = None
    try:
        c = bring_up(path, tmp_path_factory.mktemp("wheelhouse"))
        yield c
    finally:
        if c is not None:
            close(c)
        sandbox_factory.down(NAME)


def test_layout_is_external(cluster):
    inv = cluster.inventory
    assert inv.topology == "external"
    assert len(cluster.nodes) == 3
    assert not {n.host for n in cluster.nodes} & {h.name for h in inv.control_plane}


def test_every_member_healthy(cluster):
    health = cluster.health(cluster.nodes[0].host)
    assert len(health) == 3 and all(h["health"] for h in health), health


def test_control_plane_reaches_etcd_with_apiserver_client_cert(cluster):
    eps = [n.client_url for n in cluster.nodes]
    for cp in cluster.inventory.control_plane:
        key = f"/e2e/from/{cp.name}"
        cluster.run(cp.name, etcdctl(f"put {key} ok", eps, client="apiserver-etcd-client"))
        got = cluster.run(cp.name, etcdctl(f"get {key} --print-value-only", eps,
                                           client="apiserver-etcd-client")).stdout.strip()
        assert got == "ok"
        # Control-plane hosts run no etcd member here.
        assert not cluster.run(cp.name, f"test -e {PKI}/etcd/server.key", check=False).ok


def test_etcd_hosts_hold_no_ca_keys(cluster):
    for n in cluster.nodes:
        for path in ("ca.key", "etcd/ca.key", "front-proxy-ca.key", "sa.key",
                     "apiserver-etcd-client.key"):
            assert not cluster.run(n.host, f"test -e {PKI}/{path}", check=False).ok, (n.host, path)
        mode = cluster.run(n.host, f"stat -c %a {PKI}/etcd/peer.key").stdout.strip()
        assert mode == "600"


def test_client_without_certificate_is_refused(cluster):
    n = cluster.nodes[0]
    r = cluster.run(n.host, f"curl -sS --max-time 5 --cacert {PKI}/etcd/ca.crt {n.client_url}/health",
                    check=False)
    assert not r.ok


def test_second_run_changes_nothing(cluster):
    out = ok(cli("cluster", "up", "-i", str(cluster.path)))
    assert "converged, nothing changed (0 changed)" in out, out[-3000:]


def test_sigkill_of_one_member_leaves_cluster_writable(cluster):
    # The leader is the hard case: the survivors must elect a new one.
    victim = leader(cluster)
    a, b = [n for n in cluster.nodes if n != victim]
    pid = cluster.run(victim.host, "systemctl show -p MainPID --value etcd").stdout.strip()
    assert pid.isdigit() and int(pid) > 0
    cluster.run(victim.host, f"kill -KILL {pid}")
    # Written through one surviving member, read through the other.
    put_with_retry(cluster, a.host, a.client_url, "/e2e/ext-kill", "written")
    got = cluster.run(b.host, etcdctl("get /e2e/ext-kill --print-value-only",
                                      [b.client_url])).stdout.strip()
    assert got == "written"
    # systemd restarts the member (Restart=always) and it catches up.
    wait_healthy(cluster.conns[a.host], cluster.nodes, timeout=120)
    got = cluster.run(victim.host, etcdctl("get /e2e/ext-kill --print-value-only",
                                           [victim.client_url])).stdout.strip()
    assert got == "written"
