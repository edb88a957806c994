"""A one-host cluster with kube_apiserver_port: 6444 comes up over SSH: the API server
listens there (not on 6443), admin.conf names it, kubectl reaches it, the node is Ready."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from e2e_names import sandbox_name
from etcd_helpers import cli, freeze_wheelhouse, ok

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(1800)]

NAME = sandbox_name("port")
PORT = 6444


def test_cluster_up_on_kube_apiserver_port(sandbox_factory, tmp_path_factory):
    inv_path = sandbox_factory(NAME, 1)
    freeze_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))
    inv = yaml.safe_load(inv_path.read_text())
    inv["all"].setdefault("vars", {})["kube_apiserver_port"] = PORT
    cluster = inv_path.parent / "cluster-port.yaml"
    cluster.write_text(yaml.safe_dump(inv))
    ok(cli("cluster", "up", "-i", str(cluster), timeout=1500))
    admin = cluster.parent / "artifacts" / "admin.conf"
    server = yaml.safe_load(admin.read_text())["clusters"][0]["cluster"]["server"]
    assert server.endswith(f":{PORT}"), server
    host = next(iter(inv["all"]["hosts"]))
    listening = ok(cli("sandbox", "ssh", NAME, host, "--", "ss -Htln", timeout=120))
    assert f":{PORT} " in listening and ":6443 " not in listening, listening
    out = subprocess.run(["/usr/bin/kubectl", "--kubeconfig", str(admin), "get", "nodes",
                          "-o", "json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    nodes = json.loads(out.stdout)["items"]
    assert [n["metadata"]["name"] for n in nodes] == [host]
    assert any(c["type"] == "Ready" and c["status"] == "True"
               for c in nodes[0]["status"]["conditions"])
    # kubeadm-config records the node's API endpoint on that port.
    cm = subprocess.run(["/usr/bin/kubectl", "--kubeconfig", str(admin), "-n", "kube-system",
                         "get", "configmap", "kubeadm-config", "-o", "json"],
                        capture_output=True, text=True, timeout=60)
    assert cm.returncode == 0, cm.stderr
    status = yaml.safe_load(json.loads(cm.stdout)["data"]["ClusterStatus"])
    assert status["apiEndpoints"][host]["bindPort"] == PORT
    # A second run changes nothing.
    again = ok(cli("cluster", "up", "-i", str(cluster), timeout=900))
    assert "cluster up: converged, nothing changed (0 changed)" in again, again[-3000:]
