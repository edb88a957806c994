"""Semantics found wrong against upstream (issue 12, item 6): dryRun in DELETE and
Eviction bodies, newline-terminated JSON, pretty output."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request

import pytest

from .cluster import running_cluster


@pytest.fixture(scope="module")
def cluster():
    with running_cluster() as c:
        c.ctx = c.ssl_context()
        yield c


def _req(c, method, path, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(c.server.url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json",
                                          **(headers or {})})
    try:
        with urllib.request.urlopen(req, context=c.ctx, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


CM = "/api/v1/namespaces/default/configmaps"


def _kubectl(c, *args):
    return subprocess.run(["/usr/bin/kubectl", f"--kubeconfig={c.admin}", *args],
                          capture_output=True, text=True, timeout=60)


def test_kubectl_delete_dry_run_server_keeps_the_object(cluster):
    _req(cluster, "POST", CM, {"metadata": {"name": "keep"}})
    out = _kubectl(cluster, "delete", "configmap", "keep", "--dry-run=server")
    assert out.returncode == 0, out.stderr
    assert "(server dry run)" in out.stdout
    assert _req(cluster, "GET", CM + "/keep")[0] == 200


def test_dry_run_in_delete_body_is_honoured(cluster):
    _req(cluster, "POST", CM, {"metadata": {"name": "body-dry"}})
    code, _ = _req(cluster, "DELETE", CM + "/body-dry", {"dryRun": ["All"]})
    assert code == 200
    assert _req(cluster, "GET", CM + "/body-dry")[0] == 200
    code, out = _req(cluster, "DELETE", CM + "/body-dry", {"dryRun": ["Some"]})
    assert code == 400 and b"Invalid dryRun value" in out


def test_dry_run_eviction_keeps_the_pod(cluster):
    _req(cluster, "POST", "/api/v1/namespaces/default/serviceaccounts",
         {"metadata": {"name": "default"}})
    code, _ = _req(cluster, "POST", "/api/v1/namespaces/default/pods",
                   {"metadata": {"name": "evictee"},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    assert code == 201
    code, out = _req(cluster, "POST", "/api/v1/namespaces/default/pods/evictee/eviction", {
        "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "evictee"},
        "deleteOptions": {"dryRun": ["All"]}})
    assert code == 201, out
    assert _req(cluster, "GET", "/api/v1/namespaces/default/pods/evictee")[0] == 200


def test_json_ends_with_newline_and_errors_too(cluster):
    code, body = _req(cluster, "GET", CM)
    assert code == 200 and body.endswith(b"}\n")
    code, body = _req(cluster, "GET", CM + "/nope")
    assert code == 404 and body.endswith(b"}\n")


def test_pretty_output_for_the_query_and_for_curl(cluster):
    _, plain = _req(cluster, "GET", CM)
    assert b"\n  " not in plain
    _, pretty = _req(cluster, "GET", CM + "?pretty=true")
    assert pretty.startswith(b'{\n  "kind": "ConfigMapList"')
    _, curl = _req(cluster, "GET", CM, headers={"User-Agent": "curl/7.88.1"})
    assert curl.startswith(b'{\n  "kind"')
    _, off = _req(cluster, "GET", CM + "?pretty=false", headers={"User-Agent": "curl/7.88.1"})
    assert b"\n  " not in off
    assert json.loads(pretty) == json.loads(plain)


def test_new_daemonset_status_has_its_counters_for_the_python_client(cluster):
    from kubernetes import client, config
    api = client.AppsV1Api(config.new_client_from_config(config_file=str(cluster.admin)))
    ds = api.create_namespaced_daemon_set("default", {
        "metadata": {"name": "counters"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
            "metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
    assert (ds.status.current_number_scheduled, ds.status.number_misscheduled,
            ds.status.desired_number_scheduled, ds.status.number_ready) == (0, 0, 0, 0)
    listed = api.list_namespaced_daemon_set("default")
    assert listed.items[0].status.number_ready == 0
