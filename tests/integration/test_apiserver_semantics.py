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


def test_volume_without_source_reads_back_as_empty_dir(cluster):
    """SetDefaults_Volume through the real server; a named source stays as it was."""
    _req(cluster, "POST", "/api/v1/namespaces/default/serviceaccounts",
         {"metadata": {"name": "default"}})
    code, out = _req(cluster, "POST", "/api/v1/namespaces/default/pods", {
        "metadata": {"name": "bare-volume"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}],
                 "volumes": [{"name": "scratch"}, {"name": "cm", "configMap": {"name": "x"}}]}})
    assert code == 201, out
    code, out = _req(cluster, "GET", "/api/v1/namespaces/default/pods/bare-volume")
    assert json.loads(out)["spec"]["volumes"][:2] == [
        {"name": "scratch", "emptyDir": {}},
        {"name": "cm", "configMap": {"name": "x", "defaultMode": 420}}]


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


KINDS = """
apiVersion: v1
kind: ReplicationController
metadata: {name: rc1}
spec: {replicas: 2, template: {metadata: {labels: {app: rc1}}, spec: {containers: [{name: c, image: busybox}]}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ing1}
spec: {rules: [{host: a.example.com, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}]}}]}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: hpa1}
spec: {scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}, maxReplicas: 5}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local}
provisioner: kubernetes.io/no-provisioner
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv1}
spec: {capacity: {storage: 1Gi}, accessModes: [ReadWriteOnce], hostPath: {path: /tmp/pv1}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: runc}
handler: runc
"""


def test_more_kinds_apply_list_scale_and_explain(cluster):
    out = subprocess.run(["/usr/bin/kubectl", f"--kubeconfig={cluster.admin}", "apply", "-f", "-"],
                         input=KINDS, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    everything = _kubectl(cluster, "get", "all", "-A")
    assert everything.returncode == 0 and not everything.stderr, everything.stderr
    assert "replicationcontroller/rc1" in everything.stdout
    assert "horizontalpodautoscaler.autoscaling/hpa1" in everything.stdout
    got = _kubectl(cluster, "get", "pv", "pv1", "-o", "jsonpath={.spec.persistentVolumeReclaimPolicy}"
                   " {.status.phase}")
    assert got.stdout == "Retain Pending"
    rc = _kubectl(cluster, "get", "rc", "rc1", "-o", "jsonpath={.spec.selector.app}")
    assert rc.stdout == "rc1"  # defaulted from the template's labels
    assert _kubectl(cluster, "scale", "rc", "rc1", "--replicas=3").returncode == 0
    assert _kubectl(cluster, "get", "rc", "rc1", "-o", "jsonpath={.spec.replicas}").stdout == "3"
    ing = _kubectl(cluster, "get", "ingress")
    assert "a.example.com" in ing.stdout
    explain = _kubectl(cluster, "explain", "ingress.spec.rules.host")
    assert explain.returncode == 0 and "fully qualified domain name" in explain.stdout
    resources = _kubectl(cluster, "api-resources", "-o", "name").stdout.split()
    for name in ("replicationcontrollers", "horizontalpodautoscalers.autoscaling",
                 "ingresses.networking.k8s.io", "storageclasses.storage.k8s.io",
                 "apiservices.apiregistration.k8s.io", "flowschemas.flowcontrol.apiserver.k8s.io",
                 "validatingwebhookconfigurations.admissionregistration.k8s.io"):
        assert name in resources
