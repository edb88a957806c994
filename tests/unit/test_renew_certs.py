"""Certificates across hosts: check-expiration -i, renew-certs, the expiry warning."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from bootstrap.config.inventory import load_inventory
from bootstrap.config.model import ClusterConfig
from bootstrap.errors import RemoteError, UserError
from bootstrap.flows import cluster_certs, node_vars
from bootstrap.flows import renew_certs as rc
from bootstrap.flows.cluster_pki import ensure_cluster_pki
from bootstrap.pki import ensure_all, ensure_kubeconfigs, read_kubeconfig
from bootstrap.pki.certs import cert_sans, read_cert_file, spec_from_cert
from bootstrap.pki.expiry import check_expiration, expiration_info, rows_from_info
from bootstrap.remote import Result
from bootstrap.remote.fake import FakeConnection

STACKED = """
all:
  hosts:
    cp1: {ansible_host: 10.9.0.1, ip: 10.9.0.1}
    cp2: {ansible_host: 10.9.0.2, ip: 10.9.0.2}
    cp3: {ansible_host: 10.9.0.3, ip: 10.9.0.3}
    w1: {ansible_host: 10.9.0.4, ip: 10.9.0.4}
  children:
    kube_control_plane: {hosts: {cp1: {}, cp2: {}, cp3: {}}}
    kube_node: {hosts: {cp1: {}, cp2: {}, cp3: {}, w1: {}}}
    etcd: {hosts: {cp1: {}, cp2: {}, cp3: {}}}
    k8s_cluster: {children: {kube_control_plane: {}, kube_node: {}}}
"""

# Two API servers, one separate etcd host, one worker: the e2e module's shape.
EXTERNAL = """
all:
  hosts:
    e1: {ansible_host: 10.9.1.9, ip: 10.9.1.9}
    cp1: {ansible_host: 10.9.1.1, ip: 10.9.1.1}
    cp2: {ansible_host: 10.9.1.2, ip: 10.9.1.2}
    w1: {ansible_host: 10.9.1.4, ip: 10.9.1.4}
  children:
    kube_control_plane: {hosts: {cp1: {}, cp2: {}}}
    kube_node: {hosts: {w1: {}}}
    etcd: {hosts: {e1: {}}}
    k8s_cluster: {children: {kube_control_plane: {}, kube_node: {}}}
