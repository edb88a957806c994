"""What a converged etcd host looks like, checked over SSH with testinfra.

Run by the stacked and external scenarios' verifier (ansible backend on the
sandbox inventory) or directly, e.g. ``pytest molecule/resources/tests/test_etcd.py
--hosts=ssh://root@10.250.1.11 --ssh-config=FILE``.
``ETCD_HOSTS`` (comma-separated addresses or names) limits the etcd checks to
those hosts; without it every host is taken for an etcd member (stacked).
"""

from __future__ import annotations

import os

import pytest

PKI = "/etc/kubernetes/pki"
ETCD_FILES = {
    f"{PKI}/etcd/ca.crt": 0o644,
    f"{PKI}/etcd/server.crt": 0o644,
    f"{PKI}/etcd/server.key": 0o600,
    f"{PKI}/etcd/peer.crt": 0o644,
    f"{PKI}/etcd/peer.key": 0o600,
    f"{PKI}/etcd/healthcheck-client.crt": 0o644,
    f"{PKI}/etcd/healthcheck-client.key": 0o600,
}


def _is_etcd(host) -> bool:
    wanted = os.environ.get("ETCD_HOSTS")
    if wanted:
        return host.backend.get_hostname() in wanted.split(",")
    try:
        return "etcd" in host.ansible.get_variables().get("group_names", ["etcd"])
    except Exception:  # noqa: BLE001 - not the ansible backend
        return True


@pytest.fixture
def etcd_host(host):
    if not _is_etcd(host):
        pytest.skip("not an etcd member")
    return host


def test_etcd_service_running_and_enabled(etcd_host):
    svc = etcd_host.service("etcd")
    assert svc.is_running
    assert svc.is_enabled


def test_etcd_unit_has_mutual_tls(etcd_host):
    unit = etcd_host.file("/etc/systemd/system/etcd.service").content_string
    for flag in ("--client-cert-auth=true", "--peer-client-cert-auth=true",
                 "--auto-tls=false", "--peer-auto-tls=false"):
        assert flag in unit


def test_data_dir_is_private(etcd_host):
    d = etcd_host.file("/var/lib/etcd")
    assert d.is_directory
    assert d.mode == 0o700
    assert d.user == "root"


@pytest.mark.parametrize("path,mode", sorted(ETCD_FILES.items()))
def test_certificates_present_with_modes(etcd_host, path, mode):
    f = etcd_host.file(path)
    assert f.is_file
    assert f.mode == mode


def test_client_port_listening(etcd_host):
    listening = etcd_host.check_output("ss -Htln")
    assert ":2379 " in listening
    assert "127.0.0.1:2379 " in listening


def test_peer_port_listening(etcd_host):
    assert ":2380 " in etcd_host.check_output("ss -Htln")


def test_kube_user_and_config_dir_owner_as_kubespray(host):
    # prepare: kubespray's kube_owner account and the dirs it owns.
    kube = host.user("kube")
    assert kube.exists
    assert kube.shell == "/sbin/nologin"
    assert kube.group == "kube-cert"
    assert not host.file(kube.home).exists
    for path, owner in (("/etc/kubernetes", "kube"), ("/etc/kubernetes/manifests", "kube"),
                        (PKI, "root")):
        assert host.file(path).user == owner, path
