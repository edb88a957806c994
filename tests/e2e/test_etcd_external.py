"""External etcd layout: 2 control-plane hosts and 3 separate etcd hosts.

Control-plane hosts reach etcd with the apiserver-etcd-client pair; etcd
hosts hold their serving/peer pairs but no CA key.
"""

from __future__ import annotations

import pytest
from e2e_names import sandbox_name
from etcd_helpers import PKI, assert_survives_leader_sigkill, cli, etcdctl, ok, sandbox_cluster

pytestmark = [pytest.mark.slow, pytest.mark.root]

NAME = sandbox_name("etcx")


@pytest.fixture(scope="module")
def cluster(sandbox_factory, tmp_path_factory):
    with sandbox_cluster(sandbox_factory, NAME, 2, tmp_path_factory.mktemp("wheelhouse"),
                         etcd_hosts=3) as c:
        yield c


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
    assert_survives_leader_sigkill(cluster, "/e2e/ext-kill")
