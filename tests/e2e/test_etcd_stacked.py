"""Stacked etcd on 3 sandbox hosts, built by `bootstrap cluster up` over SSH.

One sandbox for the module: healthy mTLS cluster, refusal of clients without
a certificate, a no-change second run, `etcd status`, snapshot save/restore,
testinfra checks of each host, and a member SIGKILLed while writes go on.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_names import sandbox_name
from etcd_helpers import PKI, assert_survives_leader_sigkill, cli, etcdctl, ok, sandbox_cluster

pytestmark = [pytest.mark.slow, pytest.mark.root]

NAME = sandbox_name("etcst")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster(sandbox_factory, tmp_path_factory):
    with sandbox_cluster(sandbox_factory, NAME, 3, tmp_path_factory.mktemp("wheelhouse")) as c:
        yield c


def test_every_member_healthy_over_mtls(cluster):
    first = cluster.nodes[0].host
    health = cluster.health(first)
    assert sorted(h["endpoint"] for h in health) == sorted(n.client_url for n in cluster.nodes)
    assert all(h["health"] for h in health), health


def test_client_without_certificate_is_refused(cluster):
    node = cluster.nodes[1]
    no_cert = cluster.run(node.host, f"ETCDCTL_API=3 etcdctl --endpoints={node.client_url}"
                          f" --cacert={PKI}/etcd/ca.crt --dial-timeout=3s --command-timeout=5s"
                          " endpoint health", check=False)
    assert not no_cert.ok
    curl = cluster.run(node.host, f"curl -sS --max-time 5 --cacert {PKI}/etcd/ca.crt"
                       f" {node.client_url}/health", check=False)
    assert not curl.ok
    # The same request with the client pair is answered: the refusal was the certificate.
    with_cert = cluster.run(node.host, f"curl -sS --max-time 5 --cacert {PKI}/etcd/ca.crt"
                            f" --cert {PKI}/etcd/healthcheck-client.crt"
                            f" --key {PKI}/etcd/healthcheck-client.key {node.client_url}/health")
    assert json.loads(with_cert.stdout)["health"] == "true"


def test_second_run_changes_nothing(cluster):
    out = ok(cli("cluster", "up", "-i", str(cluster.path)))
    assert "converged, nothing changed (0 changed)" in out, out[-3000:]


def test_etcd_status_lists_every_member(cluster):
    out = ok(cli("etcd", "status", "-i", str(cluster.path)))
    rows = [line for line in out.splitlines() if "https://" in line]
    assert len(rows) == 3
    for node in cluster.nodes:
        assert any(node.client_url in r and node.name in r and "healthy" in r for r in rows)
    assert sum(1 for r in rows if " yes " in r) == 1  # exactly one leader


def test_snapshot_save_and_restore_round_trip(cluster, tmp_path):
    a, b = cluster.nodes[0], cluster.nodes[2]
    eps = [a.client_url]
    cluster.run(a.host, etcdctl("put /e2e/kept before-snapshot", eps))
    snap = tmp_path / "etcd.db"
    out = ok(cli("etcd", "snapshot", "save", str(snap), "-i", str(cluster.path)))
    assert snap.stat().st_size > 0 and "snapshot saved" in out
    cluster.run(a.host, etcdctl("put /e2e/lost after-snapshot", eps))
    cluster.run(a.host, etcdctl("del /e2e/kept", eps))

    ok(cli("etcd", "snapshot", "restore", str(snap), "-i", str(cluster.path), "--yes"))

    got = cluster.run(b.host, etcdctl("get --prefix /e2e/", [b.client_url])).stdout.split()
    assert got == ["/e2e/kept", "before-snapshot"]
    backups = cluster.run(b.host, "ls -d /var/lib/etcd.backup-*").stdout.split()
    assert len(backups) == 1
    mode = cluster.run(b.host, "stat -c %a /var/lib/etcd").stdout.strip()
    assert mode == "700"
    assert all(h["health"] for h in cluster.health(b.host))
    # The restored cluster is still what cluster up wants: nothing to change.
    out = ok(cli("cluster", "up", "-i", str(cluster.path), "--tags", "pki,etcd"))
    assert "nothing changed" in out, out[-3000:]


def test_testinfra_checks_pass_on_every_host(cluster, tmp_path):
    from bootstrap import sandbox

    paths = sandbox.paths(NAME)
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host *\n  User root\n  IdentityFile {paths['key']}\n"
                   f"  UserKnownHostsFile {paths['known_hosts']}\n  StrictHostKeyChecking yes\n")
    hosts = ",".join(f"paramiko://{n.ip}" for n in cluster.nodes)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore",
         str(REPO / "molecule/resources/tests/test_etcd.py"), f"--hosts={hosts}", f"--ssh-config={cfg}"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_sigkill_of_one_member_leaves_cluster_writable(cluster):
    assert_survives_leader_sigkill(cluster, "/e2e/after-kill")
