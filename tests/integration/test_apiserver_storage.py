"""Storage-level guarantees: encryption at rest, several API servers on one etcd,
and the process's flag handling."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading

import pytest
from kubernetes import client, config, watch

from .cluster import ROOT, APIServer, Cluster, free_port

ENCRYPTION = """\
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - aescbc:
          keys:
            - name: key1
              secret: {key}
      - identity: {{}}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    enc = tmp_path_factory.mktemp("enc") / "encryption.yaml"
    enc.write_text(ENCRYPTION.format(key=base64.b64encode(os.urandom(32)).decode()))
    c = Cluster(extra_args=[f"--encryption-provider-config={enc}"])
    c.start()
    try:
        c.add_server()
        yield c
    finally:
        c.stop()


def _api(cluster, server) -> client.CoreV1Api:
    kc = cluster.kubeconfig("kubernetes-admin", ("system:masters",), server=server)
    return client.CoreV1Api(config.new_client_from_config(config_file=str(kc)))


def test_secrets_encrypted_at_rest(cluster):
    core = _api(cluster, cluster.servers[0])
    core.create_namespaced_secret("default", client.V1Secret(
        metadata=client.V1ObjectMeta(name="topsecret"), string_data={"password": "hunter2"}))
    raw = subprocess.run(cluster.etcd.etcdctl("get", "/registry/secrets/default/topsecret",
                                              "--print-value-only"),
                         capture_output=True, check=True).stdout
    assert raw.startswith(b"k8s:enc:aescbc:v1:key1:")
    assert b"hunter2" not in raw and base64.b64encode(b"hunter2") not in raw
    back = core.read_namespaced_secret("topsecret", "default")
    assert base64.b64decode(back.data["password"]) == b"hunter2"
    # Other resources stay plain JSON (identity).
    core.create_namespaced_config_map("default", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="plain"), data={"a": "b"}))
    cm = subprocess.run(cluster.etcd.etcdctl("get", "/registry/configmaps/default/plain",
                                             "--print-value-only"),
                        capture_output=True, check=True).stdout
    assert json.loads(cm)["data"] == {"a": "b"}


def test_two_servers_see_each_others_writes(cluster):
    a, b = (_api(cluster, s) for s in cluster.servers[:2])
    rv = b.list_namespaced_config_map("default").metadata.resource_version
    seen: list[str] = []
    done = threading.Event()

    def watch_b():
        w = watch.Watch()
        for ev in w.stream(b.list_namespaced_config_map, "default", resource_version=rv,
                           timeout_seconds=20):
            if ev["object"].metadata.name.startswith("cross-"):
                seen.append(f'{ev["type"]}:{ev["object"].metadata.name}')
            if len(seen) == 2:
                w.stop()
        done.set()

    t = threading.Thread(target=watch_b)
    t.start()
    try:
        a.create_namespaced_config_map("default", client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="cross-1")))
        a.delete_namespaced_config_map("cross-1", "default")
    finally:
        t.join(30)
    assert seen == ["ADDED:cross-1", "DELETED:cross-1"]
    # And a write through B is immediately readable through A (no server-local state).
    b.create_namespaced_config_map("default", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="cross-2")))
    assert a.read_namespaced_config_map("cross-2", "default").metadata.name == "cross-2"
    eps = a.read_namespaced_endpoints("kubernetes", "default")
    assert [x.ip for x in eps.subsets[0].addresses] == ["127.0.0.1"]


def _run_server(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bootstrap.agents.apiserver", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_unknown_flag_is_one_line_exit_2():
    r = _run_server("--etcd-servers=https://127.0.0.1:1", "--no-such-flag")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ")
    assert "--no-such-flag" in r.stderr


def test_unreadable_file_is_one_line_exit_2(tmp_path):
    r = _run_server("--etcd-servers=https://127.0.0.1:1",
                    f"--tls-cert-file={tmp_path / 'missing.crt'}",
                    f"--tls-private-key-file={tmp_path / 'missing.key'}")
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: --tls-cert-file: cannot read {tmp_path / 'missing.crt'}"


def test_fails_over_to_the_next_etcd_endpoint(cluster):
    """A dead first member in --etcd-servers: requests go to the next one."""
    dead = f"https://127.0.0.1:{free_port()}"
    server = APIServer(cluster.base, cluster.pki, cluster.etcd,
                       [f"--etcd-servers={dead},{cluster.etcd.url}"])
    cluster.servers.append(server)  # stopped with the cluster, even if start fails
    server.start()
    core = _api(cluster, server)
    core.create_namespaced_config_map("default", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="via-second-member")))
    assert core.read_namespaced_config_map("via-second-member", "default").metadata.name
