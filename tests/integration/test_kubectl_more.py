"""kubectl's typed-client commands (protobuf bodies), impersonation, whoami, and
server-side apply taking over a client-side applied Deployment."""

from __future__ import annotations

import json

import pytest

from .test_kubectl import DATA, get_json, run


@pytest.fixture(scope="module")
def cluster(cluster):
    """conftest's cluster, with the namespace these tests work in."""
    run(cluster.admin, "create", "namespace", "work")
    return cluster


def test_impersonation_follows_rbac(cluster):
    admin = cluster.admin
    run(admin, "create", "role", "pod-reader", "-n", "work", "--verb=get,list",
        "--resource=pods")
    run(admin, "create", "rolebinding", "bob-reads", "-n", "work", "--role=pod-reader",
        "--user=bob")
    # system:masters may impersonate anyone; the request then runs with bob's rights.
    assert run(admin, "get", "pods", "-n", "work", "--as=bob").returncode == 0
    denied = run(admin, "get", "secrets", "-n", "work", "--as=bob", check=False)
    assert ('User "bob" cannot list resource "secrets" in API group "" in the namespace '
            '"work"') in denied.stderr
    who = json.loads(run(admin, "auth", "whoami", "--as=bob", "--as-group=team",
                         "-o", "json").stdout)
    assert who["status"]["userInfo"]["username"] == "bob"
    assert set(who["status"]["userInfo"]["groups"]) == {"team", "system:authenticated"}

    # Impersonating needs the impersonate verb: carol has it for users only, not groups.
    run(admin, "create", "clusterrole", "impersonate-users", "--verb=impersonate",
        "--resource=users")
    run(admin, "create", "clusterrolebinding", "carol-impersonates",
        "--clusterrole=impersonate-users", "--user=carol")
    carol = cluster.kubeconfig("carol")
    assert run(carol, "get", "pods", "-n", "work", "--as=bob").returncode == 0
    no_group = run(carol, "get", "pods", "-n", "work", "--as=bob", "--as-group=admins",
                   check=False)
    assert no_group.returncode != 0
    assert ('groups "admins" is forbidden: User "carol" cannot impersonate resource '
            '"groups" in API group "" at the cluster scope') in no_group.stderr
    dave = cluster.kubeconfig("dave")
    refused = run(dave, "get", "pods", "-n", "work", "--as=bob", check=False)
    assert refused.returncode != 0
    assert 'User "dave" cannot impersonate resource "users"' in refused.stderr


def test_auth_whoami(cluster):
    out = run(cluster.admin, "auth", "whoami").stdout
    assert "kubernetes-admin" in out and "system:masters" in out
    who = json.loads(run(cluster.admin, "auth", "whoami", "-o", "json").stdout)
    assert who["kind"] == "SelfSubjectReview"
    assert "system:authenticated" in who["status"]["userInfo"]["groups"]


def test_create_deployment_service_job(cluster):
    admin = cluster.admin
    out = run(admin, "create", "deployment", "web", "-n", "work", "--image=nginx:1.25",
              "--replicas=3", "--port=80", "--", "nginx", "-g", "daemon off;").stdout
    assert "deployment.apps/web created" in out
    dep = get_json(admin, "deployment", "web", "-n", "work")
    assert dep["spec"]["replicas"] == 3
    assert dep["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert (c["name"], c["image"]) == ("nginx", "nginx:1.25")
    assert c["command"] == ["nginx", "-g", "daemon off;"]
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%",
                                                        "maxUnavailable": "25%"}

    out = run(admin, "create", "service", "clusterip", "web", "-n", "work",
              "--tcp=80:8080", "--tcp=443:https").stdout
    assert "service/web created" in out
    svc = get_json(admin, "service", "web", "-n", "work")
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["selector"] == {"app": "web"}
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [
        (80, 8080), (443, "https")]
    assert svc["spec"]["clusterIP"].startswith("10.")

    out = run(admin, "create", "job", "once", "-n", "work", "--image=busybox", "--",
              "echo", "hi").stdout
    assert "job.batch/once created" in out
    job = get_json(admin, "job", "once", "-n", "work")
    uid = job["metadata"]["uid"]
    assert job["spec"]["selector"] == {
        "matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Never"
    assert pod_spec["containers"][0]["command"] == ["echo", "hi"]
    wide = run(admin, "get", "job", "once", "-n", "work", "-o", "wide").stdout
    assert f"batch.kubernetes.io/controller-uid={uid}" in wide


def test_server_side_apply_takes_over_after_edits(cluster):
    admin = cluster.admin
    manifest = (DATA / "app.yaml").read_text().replace("namespace: demo", "namespace: work")
    manifest = manifest.split("---")[0].replace("name: web\n", "name: web2\n", 1)
    edits = [
        ("label", "deployment", "web2", "tier=front"),
        ("annotate", "deployment", "web2", "note=hello"),
        ("patch", "deployment", "web2", "--type", "json",
         "-p", '[{"op":"replace","path":"/spec/replicas","value":3}]'),
        ("patch", "deployment", "web2", "--type", "merge",
         "-p", '{"metadata":{"labels":{"merged":"yes"}}}'),
        ("patch", "deployment", "web2", "--type", "strategic",
         "-p", '{"spec":{"template":{"spec":{"containers":[{"name":"nginx",'
               '"image":"nginx:1.27"}]}}}}'),
        ("scale", "deployment", "web2", "--replicas=5"),
    ]
    run(admin, "apply", "-f", "-", stdin=manifest)
    for edit in edits:
        run(admin, *edit, "-n", "work")
    edited = manifest.replace("value: one", "value: two")
    out = run(admin, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=edited)
    assert "deployment.apps/web2 serverside-applied" in out.stdout, out.stderr
    # Applied again right away (kubectl's migration re-apply is this fast too).
    run(admin, "apply", "--server-side", "-f", "-", stdin=edited)
    dep = get_json(admin, "deployment", "web2", "-n", "work")
    assert dep["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "MODE", "value": "two"}]
    assert dep["spec"]["replicas"] == 2 and dep["spec"]["template"]["metadata"]["labels"] == {
        "app": "web"}
    assert dep["metadata"]["labels"]["tier"] == "front"
    shown = json.loads(run(admin, "get", "deployment", "web2", "-n", "work", "-o", "json",
                           "--show-managed-fields").stdout)
    managers = {(e["manager"], e["operation"]) for e in shown["metadata"]["managedFields"]}
    assert ("kubectl", "Apply") in managers
    assert ("kubectl", "Update") not in managers
    assert ("kubectl-client-side-apply", "Update") not in managers
