"""Certificates across hosts on a sandbox cluster: check-expiration -i, renew-certs.

Two control-plane hosts (so one API server always answers), one worker that
reaches them through its localhost balancer (the HA endpoint), one separate
etcd host. A client on the worker reads the API through that endpoint the
whole time renew-certs runs, one new TLS connection per request; every
request must succeed. Afterwards every host's certificates expire later
than before, the running servers present the renewed certificates, the
cluster is Ready, and a second `cluster up` finds nothing to change (hosts
and artifacts agree). Old certificates are not revoked (as upstream); a
forged one never worked.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from e2e_names import sandbox_name
from etcd_helpers import cli, freeze_wheelhouse, ok

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(2400)]

NAME = sandbox_name("rc")
CP1, CP2, WORKER, ETCD = f"{NAME}-1", f"{NAME}-2", f"{NAME}-3", f"{NAME}-etcd1"
KUBECTL = "/usr/bin/kubectl"
CLIENT_LOG, CLIENT_STOP = "/tmp/ce-renew-client.log", "/tmp/ce-renew-client.stop"
# Each request is a new connection to the worker's balancer, verified against the
# cluster CA, authenticated with the kubelet's own (rotating) client certificate.
CLIENT = (
    f"rm -f {CLIENT_LOG} {CLIENT_STOP}; "
    f"while [ ! -e {CLIENT_STOP} ]; do "
    "curl -s -o /dev/null -w '%{http_code}\\n' --max-time 10 "
    "--cacert /etc/kubernetes/pki/ca.crt "
    "--cert /var/lib/kubelet/pki/kubelet-client-current.pem "
    "--key /var/lib/kubelet/pki/kubelet-client-current.pem "
    f"https://127.0.0.1:6443/api/v1/nodes/{WORKER} >> {CLIENT_LOG}; "
    "sleep 0.2; done; echo done >> " + CLIENT_LOG)


def ssh(host: str, cmd: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return cli("sandbox", "ssh", NAME, host, "--", cmd, timeout=timeout)


def kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), *args],
                          capture_output=True, text=True, timeout=60)


def tables(inventory: Path) -> dict:
    return json.loads(ok(cli("certs", "check-expiration", "-i", str(inventory), "-o", "json",
                             timeout=300)))


def not_after(doc: dict) -> dict[tuple[str, str], datetime]:
    return {(host, c["name"]): datetime.fromisoformat(c["expirationDate"].replace("Z", "+00:00"))
            for host, info in doc.items() for c in info["certificates"] if not c["missing"]}


def served_serial(host: str, address: str, extra: str = "") -> str:
    """The serial of the certificate a server presents now (openssl on the host)."""
    r = ssh(host, f"echo | openssl s_client -connect {address} {extra} 2>/dev/null "
                  "| openssl x509 -noout -serial")
    return r.stdout.strip()


def file_serial(host: str, path: str) -> str:
    return ssh(host, f"openssl x509 -noout -serial -in {path}").stdout.strip()


class Cluster:
    pass


@pytest.fixture(scope="module")
def cluster(sandbox_factory, tmp_path_factory):
    inv = sandbox_factory(NAME, 3, etcd_hosts=1, control_plane=2)
    freeze_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))
    c = Cluster()
    c.inventory, c.admin = inv, inv.parent / "artifacts" / "admin.conf"
    try:
        ok(cli("cluster", "up", "-i", str(inv), timeout=1800))
        c.before = tables(inv)
        c.old_admin = tmp_path_factory.mktemp("old") / "admin.conf"
        c.old_admin.write_bytes(c.admin.read_bytes())
        c.dry = cli("cluster", "renew-certs", "-i", str(inv), "--dry-run", timeout=300)
        c.dry_after = tables(inv)
        started = ssh(WORKER, f"setsid nohup sh -c {shlex.quote(CLIENT)} </dev/null >/dev/null 2>&1 &")
        assert started.returncode == 0, started.stderr
        try:
            c.renew = cli("cluster", "renew-certs", "-i", str(inv), timeout=1500)
        finally:
            ssh(WORKER, f"touch {CLIENT_STOP}")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and \
                    "done" not in ssh(WORKER, f"tail -1 {CLIENT_LOG}").stdout:
                time.sleep(1)
            c.client_log = ssh(WORKER, f"cat {CLIENT_LOG}").stdout.split()
        c.after = tables(inv)
        yield c
    finally:
        sandbox_factory.down(NAME)


def test_check_expiration_reads_every_host_over_ssh(cluster):
    doc = cluster.before
    assert set(doc) == {CP1, CP2, WORKER, ETCD}
    names = {h: {c["name"] for c in info["certificates"] if not c["missing"]}
             for h, info in doc.items()}
    cp = {"admin.conf", "controller-manager.conf", "scheduler.conf", "apiserver",
          "apiserver-kubelet-client", "front-proxy-client", "apiserver-etcd-client"}
    # kubeadm makes super-admin.conf on the init host only.
    assert names[CP1] == cp | {"super-admin.conf"} and names[CP2] == cp
    assert names[ETCD] == {"etcd-server", "etcd-peer", "etcd-healthcheck-client"}
    assert names[WORKER] == set()
    # The CA files: the workers hold only the cluster CA's certificate (no key).
    cas = {c["name"]: c for c in doc[WORKER]["certificateAuthorities"] if not c["missing"]}
    assert set(cas) == {"ca"} and cas["ca"]["externallyManaged"] is True
    cp_cas = {c["name"] for c in doc[CP1]["certificateAuthorities"] if not c["missing"]}
    assert cp_cas == {"ca", "front-proxy-ca", "etcd-ca"}


def test_check_expiration_table_and_an_unreachable_host(cluster, tmp_path):
    text = ok(cli("certs", "check-expiration", "-i", str(cluster.inventory), timeout=300))
    assert f"{CP1} (" in text and "apiserver-etcd-client" in text
    assert "CERTIFICATE AUTHORITY" in text and "no renewable certificates on this host" in text
    inv = yaml.safe_load(cluster.inventory.read_text())
    ghost = dict(inv["all"]["hosts"][WORKER])
    ghost["ansible_host"] = ghost["ip"] = ghost["ip"].rsplit(".", 1)[0] + ".250"
    inv["all"]["hosts"]["ghost"] = ghost
    inv["all"]["children"]["kube_node"]["hosts"]["ghost"] = {}
    path = cluster.inventory.parent / "with-ghost.yaml"
    path.write_text(yaml.safe_dump(inv))
    try:
        out = cli("certs", "check-expiration", "-i", str(path), timeout=300)
    finally:
        path.unlink()
    assert out.returncode == 1
    assert "ghost (" in out.stdout and "UNREACHABLE: unreachable" in out.stdout
    assert f"{CP2} (" in out.stdout  # the others are still read
    assert "could not check 1 of 5 host(s): ghost" in out.stderr
    assert "Traceback" not in out.stderr


def test_dry_run_lists_the_plan_and_changes_nothing(cluster):
    out = ok(cluster.dry)
    assert f"{ETCD}: would renew etcd/server.crt, etcd/peer.crt" in out
    # One etcd member: not restarted (it re-reads its files on each new handshake).
    assert f"{ETCD}: would renew etcd/server.crt, etcd/peer.crt, " \
           "etcd/healthcheck-client.crt; restart: nothing" in out
    assert f"{WORKER}: would renew kube-proxy kubeconfig; restart: kube-proxy" in out
    assert not_after(cluster.dry_after) == not_after(cluster.before)


def test_the_api_answered_through_the_ha_endpoint_throughout(cluster):
    out = ok(cluster.renew)
    assert "cluster renew-certs: renewed on 4 host(s)" in out, out[-3000:]
    codes = [c for c in cluster.client_log if c != "done"]
    failed = [c for c in codes if c != "200"]
    assert codes, "the client made no request"
    assert not failed, f"{len(failed)} of {len(codes)} requests failed: {sorted(set(failed))}"


def test_every_certificate_on_every_host_expires_later(cluster):
    before, after = not_after(cluster.before), not_after(cluster.after)
    assert set(after) == set(before)
    later = {k for k in before if after[k] > before[k]}
    assert later == set(before), sorted(set(before) - later)


def test_the_running_servers_present_the_renewed_certificates(cluster):
    for host in (CP1, CP2):
        ip = yaml.safe_load(cluster.inventory.read_text())["all"]["hosts"][host]["ip"]
        assert served_serial(host, f"{ip}:6443") == \
            file_serial(host, "/etc/kubernetes/pki/apiserver.crt")
    etcd_ip = yaml.safe_load(cluster.inventory.read_text())["all"]["hosts"][ETCD]["ip"]
    client = ("-cert /etc/kubernetes/pki/etcd/healthcheck-client.crt "
              "-key /etc/kubernetes/pki/etcd/healthcheck-client.key")
    assert served_serial(ETCD, f"{etcd_ip}:2379", client) == \
        file_serial(ETCD, "/etc/kubernetes/pki/etcd/server.crt")
    # kube-proxy's kubeconfig on the worker is the renewed one from the artifacts.
    art = cluster.inventory.parent / "artifacts" / "kube-proxy.conf"
    on_host = ssh(WORKER, "cat /var/lib/kube-proxy/kubeconfig.conf").stdout
    assert on_host == art.read_text()


def test_cluster_is_ready_with_the_renewed_admin_conf(cluster):
    old = x509.load_pem_x509_certificate(_client_cert(cluster.old_admin))
    new = x509.load_pem_x509_certificate(_client_cert(cluster.admin))
    assert new.not_valid_after_utc > old.not_valid_after_utc
    out = kubectl(cluster.admin, "get", "nodes", "-o", "json")
    assert out.returncode == 0, out.stderr
    nodes = json.loads(out.stdout)["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == sorted([CP1, CP2, WORKER])
    assert all(any(c["type"] == "Ready" and c["status"] == "True"
                   for c in n["status"]["conditions"]) for n in nodes)


def _client_cert(kubeconfig: Path) -> bytes:
    import base64

    doc = yaml.safe_load(kubeconfig.read_text())
    return base64.b64decode(doc["users"][0]["user"]["client-certificate-data"])


def test_old_certificate_still_works_and_a_forged_one_never_did(cluster, tmp_path):
    # Upstream does not revoke renewed leaves: the old admin.conf is valid until notAfter.
    assert kubectl(cluster.old_admin, "get", "--raw", "/api").returncode == 0
    # Same subject, signed by a CA of our own making: refused.
    doc = yaml.safe_load(cluster.admin.read_text())
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kubeadm:cluster-admins"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes-admin")])
    now = datetime.now().astimezone()
    forged = (x509.CertificateBuilder().subject_name(name).issuer_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")]))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now.replace(year=now.year + 1))
        .sign(key, hashes.SHA256()))
    import base64

    user = doc["users"][0]["user"]
    user["client-certificate-data"] = base64.b64encode(
        forged.public_bytes(serialization.Encoding.PEM)).decode()
    user["client-key-data"] = base64.b64encode(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption())).decode()
    path = tmp_path / "forged.conf"
    path.write_text(yaml.safe_dump(doc))
    out = kubectl(path, "get", "--raw", "/api/v1/namespaces/kube-system/secrets")
    # Refused in the TLS handshake (a client certificate no trusted CA signed: the
    # server aborts it, as Go's VerifyClientCertIfGiven does) or with 401, never served.
    assert out.returncode != 0, out.stdout[:200]
    # kubectl words an aborted TLS 1.3 handshake as "EOF" when the server's alert is not
    # read before the close (the client finished its side before the server verified).
    assert any(s in out.stderr for s in ("Unauthorized", "401", "certificate",
                                         "connection reset", "handshake", "EOF")), out.stderr
    # The same request with the cluster's own credential is served: the server was up.
    assert kubectl(cluster.admin, "get", "--raw",
                   "/api/v1/namespaces/kube-system/secrets").returncode == 0


def test_cluster_up_afterwards_changes_nothing(cluster):
    out = ok(cli("cluster", "up", "-i", str(cluster.inventory), timeout=900))
    assert "cluster up: converged, nothing changed (0 changed)" in out, out[-3000:]
    assert "WARNING" not in out
