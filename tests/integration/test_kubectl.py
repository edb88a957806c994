"""The real kubectl against the API server on a real etcd (issue 4's done-when)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .cluster import eventually

DATA = Path(__file__).parent / "data"


def run(kubeconfig, *args, stdin: str | None = None, check: bool = True,
        timeout: float = 60) -> subprocess.CompletedProcess:
    proc = subprocess.run(["/usr/bin/kubectl", f"--kubeconfig={kubeconfig}", *args],
                          input=stdin, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
    return proc


def get_json(kc, *args) -> dict:
    return json.loads(run(kc, "get", *args, "-o", "json").stdout)


@pytest.fixture(scope="module")
def demo(cluster):
    run(cluster.admin, "create", "namespace", "demo")
    run(cluster.admin, "create", "serviceaccount", "default", "-n", "demo")
    return cluster.admin


def test_namespace_create_get(cluster):
    out = run(cluster.admin, "create", "namespace", "ns-one").stdout
    assert "namespace/ns-one created" in out
    ns = get_json(cluster.admin, "namespace", "ns-one")
    assert ns["status"]["phase"] == "Active"
    assert ns["spec"]["finalizers"] == ["kubernetes"]
    assert ns["metadata"]["uid"] and ns["metadata"]["creationTimestamp"]
    table = run(cluster.admin, "get", "namespaces").stdout
    assert table.splitlines()[0].split() == ["NAME", "STATUS", "AGE"]
    assert any(line.split()[:2] == ["kube-system", "Active"] for line in table.splitlines())
    dup = run(cluster.admin, "create", "namespace", "ns-one", check=False)
    assert dup.returncode != 0
    assert 'namespaces "ns-one" already exists' in dup.stderr


def test_apply_three_way_merge(demo):
    out = run(demo, "apply", "-f", str(DATA / "app.yaml")).stdout
    assert "deployment.apps/web created" in out
    assert "service/web created" in out and "configmap/web-config created" in out
    dep = get_json(demo, "deployment", "web", "-n", "demo")
    assert dep["metadata"]["generation"] == 1
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"  # server-side defaulting
    # Someone else adds a label; the next apply must keep it (3-way merge).
    run(demo, "label", "deployment", "web", "-n", "demo", "owner=ops")
    edited = (DATA / "app.yaml").read_text().replace("value: one", "value: two") \
        .replace("greeting: hello", "greeting: bye")
    out = run(demo, "apply", "-f", "-", stdin=edited).stdout
    assert "deployment.apps/web configured" in out
    assert "service/web unchanged" in out
    dep = get_json(demo, "deployment", "web", "-n", "demo")
    env = dep["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "MODE", "value": "two"}]
    assert dep["metadata"]["labels"] == {"app": "web", "owner": "ops"}
    assert dep["metadata"]["generation"] == 2
    cm = get_json(demo, "configmap", "web-config", "-n", "demo")
    assert cm["data"] == {"greeting": "bye"}
    svc = get_json(demo, "service", "web", "-n", "demo")
    assert svc["spec"]["clusterIP"].startswith("10.")
    assert svc["spec"]["clusterIP"] != "10.96.0.1"  # reserved for the kubernetes Service


def test_get_output_formats(demo):
    run(demo, "apply", "-f", str(DATA / "app.yaml"))
    wide = run(demo, "get", "deployments", "-n", "demo", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS",
                               "IMAGES", "SELECTOR"]
    assert wide[1].split()[0] == "web"
    yaml_out = run(demo, "get", "configmap", "web-config", "-n", "demo", "-o", "yaml").stdout
    assert "kind: ConfigMap" in yaml_out and "resourceVersion:" in yaml_out
    svc = run(demo, "get", "svc", "-n", "demo").stdout.splitlines()
    assert svc[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    desc = run(demo, "describe", "deployment", "web", "-n", "demo").stdout
    assert "Name:" in desc and "RollingUpdateStrategy:" in desc


def test_pods_wide_and_field_selector(demo):
    for n in ("1", "2"):
        run(demo, "apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"pod{n}", "namespace": "demo", "labels": {"app": "p"}},
            "spec": {"nodeName": f"node{n}",
                     "containers": [{"name": "c", "image": "busybox"}]}}))
    wide = run(demo, "get", "pods", "-n", "demo", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    rows = {line.split()[0]: line.split() for line in wide[1:]}
    assert rows["pod1"][2] == "Pending" and rows["pod1"][6] == "node1"
    names = run(demo, "get", "pods", "-n", "demo", "--field-selector", "spec.nodeName=node2",
                "-o", "name").stdout.split()
    assert names == ["pod/pod2"]
    bad = run(demo, "get", "pods", "-n", "demo", "--field-selector", "spec.bogus=x",
              check=False)
    assert bad.returncode != 0 and "field label not supported: spec.bogus" in bad.stderr


def test_label_annotate_patch_scale(demo):
    run(demo, "apply", "-f", str(DATA / "app.yaml"))
    run(demo, "label", "deployment", "web", "-n", "demo", "tier=front", "--overwrite")
    run(demo, "annotate", "deployment", "web", "-n", "demo", "note=hello", "--overwrite")
    run(demo, "patch", "deployment", "web", "-n", "demo", "--type", "json",
        "-p", '[{"op":"replace","path":"/spec/replicas","value":3}]')
    run(demo, "patch", "deployment", "web", "-n", "demo", "--type", "merge",
        "-p", '{"metadata":{"labels":{"merged":"yes"}}}')
    run(demo, "patch", "deployment", "web", "-n", "demo", "--type", "strategic",
        "-p", '{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.27"}]}}}}')
    dep = get_json(demo, "deployment", "web", "-n", "demo")
    assert dep["spec"]["replicas"] == 3
    assert dep["metadata"]["labels"]["tier"] == "front"
    assert dep["metadata"]["labels"]["merged"] == "yes"
    assert dep["metadata"]["annotations"]["note"] == "hello"
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "nginx:1.27" and container["ports"][0]["containerPort"] == 80
    run(demo, "scale", "deployment", "web", "-n", "demo", "--replicas=5")
    assert get_json(demo, "deployment", "web", "-n", "demo")["spec"]["replicas"] == 5
    old = get_json(demo, "deployment", "web", "-n", "demo")
    run(demo, "scale", "deployment", "web", "-n", "demo", "--replicas=2")
    stale = run(demo, "replace", "-f", "-", stdin=json.dumps(old), check=False)
    assert stale.returncode != 0
    assert ('Operation cannot be fulfilled on deployments.apps "web": the object has been '
            'modified; please apply your changes to the latest version and try again'
            ) in stale.stderr
    bad = run(demo, "patch", "deployment", "web", "-n", "demo", "--type", "json",
              "-p", '[{"op":"test","path":"/spec/replicas","value":99}]', check=False)
    assert bad.returncode != 0


def test_watch_sees_changes(demo):
    run(demo, "create", "configmap", "watched", "-n", "demo", "--from-literal=k=v")
    proc = subprocess.Popen(["/usr/bin/kubectl", f"--kubeconfig={demo}", "get", "configmap",
                             "watched", "-n", "demo", "-w", "-o",
                             "jsonpath={.metadata.labels.seen}{'|'}{.metadata.resourceVersion}{'\\n'}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline().strip()
        assert first.startswith("|")  # the listed object, not labelled yet
        run(demo, "label", "configmap", "watched", "-n", "demo", "seen=1")
        second = proc.stdout.readline().strip()
        assert second.startswith("1|")
        assert int(second.split("|")[1]) > int(first.split("|")[1])
    finally:
        proc.kill()
        proc.wait()


def test_delete_wait(demo):
    run(demo, "create", "configmap", "doomed", "-n", "demo", "--from-literal=a=b")
    out = run(demo, "delete", "configmap", "doomed", "-n", "demo", "--wait=true").stdout
    assert 'configmap "doomed" deleted' in out
    gone = run(demo, "get", "configmap", "doomed", "-n", "demo", check=False)
    assert gone.returncode != 0 and 'configmaps "doomed" not found' in gone.stderr


def test_finalizers_hold_deletion(demo):
    run(demo, "apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "held", "namespace": "demo", "finalizers": ["example.com/hold"]}}))
    run(demo, "delete", "configmap", "held", "-n", "demo", "--wait=false")
    cm = get_json(demo, "configmap", "held", "-n", "demo")
    assert cm["metadata"]["deletionTimestamp"]
    run(demo, "patch", "configmap", "held", "-n", "demo", "--type", "merge",
        "-p", '{"metadata":{"finalizers":null}}')
    gone = run(demo, "get", "configmap", "held", "-n", "demo", check=False)
    assert gone.returncode != 0 and "not found" in gone.stderr


def test_rbac_limited_user(cluster, demo):
    run(demo, "create", "role", "cm-reader", "-n", "demo", "--verb=get,list",
        "--resource=configmaps")
    run(demo, "create", "rolebinding", "alice-reads", "-n", "demo", "--role=cm-reader",
        "--user=alice")
    alice = cluster.kubeconfig("alice", ("developers",))
    yes = eventually(lambda: run(alice, "auth", "can-i", "list", "configmaps", "-n", "demo",
                                 check=False).stdout.strip() == "yes")
    assert yes
    no = run(alice, "auth", "can-i", "delete", "configmaps", "-n", "demo", check=False)
    assert no.stdout.strip() == "no" and no.returncode == 1
    denied = run(alice, "get", "secrets", "-n", "demo", check=False)
    assert denied.returncode != 0
    assert ('Error from server (Forbidden): secrets is forbidden: User "alice" cannot list '
            'resource "secrets" in API group "" in the namespace "demo"') in denied.stderr
    assert run(alice, "get", "configmaps", "-n", "demo").returncode == 0


def test_node_cannot_read_other_nodes_pods(cluster, demo):
    for n in ("1", "2"):
        run(demo, "apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"np{n}", "namespace": "demo"},
            "spec": {"nodeName": f"node{n}", "containers": [{"name": "c", "image": "busybox"}]}}))
    node1 = cluster.kubeconfig("system:node:node1", ("system:nodes",))
    assert eventually(lambda: run(node1, "get", "pod", "np1", "-n", "demo",
                                  check=False).returncode == 0)
    other = run(node1, "get", "pod", "np2", "-n", "demo", check=False)
    assert other.returncode != 0
    assert 'User "system:node:node1" cannot get resource "pods"' in other.stderr


def test_discovery_and_explain(cluster):
    res = run(cluster.admin, "api-resources", "-o", "name").stdout.split()
    for name in ("pods", "deployments.apps", "leases.coordination.k8s.io",
                 "endpointslices.discovery.k8s.io", "certificatesigningrequests.certificates.k8s.io",
                 "poddisruptionbudgets.policy", "clusterroles.rbac.authorization.k8s.io"):
        assert name in res
    explain = run(cluster.admin, "explain", "pods.spec.containers").stdout
    assert "image" in explain
    version = json.loads(run(cluster.admin, "version", "-o", "json").stdout)
    assert version["serverVersion"]["major"] == "1"


def test_namespace_deletion_waits_for_the_namespace_controller(demo):
    # As upstream: the API server only marks the namespace Terminating; emptying it and
    # removing the "kubernetes" finalizer is the controller manager's namespace
    # controller (tests/integration/test_controller_manager.py covers that part).
    run(demo, "create", "namespace", "short-lived")
    run(demo, "create", "configmap", "inside", "-n", "short-lived", "--from-literal=a=b")
    run(demo, "delete", "namespace", "short-lived", "--wait=false")
    ns = get_json(demo, "namespace", "short-lived")
    assert ns["status"]["phase"] == "Terminating" and ns["spec"]["finalizers"] == ["kubernetes"]
    assert get_json(demo, "configmap", "inside", "-n", "short-lived")["data"] == {"a": "b"}


def test_field_validation_and_server_dry_run(demo):
    doc = json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "validated", "namespace": "demo"},
                      "data": {"a": "b"}, "bogus": 1})
    strict = run(demo, "apply", "-f", "-", stdin=doc, check=False)
    assert strict.returncode != 0 and 'unknown field "bogus"' in strict.stderr
    warned = run(demo, "apply", "--validate=warn", "-f", "-", stdin=doc)
    assert 'Warning: unknown field "bogus"' in warned.stderr
    assert get_json(demo, "configmap", "validated", "-n", "demo")["data"] == {"a": "b"}
    dry = run(demo, "create", "configmap", "dry", "-n", "demo", "--from-literal=a=b",
              "--dry-run=server", "-o", "json")
    assert json.loads(dry.stdout)["metadata"]["name"] == "dry"
    assert run(demo, "get", "configmap", "dry", "-n", "demo", check=False).returncode != 0


def test_drain_evicts_and_cordons(demo):
    run(demo, "apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "drainme"}}))
    run(demo, "apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "evictee", "namespace": "demo"},
        "spec": {"nodeName": "drainme", "containers": [{"name": "c", "image": "busybox"}]}}))
    out = run(demo, "drain", "drainme", "--force", "--grace-period=0", "--timeout=30s",
              timeout=60)
    assert "evicting pod demo/evictee" in out.stdout + out.stderr
    assert get_json(demo, "node", "drainme")["spec"]["unschedulable"] is True
    gone = run(demo, "get", "pod", "evictee", "-n", "demo", check=False)
    assert gone.returncode != 0 and "not found" in gone.stderr
