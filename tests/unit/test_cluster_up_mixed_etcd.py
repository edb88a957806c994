"""cluster up over kubespray's inventory example: etcd members on two control-plane hosts and a
worker (mixed placement). The API servers get the whole member list; cluster up's etcd stage
runs every member, and `bootstrap init` no local etcd of its own."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from test_cluster_up_flow import Connector

from bootstrap.config.inventory import load_inventory
from bootstrap.flows import cluster_up as cu
from bootstrap.flows.plan import pki_plan

DATA = Path(__file__).parent / "data" / "kubespray" / "docs-mixed-etcd"
MEMBERS = ["https://10.3.0.1:2379", "https://10.3.0.2:2379", "https://10.3.0.3:2379"]


def _inventory(tmp_path: Path) -> Path:
    shutil.copytree(DATA, tmp_path / "inv")
    return tmp_path / "inv" / "inventory.ini"


def test_api_servers_get_every_member_and_init_runs_no_etcd(tmp_path):
    inv = _inventory(tmp_path)
    assert load_inventory(inv).topology == "mixed"
    connect = Connector()
    result = cu.cluster_up(str(inv), tags="pki,control-plane", connect=connect)
    assert not result.recap.failed
    cfg = yaml.safe_load((tmp_path / "inv" / "artifacts" / "kubeadm-config.yaml").read_text())
    ext = cfg["etcd"]["external"]
    assert ext["endpoints"] == MEMBERS
    assert ext["certFile"] == "/etc/kubernetes/pki/apiserver-etcd-client.crt"
    assert "local" not in cfg["etcd"]
    init = [c for c in connect.conns["node1"].commands if " init --config " in c]
    assert init and all("--skip-phases etcd" not in c for c in init)
    # node2 joins as a second control plane, with the same member list in its config.
    assert any(" join --discovery-file" in c and "--control-plane" in c
               for c in connect.conns["node2"].commands)


def test_every_member_is_an_etcd_host_and_gets_the_member_files(tmp_path):
    inv = _inventory(tmp_path)
    connect = Connector()
    result = cu.cluster_up(str(inv), tags="pki,etcd", dry_run=True, connect=connect)
    assert not result.recap.failed
    # The etcd stage probed and planned all three members, the worker node3 included.
    for host in ("node1", "node2", "node3"):
        assert any("uname -m" in c for c in connect.conns[host].commands), host
    assert not any("uname -m" in c for c in connect.conns["node4"].commands)
    cu.cluster_up(str(inv), tags="pki", connect=Connector())
    plan = pki_plan(load_inventory(inv), tmp_path / "inv" / "artifacts" / "pki")
    dests = {h: {f["dest"].rsplit("/pki/", 1)[1] for f in files} for h, files in plan.items()}
    assert {"etcd/server.crt", "etcd/peer.crt", "etcd/ca.crt"} <= dests["node3"]
    assert "apiserver.crt" not in dests["node3"]
    assert {"apiserver-etcd-client.crt", "etcd/ca.crt"} <= dests["node1"]
    assert dests["node4"] == {"ca.crt"}