"""

SHORT = ClusterConfig(certificate_validity_period=timedelta(days=2))


def _cluster(tmp_path: Path, text: str, config: ClusterConfig = SHORT):
    """An inventory with the artifacts cluster up makes before any host is touched."""
    path = tmp_path / "hosts.yaml"
    path.write_text(text)
    inv = load_inventory(path)
    endpoint = node_vars.api_endpoint(inv)
    pki_config = dataclasses.replace(node_vars.host_config(config, inv, endpoint),
                                     etcd=config.etcd)
    root, _ = ensure_cluster_pki(inv, pki_config)
    ctx = type("Ctx", (), {"inventory": inv, "pki_dir": root, "config": pki_config})()
    from bootstrap.flows.cluster_nodes import prepare_artifacts

    prepare_artifacts(ctx)
    return path, inv, root


# --- the machine-readable table ------------------------------------------------

def test_expiration_info_is_kubeadms_shape_and_reads_back(tmp_path):
    pki = tmp_path / "pki"
    ensure_all(pki, SHORT, "cp1", "10.0.0.1")
    ensure_kubeconfigs(tmp_path, pki, SHORT, "cp1", "10.0.0.1")
    rows, cas = check_expiration(pki, tmp_path)
    doc = json.loads(json.dumps(expiration_info(rows, cas)))
    assert doc["kind"] == "CertificateExpirationInfo"
    assert doc["apiVersion"] == "output.kubeadm.k8s.io/v1alpha3"
    apiserver = next(c for c in doc["certificates"] if c["name"] == "apiserver")
    assert apiserver["caName"] == "ca" and apiserver["missing"] is False
    assert 86400 < apiserver["residualTime"] <= 2 * 86400
    back, back_cas = rows_from_info(doc, "host cp1")
    assert [r.name for r in back] == [r.name for r in rows]
    assert [r.expires.replace(microsecond=0) for r in back] == \
        [r.expires.replace(microsecond=0) for r in rows]
    assert [c.name for c in back_cas] == ["ca", "front-proxy-ca", "etcd-ca"]


@pytest.mark.parametrize("doc", [[], {"kind": "Pod"}, {"kind": "CertificateExpirationInfo",
                                                        "certificates": [{"nope": 1}]}])
def test_a_foreign_document_is_one_user_error(doc):
    with pytest.raises(UserError) as exc:
        rows_from_info(doc, "host x")
    assert exc.value.line().startswith("host x: ")


def _bootstrap(*args):
    return subprocess.run([sys.executable, "-m", "bootstrap", *args], capture_output=True,
                          text=True, timeout=60)


def test_host_local_check_expiration_prints_json_and_yaml(tmp_path):
    pki = tmp_path / "pki"
    ensure_all(pki, SHORT, "cp1", "10.0.0.1")
    as_json = _bootstrap("certs", "check-expiration", "--cert-dir", str(pki),
                         "--kubeconfig-dir", str(tmp_path), "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    doc = json.loads(as_json.stdout)
    assert {c["name"]: c["missing"] for c in doc["certificates"]}["admin.conf"] is True
    as_yaml = _bootstrap("certs", "check-expiration", "--cert-dir", str(pki),
                         "--kubeconfig-dir", str(tmp_path), "-o", "yaml")
    from_yaml = yaml.safe_load(as_yaml.stdout)
    assert from_yaml["kind"] == doc["kind"]
    for key in ("certificates", "certificateAuthorities"):
        assert [(c["name"], c["expirationDate"]) for c in from_yaml[key]] == \
            [(c["name"], c["expirationDate"]) for c in doc[key]]
    bad = _bootstrap("certs", "check-expiration", "-o", "xml")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


# --- over SSH ------------------------------------------------------------------

def _table_of(tmp_path: Path) -> str:
    pki = tmp_path / "pki"
    ensure_all(pki, SHORT, "cp1", "10.0.0.1")
    return json.dumps(expiration_info(*check_expiration(pki, tmp_path)))


def test_read_host_runs_the_installed_toolkit_and_parses_its_json(tmp_path):
    conn = FakeConnection("cp1", {r"check-expiration -o json": Result(0, _table_of(tmp_path))})
    got = cluster_certs.read_host(conn)
    assert got.reachable and got.host == "cp1"
    assert {r.name for r in got.rows if not r.missing} >= {"apiserver", "etcd-peer"}
    assert conn.commands == ["/opt/bootstrap/current/bin/bootstrap certs check-expiration "
                             "-o json"]


@pytest.mark.parametrize("result, needle", [
    (Result(2, "", "error: no such option: -o\n"), "exited 2: error: no such option: -o"),
    (Result(0, "CERTIFICATE EXPIRES\n"), "printed no JSON"),
    (Result(0, '{"kind": "Other"}'), "not a CertificateExpirationInfo document"),
])
def test_a_host_whose_command_fails_is_reported_not_raised(result, needle):
    got = cluster_certs.read_host(FakeConnection("w1", {"check-expiration": result}))
    assert not got.reachable and needle in got.error


def test_unreachable_hosts_are_reported_and_the_others_still_read(tmp_path):
    inv = load_inventory(_write(tmp_path, STACKED))
    table = _table_of(tmp_path)
    opened = []

    def connect_one(host):
        if host.name == "cp2":
            raise RemoteError("cannot connect to 10.9.0.2:22: timed out", where="host cp2")
        conn = FakeConnection(host.name, {"check-expiration": Result(0, table)})
        opened.append(conn)
        return conn

    got = cluster_certs.host_expiration(list(inv.hosts.values()), connect_one)
    assert [g.host for g in got] == ["cp1", "cp2", "cp3", "w1"]
    assert got[1].error.startswith("unreachable: host cp2: cannot connect")
    assert all(g.reachable for g in (got[0], got[2], got[3]))
    assert all(c.closed for c in opened)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hosts.yaml"
    path.write_text(text)
    return path


def test_check_expiration_with_a_bad_inventory_is_one_line(tmp_path):
    path = tmp_path / "hosts.yaml"
    path.write_text("all: [1, 2]\n")
    out = _bootstrap("certs", "check-expiration", "-i", str(path))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0


# --- the summary's warning -------------------------------------------------------

def test_expiring_soon_reads_the_artifacts(tmp_path):
    _path, inv, root = _cluster(tmp_path, STACKED)
    soon = cluster_certs.expiring_soon(root.parent)
    names = {(e.where, e.name) for e in soon}
    # 2-day leaves: every node's, and the kubeconfigs handed to hosts; the CAs are 10 years.
    assert {("cp1", "apiserver.crt"), ("cp3", "etcd/peer.crt"), ("artifacts", "admin.conf"),
            ("artifacts", "kube-proxy.conf"), ("artifacts", "dns.conf")} <= names
    assert ("artifacts", "ca.crt") not in names
    assert all(timedelta(0) < e.residual < timedelta(days=2) for e in soon)


def test_nothing_expires_soon_with_default_validity(tmp_path):
    _path, _inv, root = _cluster(tmp_path, STACKED, ClusterConfig())
    assert cluster_certs.expiring_soon(root.parent) == []


def test_expiring_soon_includes_host_tables(tmp_path):
    _path, _inv, root = _cluster(tmp_path, STACKED, ClusterConfig())
    host = cluster_certs.read_host(FakeConnection("cp1", {"check-expiration": Result(
        0, _table_of(tmp_path / "host"))}))
    soon = cluster_certs.expiring_soon(root.parent, [host])
    assert {e.where for e in soon} == {"cp1"}
    assert "controller-manager.conf" not in {e.name for e in soon}  # missing there
    assert "apiserver" in {e.name for e in soon}


# --- renew-certs: plan ----------------------------------------------------------------

def test_plan_orders_hosts_and_names_what_each_restarts(tmp_path):
    _path, inv, root = _cluster(tmp_path, STACKED)
    plan = {r.host: r for r in rc.plan_renewal(inv, root)}
    assert list(plan) == ["cp1", "cp2", "cp3", "w1"]
    cp1 = plan["cp1"]
    assert sorted(Path(f["dest"]).name for f in cp1.files["apiserver"]) == sorted(
        f"{b}.{e}" for b in ("apiserver", "apiserver-kubelet-client", "front-proxy-client",
                             "apiserver-etcd-client") for e in ("crt", "key"))
    assert {f["dest"] for f in cp1.files["etcd"]} == {
        f"/etc/kubernetes/pki/etcd/{b}.{e}" for b in ("server", "peer", "healthcheck-client")
        for e in ("crt", "key")}
    # Per-node files come from the node's own dir, never another node's.
    assert all("/nodes/cp1/" in f["src"] for fs in cp1.files.values() for f in fs)
    assert cp1.restarts() == ["etcd", "kube-apiserver", "kube-controller-manager",
                              "kube-scheduler", "kube-proxy", "bootstrap-dns"]
    assert "super-admin.conf" in cp1.kubeconfigs  # made by init, on the first host only
    assert plan["cp2"].kubeconfigs == ["admin.conf", "controller-manager.conf",
                                       "scheduler.conf"]
    assert plan["w1"].files == {} and plan["w1"].kubeconfigs == []
    assert plan["w1"].restarts() == ["kube-proxy"]


def test_a_single_etcd_member_is_not_restarted(tmp_path):
    _path, inv, root = _cluster(tmp_path, EXTERNAL)
    plan = {r.host: r for r in rc.plan_renewal(inv, root)}
    assert list(plan) == ["e1", "cp1", "cp2", "w1"]  # etcd first: its clients after it
    assert plan["e1"].restarts() == [] and plan["e1"].certificates() == [
        "etcd/server.crt", "etcd/peer.crt", "etcd/healthcheck-client.crt"]
    assert plan["cp1"].restarts()[0] == "kube-apiserver"
    # Two API servers: the DNS servers run on both, the worker runs kube-proxy only.
    assert plan["w1"].restarts() == ["kube-proxy"]


# --- renew-certs: artifacts ------------------------------------------------------------

def test_renew_artifacts_extends_every_leaf_keeping_subject_sans_and_key(tmp_path):
    _path, inv, root = _cluster(tmp_path, STACKED)
    before = {p: read_cert_file(p) for p in root.rglob("nodes/*/**/*.crt")}
    ca_before = (root / "ca.crt").read_bytes()
    admin_before = read_kubeconfig(root.parent / "admin.conf")
    renewed = rc.renew_artifacts(root, ClusterConfig())  # a one-year validity now
    assert len([p for p in renewed if p.suffix == ".crt"]) == len(before)
    for path, old in before.items():
        if "registry" in path.name:
            continue  # not a kubeadm leaf; cluster up's registry role owns it
        new = read_cert_file(path)
        assert new.not_valid_after_utc - old.not_valid_after_utc > timedelta(days=300), path
        assert spec_from_cert(new) == spec_from_cert(old)
        assert cert_sans(new) == cert_sans(old)
        assert new.public_key() == old.public_key()
        assert new.serial_number != old.serial_number
    assert (root / "ca.crt").read_bytes() == ca_before
    admin = read_kubeconfig(root.parent / "admin.conf")
    assert admin.server == admin_before.server and admin.user == admin_before.user
    assert admin.cert.not_valid_after_utc - admin_before.cert.not_valid_after_utc > \
        timedelta(days=300)


def test_renew_certs_without_a_cluster_is_one_line(tmp_path):
    path = _write(tmp_path, STACKED)
    out = _bootstrap("cluster", "renew-certs", "-i", str(path))
    assert out.returncode == 2 and "no cluster CA in" in out.stderr
    assert out.stderr.strip().count("\n") == 0


def test_dry_run_changes_nothing_and_says_what_would_happen(tmp_path):
    path, _inv, root = _cluster(tmp_path, STACKED)
    before = {p: p.read_bytes() for p in root.parent.rglob("*") if p.is_file()}
    out = _bootstrap("cluster", "renew-certs", "-i", str(path), "--dry-run")
    assert out.returncode == 0, out.stderr
    cp1 = next(line for line in out.stdout.splitlines() if line.startswith("cp1: would renew"))
    assert "apiserver.crt" in cp1 and "etcd/peer.crt" in cp1 and "scheduler.conf" in cp1
    assert "restart: etcd, kube-apiserver, kube-controller-manager" in out.stdout
    assert "w1: would renew kube-proxy kubeconfig; restart: kube-proxy" in out.stdout
    assert "(dry run): 4 host(s) would be renewed" in out.stdout
    assert {p: p.read_bytes() for p in root.parent.rglob("*") if p.is_file()} == before


def test_unknown_limit_host_is_refused_before_anything(tmp_path):
    path, _inv, _root = _cluster(tmp_path, STACKED)
    out = _bootstrap("cluster", "renew-certs", "-i", str(path), "--limit", "nope")
    assert out.returncode == 2 and "--limit names unknown host(s): nope" in out.stderr


# --- renew-certs: over (fake) connections ----------------------------------------------

def test_hosts_are_renewed_one_at_a_time_each_restart_after_its_files(tmp_path):
    path, inv, root = _cluster(tmp_path, STACKED)
    log: list[tuple[str, str]] = []

    def connect(hosts):
        def recorder(name):
            def respond(cmd):
                log.append((name, cmd))
                return Result(0, "")
            return respond
        return {h.name: FakeConnection(h.name, {".": recorder(h.name)}) for h in hosts}

    result = rc.renew_certs(str(path), connect=connect)
    assert not result.recap.failures, result.recap.failures
    hosts_in_order = list(dict.fromkeys(h for h, _ in log))
    assert hosts_in_order == ["cp1", "cp2", "cp3", "w1"]
    # Serial: each host is finished before the next one starts.
    first_of = {h: next(i for i, (x, _) in enumerate(log) if x == h) for h in hosts_in_order}
    last_of = {h: max(i for i, (x, _) in enumerate(log) if x == h) for h in hosts_in_order}
    assert last_of["cp1"] < first_of["cp2"] < last_of["cp2"] < first_of["cp3"]
    cp1 = [c for h, c in log if h == "cp1"]
    restart = next(i for i, c in enumerate(cp1) if "restart -- kube-apiserver" in c)
    ready = next(i for i, c in enumerate(cp1) if "/readyz" in c)
    renew_cm = next(i for i, c in enumerate(cp1) if "certs renew controller-manager.conf" in c)
    assert restart < ready < next(i for i, c in enumerate(cp1)
                                  if "restart -- kube-controller-manager" in c)
    assert renew_cm < restart  # files first, then the restarts in the handlers' order
    assert any("certs renew super-admin.conf" in c for c in cp1)
    assert any("restart -- etcd" in c for c in cp1)  # three members: a rolling restart is safe
    w1 = [c for h, c in log if h == "w1"]
    assert not any("certs renew" in c or "kube-apiserver" in c for c in w1)
    assert any("restart -- kube-proxy" in c for c in w1)


def test_cluster_up_summary_warns_about_what_expires_within_30_days(tmp_path):
    from bootstrap.flows import cluster_nodes

    path, inv, root = _cluster(tmp_path, STACKED)
    table = _table_of(tmp_path / "host")
    conns = {h: FakeConnection(h, {"check-expiration": Result(0, table)})
             for h in ("cp1", "cp2", "cp3", "w1")}
    ctx = type("Ctx", (), {"inventory": inv, "pki_dir": root, "config": SHORT,
                           "connections": conns})()
    a = cluster_nodes.prepare_artifacts(ctx)
    expiring = cluster_nodes.expiring_certificates(ctx, a)
    assert {e.where for e in expiring} == {"artifacts", "cp1", "cp2", "cp3"}
    # Only the control-plane hosts are asked (the rest of their files are in artifacts).
    assert conns["w1"].commands == [] and len(conns["cp1"].commands) == 1
    text = cluster_nodes.summary(a, [], expiring, str(path))
    assert f"WARNING: {len(expiring)} certificate(s) expire within 30 days: " in text
    assert "h), " in text and f"and {len(expiring) - 8} more" in text  # 2-day leaves: 47h
    assert f"bootstrap cluster renew-certs -i {path}" in text
    assert "WARNING" not in cluster_nodes.summary(a, [], [], str(path))


def test_summary_survives_a_control_plane_host_that_cannot_answer(tmp_path):
    from bootstrap.flows import cluster_nodes

    _path, inv, root = _cluster(tmp_path, STACKED, ClusterConfig())
    conns = {h: FakeConnection(h, {"check-expiration": Result(127, "", "not found")})
             for h in ("cp1", "cp2", "cp3")}
    ctx = type("Ctx", (), {"inventory": inv, "pki_dir": root, "config": ClusterConfig(),
                           "connections": conns})()
    assert cluster_nodes.expiring_certificates(ctx, cluster_nodes.prepare_artifacts(ctx)) == []


def test_a_host_without_the_toolkit_has_its_certificate_files_read(tmp_path):
    """A separate etcd host: no /opt/bootstrap there, only etcd's files."""
    pki = tmp_path / "pki"
    ensure_all(pki, SHORT, "e1", "10.0.0.9")
    files = {f"/etc/kubernetes/pki/{rel}": (pki / rel).read_bytes()
             for rel in ("etcd/ca.crt", "etcd/server.crt", "etcd/peer.crt",
                         "etcd/healthcheck-client.crt")}
    conn = FakeConnection("e1", {"check-expiration": Result(127, "", "sh: 1: not found"),
                                 r"\[ -e": Result(0, "")}, files=files)
    read: list[str] = []
    get = conn.get
    conn.get = lambda path: (read.append(path), get(path))[1]
    got = cluster_certs.read_host(conn)
    assert got.reachable, got.error
    present = {r.name: r for r in got.rows if not r.missing}
    assert set(present) == {"etcd-server", "etcd-peer", "etcd-healthcheck-client"}
    assert present["etcd-peer"].expires == read_cert_file(pki / "etcd/peer.crt") \
        .not_valid_after_utc
    assert present["etcd-peer"].externally_managed  # the etcd CA key is not on that host
    assert [c.name for c in got.cas if not c.missing] == ["etcd-ca"]
    # Only certificates were read: no private key leaves the host.
    assert read and all(p.endswith(".crt") for p in read)


def test_a_garbage_certificate_on_a_host_is_that_hosts_error(tmp_path):
    conn = FakeConnection("e1", {"check-expiration": Result(127, "")},
                          files={"/etc/kubernetes/pki/etcd/server.crt": b"not a cert"})
    got = cluster_certs.read_host(conn)
    assert not got.reachable and "cannot parse certificate" in got.error
