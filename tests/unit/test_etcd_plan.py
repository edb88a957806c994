"""Placement rules: etcd membership and which PKI files go to which host."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bootstrap.errors import UserError
from bootstrap.flows import plan


@dataclass
class H:
    name: str
    ip: str
    etcd_member_name: str | None = None

    @property
    def node_ip(self) -> str:
        return self.ip


@dataclass
class Inv:
    control_plane: list
    workers: list
    etcd: list
    path: str = "hosts.yaml"
    hosts: dict = field(default_factory=dict)

    def __post_init__(self):
        for h in self.control_plane + self.workers + self.etcd:
            self.hosts.setdefault(h.name, h)


def stacked(n_cp=3, n_workers=1):
    cps = [H(f"cp{i}", f"10.0.0.{i}") for i in range(1, n_cp + 1)]
    ws = [H(f"w{i}", f"10.0.1.{i}") for i in range(1, n_workers + 1)]
    return Inv(control_plane=cps, workers=cps + ws, etcd=list(cps))


def external():
    cps = [H("cp1", "10.0.0.1"), H("cp2", "10.0.0.2")]
    es = [H(f"e{i}", f"10.0.2.{i}", etcd_member_name=f"etcd{i}") for i in range(1, 4)]
    return Inv(control_plane=cps, workers=list(cps), etcd=es)


def test_stacked_members_are_control_plane_hosts():
    nodes = plan.etcd_nodes(stacked())
    assert [n.host for n in nodes] == ["cp1", "cp2", "cp3"]
    assert nodes[0].peer_url == "https://10.0.0.1:2380"
    assert nodes[0].client_url == "https://10.0.0.1:2379"
    assert plan.initial_cluster(nodes) == (
        "cp1=https://10.0.0.1:2380,cp2=https://10.0.0.2:2380,cp3=https://10.0.0.3:2380")


def test_empty_etcd_group_falls_back_to_control_plane():
    inv = stacked()
    inv.etcd = []
    assert [n.host for n in plan.etcd_nodes(inv)] == ["cp1", "cp2", "cp3"]


def test_external_members_use_etcd_member_name():
    nodes = plan.etcd_nodes(external())
    assert [(n.host, n.name) for n in nodes] == [("e1", "etcd1"), ("e2", "etcd2"), ("e3", "etcd3")]


@pytest.mark.parametrize("count", [2, 4])
def test_even_member_count_is_refused(count):
    with pytest.raises(UserError, match="odd number"):
        plan.etcd_nodes(stacked(n_cp=count))


@pytest.mark.parametrize("count", [1, 3, 5])
def test_odd_member_counts_accepted(count):
    assert len(plan.etcd_nodes(stacked(n_cp=count))) == count


def test_duplicate_ip_is_refused():
    inv = stacked()
    inv.control_plane[1].ip = inv.control_plane[0].ip
    with pytest.raises(UserError, match="share the ip"):
        plan.etcd_nodes(inv)


def make_pki(tmp_path: Path, inv) -> Path:
    pki = tmp_path / "pki"
    shared = ["ca.crt", "ca.key", "etcd/ca.crt", "etcd/ca.key", "sa.key", "sa.pub"]
    for rel in shared:
        (pki / rel).parent.mkdir(parents=True, exist_ok=True)
        (pki / rel).write_text(rel)
    for h in inv.hosts.values():
        node = plan.node_pki_dir(pki, h.name)
        for base in ["etcd/server", "etcd/peer", "etcd/healthcheck-client",
                     "apiserver-etcd-client"]:
            for ext in (".crt", ".key"):
                (node / (base + ext)).parent.mkdir(parents=True, exist_ok=True)
                (node / (base + ext)).write_text(h.name + base)
    return pki


def dests(files):
    return {f["dest"].removeprefix("/etc/kubernetes/pki/"): f for f in files}


def test_stacked_control_plane_gets_cas_and_its_own_leaves(tmp_path):
    inv = stacked()
    pki = make_pki(tmp_path, inv)
    files = dests(plan.pki_files(inv, "cp2", pki))
    assert {"ca.crt", "ca.key", "etcd/ca.crt", "etcd/ca.key", "etcd/server.crt",
            "etcd/peer.key", "etcd/healthcheck-client.crt", "apiserver-etcd-client.key",
            "sa.key", "sa.pub"} <= set(files)
    assert files["etcd/server.crt"]["src"] == str(pki / "nodes/cp2/etcd/server.crt")
    assert files["ca.crt"]["src"] == str(pki / "ca.crt")
    assert files["ca.key"]["mode"] == "0600"
    assert files["ca.crt"]["mode"] == "0644"
    assert files["etcd/peer.key"]["mode"] == "0600"


def test_workers_get_no_keys_and_no_etcd_files(tmp_path):
    inv = stacked()
    pki = make_pki(tmp_path, inv)
    files = dests(plan.pki_files(inv, "w1", pki))
    assert set(files) == {"ca.crt"}


def test_external_etcd_hosts_get_no_ca_keys_and_cp_gets_no_etcd_serving_pair(tmp_path):
    inv = external()
    pki = make_pki(tmp_path, inv)
    etcd_files = dests(plan.pki_files(inv, "e1", pki))
    assert not any(d.endswith("ca.key") for d in etcd_files)
    assert {"etcd/ca.crt", "etcd/server.crt", "etcd/server.key", "etcd/peer.crt",
            "etcd/healthcheck-client.key"} <= set(etcd_files)
    assert "apiserver-etcd-client.crt" not in etcd_files
    cp_files = dests(plan.pki_files(inv, "cp1", pki))
    assert "apiserver-etcd-client.crt" in cp_files and "etcd/ca.crt" in cp_files
    assert "etcd/server.crt" not in cp_files and "etcd/peer.key" not in cp_files


def test_missing_required_file_names_host_and_file(tmp_path):
    inv = stacked()
    pki = make_pki(tmp_path, inv)
    (plan.node_pki_dir(pki, "cp1") / "etcd/peer.key").unlink()
    with pytest.raises(UserError, match="etcd/peer.key for host cp1"):
        plan.pki_plan(inv, pki)


def test_optional_files_skipped_when_absent(tmp_path):
    inv = stacked()
    pki = make_pki(tmp_path, inv)
    (pki / "sa.key").unlink()
    assert "sa.key" not in dests(plan.pki_files(inv, "cp1", pki))
