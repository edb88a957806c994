"""Security holes found by trying the API server as a hostile client (issue 11):
forged continue tokens, RBAC escalation through roles and bindings, and stale
read-modify-write patches. Each test failed on the server before its fix."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request

import pytest
from kubernetes import client, config

from .cluster import eventually, running_cluster


@pytest.fixture(scope="module")
def cluster():
    with running_cluster() as c:
        # No controller manager runs here: make the default service account ourselves.
        core = client.CoreV1Api(_api(c, "kubernetes-admin", ("system:masters",)))
        core.create_namespaced_service_account("default", {"metadata": {"name": "default"}})
        yield c


def _api(cluster, user: str, groups: tuple[str, ...] = ()) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(cluster.kubeconfig(user, groups)))


def _request(cluster, ctx: ssl.SSLContext, method: str, path: str, body=None,
             content_type: str = "application/json") -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(cluster.server.url + path, data=data, method=method,
                                 headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _grant(admin: client.ApiClient, namespace: str | None, name: str, user: str,
           rules: list[dict]) -> None:
    rbac = client.RbacAuthorizationV1Api(admin)
    subject = [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}]
    if namespace:
        rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": rules})
        rbac.create_namespaced_role_binding(namespace, {
            "metadata": {"name": name}, "subjects": subject,
            "roleRef": {"kind": "Role", "name": name, "apiGroup": "rbac.authorization.k8s.io"}})
    else:
        rbac.create_cluster_role({"metadata": {"name": name}, "rules": rules})
        rbac.create_cluster_role_binding({
            "metadata": {"name": name}, "subjects": subject,
            "roleRef": {"kind": "ClusterRole", "name": name,
                        "apiGroup": "rbac.authorization.k8s.io"}})


def _forge(start: str, rv: int = 1) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# forged continue tokens ------------------------------------------------------------

@pytest.fixture(scope="module")
def lister(cluster):
    """mallory may list secrets and roles in namespace sec-a only; sec-a and sec-b
    each hold secrets."""
    admin = _api(cluster, "kubernetes-admin", ("system:masters",))
    core = client.CoreV1Api(admin)
    for ns in ("sec-a", "sec-b"):
        core.create_namespace({"metadata": {"name": ns}})
        for i in range(3):
            core.create_namespaced_secret(ns, {"metadata": {"name": f"s{i}"},
                                               "stringData": {"k": f"{ns}-{i}"}})
    _grant(admin, "sec-a", "lister", "mallory",
           [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]},
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"],
             "verbs": ["list"]}])
    ctx = cluster.ssl_context("mallory", ())
    eventually(lambda: _request(cluster, ctx, "GET",
                                "/api/v1/namespaces/sec-a/secrets")[0] == 200)
    return ctx


def test_genuine_continue_token_pages_through_own_namespace(cluster, lister):
    code, page = _request(cluster, lister, "GET", "/api/v1/namespaces/sec-a/secrets?limit=2")
    assert code == 200 and len(page["items"]) == 2
    token = page["metadata"]["continue"]
    code, rest = _request(cluster, lister, "GET",
                          f"/api/v1/namespaces/sec-a/secrets?limit=2&continue={token}")
    assert code == 200
    names = [s["metadata"]["name"] for s in page["items"] + rest["items"]]
    assert names == ["s0", "s1", "s2"]
    assert {s["metadata"]["namespace"] for s in rest["items"]} == {"sec-a"}


@pytest.mark.parametrize("start", [
    "/registry/secrets/",          # an absolute key: every namespace's secrets
    "/../sec-b/",                  # climbing out of the namespace
    "/../../rolebindings/",        # climbing into another resource
    "//registry/secrets/sec-b/",
])
def test_forged_continue_token_is_rejected(cluster, lister, start):
    code, status = _request(cluster, lister, "GET",
                            f"/api/v1/namespaces/sec-a/secrets?limit=10&continue={_forge(start)}")
    assert code == 400, status
    assert status["reason"] == "BadRequest"
    assert "continue key is not valid" in status["message"]


def test_relative_continue_key_stays_inside_the_request(cluster, lister):
    """A well-formed relative key is re-prefixed with the request's own resource and
    namespace, so it can only skip ahead inside what the user may list."""
    _, page = _request(cluster, lister, "GET", "/api/v1/namespaces/sec-a/secrets")
    rv = int(page["metadata"]["resourceVersion"])
    code, out = _request(cluster, lister, "GET", "/api/v1/namespaces/sec-a/secrets?limit=10"
                         f"&continue={_forge('/s1', rv)}")
    assert code == 200
    assert [(s["metadata"]["namespace"], s["metadata"]["name"]) for s in out["items"]] == \
        [("sec-a", "s1"), ("sec-a", "s2")]
    code, out = _request(cluster, lister, "GET",
                         "/apis/rbac.authorization.k8s.io/v1/namespaces/sec-a/rolebindings"
                         f"?limit=10&continue={_forge('/', rv)}")
    assert code == 200
    assert {o["kind"] if "kind" in o else "RoleBinding" for o in out["items"]} == \
        {"RoleBinding"}
    assert all("roleRef" in o for o in out["items"])


def test_continue_token_with_non_positive_revision_is_rejected(cluster, lister):
    code, status = _request(cluster, lister, "GET",
                            f"/api/v1/namespaces/sec-a/secrets?limit=1&continue={_forge('/s0', 0)}")
    assert code == 400 and "continue key is not valid" in status["message"]


# RBAC escalation ------------------------------------------------------------------

@pytest.fixture(scope="module")
def binder(cluster):
    """eve may create/update/patch Roles and RoleBindings in esc-a and ClusterRoleBindings,
    and get pods in esc-a; nothing else."""
    admin = _api(cluster, "kubernetes-admin", ("system:masters",))
    client.CoreV1Api(admin).create_namespace({"metadata": {"name": "esc-a"}})
    _grant(admin, "esc-a", "eve-rbac", "eve", [
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"],
         "verbs": ["create", "update", "patch", "get"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}])
    _grant(admin, None, "eve-crb", "eve", [
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterrolebindings"],
         "verbs": ["create"]}])
    ctx = cluster.ssl_context("eve", ())
    eventually(lambda: _request(cluster, ctx, "GET",
                                "/api/v1/namespaces/esc-a/pods/none")[0] == 404)
    return ctx


RB = "/apis/rbac.authorization.k8s.io/v1/namespaces/esc-a/rolebindings"
ROLES = "/apis/rbac.authorization.k8s.io/v1/namespaces/esc-a/roles"
CRB = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"


def _binding(name: str, kind: str, role: str, user: str = "eve") -> dict:
    return {"metadata": {"name": name},
            "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}],
            "roleRef": {"kind": kind, "name": role, "apiGroup": "rbac.authorization.k8s.io"}}


def test_binding_cluster_admin_to_herself_is_forbidden(cluster, binder):
    code, status = _request(cluster, binder, "POST", RB,
                            _binding("pwn", "ClusterRole", "cluster-admin"))
    assert code == 403, status
    assert status["reason"] == "Forbidden"
    assert "is attempting to grant RBAC permissions not currently held" in status["message"]
    assert 'user "eve"' in status["message"]


def test_cluster_role_binding_to_cluster_admin_is_forbidden(cluster, binder):
    code, status = _request(cluster, binder, "POST", CRB,
                            _binding("pwn-crb", "ClusterRole", "cluster-admin"))
    assert code == 403 and "not currently held" in status["message"]


def test_role_granting_star_is_forbidden(cluster, binder):
    code, status = _request(cluster, binder, "POST", ROLES, {
        "metadata": {"name": "star"},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]})
    assert code == 403
    assert '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}' in status["message"]


def test_role_within_own_permissions_is_allowed_and_patch_cannot_widen_it(cluster, binder):
    code, _ = _request(cluster, binder, "POST", ROLES, {
        "metadata": {"name": "podreader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]})
    assert code == 201
    # Binding a role whose permissions she holds is fine.
    code, _ = _request(cluster, binder, "POST", RB, _binding("podreader", "Role", "podreader",
                                                             user="friend"))
    assert code == 201
    code, status = _request(cluster, binder, "PATCH", ROLES + "/podreader",
                            {"rules": [{"apiGroups": [""], "resources": ["secrets"],
                                        "verbs": ["get", "list"]}]},
                            "application/merge-patch+json")
    assert code == 403, status
    assert "not currently held" in status["message"]


def test_bind_and_escalate_verbs_permit_what_is_not_held(cluster, binder):
    admin = _api(cluster, "kubernetes-admin", ("system:masters",))
    _grant(admin, "esc-a", "eve-bind", "eve", [
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
         "verbs": ["bind"], "resourceNames": ["view"]},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"],
         "verbs": ["escalate"]}])

    def bound() -> bool:
        code, _ = _request(cluster, binder, "POST", RB, _binding("viewer", "ClusterRole", "view"))
        return code == 201
    assert eventually(bound)
    # bind on "view" does not extend to "edit".
    code, _ = _request(cluster, binder, "POST", RB, _binding("editor", "ClusterRole", "edit"))
    assert code == 403
    code, _ = _request(cluster, binder, "POST", ROLES, {
        "metadata": {"name": "wide"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}]})
    assert code == 201


def test_binding_to_a_missing_role_is_not_found(cluster, binder):
    code, status = _request(cluster, binder, "POST", RB, _binding("ghost", "Role", "nope"))
    assert code == 404, status


# stale read-modify-write ----------------------------------------------------------

def test_patch_with_stale_resource_version_conflicts(cluster):
    ctx = cluster.ssl_context()
    path = "/api/v1/namespaces/default/configmaps"
    code, cm = _request(cluster, ctx, "POST", path, {"metadata": {"name": "counter"},
                                                    "data": {"n": "0"}})
    assert code == 201
    stale = cm["metadata"]["resourceVersion"]
    code, _ = _request(cluster, ctx, "PATCH", path + "/counter", {"data": {"n": "1"}},
                       "application/merge-patch+json")
    assert code == 200
    for ctype, body in [
        ("application/merge-patch+json",
         {"metadata": {"resourceVersion": stale}, "data": {"n": "2"}}),
        ("application/strategic-merge-patch+json",
         {"metadata": {"resourceVersion": stale}, "data": {"n": "2"}}),
        ("application/json-patch+json",
         [{"op": "replace", "path": "/metadata/resourceVersion", "value": stale},
          {"op": "replace", "path": "/data/n", "value": "2"}]),
    ]:
        code, status = _request(cluster, ctx, "PATCH", path + "/counter", body, ctype)
        assert code == 409, (ctype, status)
        assert status["reason"] == "Conflict"
    code, cm = _request(cluster, ctx, "GET", path + "/counter")
    assert cm["data"]["n"] == "1"


def test_concurrent_read_modify_write_loses_no_increment(cluster):
    """20 clients x 5 read-modify-write merge patches, retrying on 409: every
    increment lands (before the fix most were silently lost)."""
    import threading
    ctx = cluster.ssl_context()
    path = "/api/v1/namespaces/default/configmaps"
    _request(cluster, ctx, "POST", path, {"metadata": {"name": "rmw"}, "data": {"n": "0"}})

    def worker():
        for _ in range(5):
            while True:
                _, cm = _request(cluster, ctx, "GET", path + "/rmw")
                n = int(cm["data"]["n"])
                code, _ = _request(cluster, ctx, "PATCH", path + "/rmw", {
                    "metadata": {"resourceVersion": cm["metadata"]["resourceVersion"]},
                    "data": {"n": str(n + 1)}}, "application/merge-patch+json")
                if code == 200:
                    break
                assert code == 409
    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    _, cm = _request(cluster, ctx, "GET", path + "/rmw")
    assert cm["data"]["n"] == "100"


def test_kubectl_label_with_stale_resource_version_fails(cluster):
    import subprocess
    ctx = cluster.ssl_context()
    path = "/api/v1/namespaces/default/configmaps"
    _, cm = _request(cluster, ctx, "POST", path, {"metadata": {"name": "labelled"}})
    stale = cm["metadata"]["resourceVersion"]
    _request(cluster, ctx, "PATCH", path + "/labelled", {"data": {"x": "y"}},
             "application/merge-patch+json")
    proc = subprocess.run(["/usr/bin/kubectl", f"--kubeconfig={cluster.admin}", "label",
                           "configmap", "labelled", "a=b", f"--resource-version={stale}"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "the object has been modified" in proc.stderr


# NodeRestriction ------------------------------------------------------------------

@pytest.fixture(scope="module")
def nodes(cluster):
    """Nodes sn1 and sn2, a pod on each using the default service account, and sn1's
    kubelet TLS context."""
    admin = client.CoreV1Api(_api(cluster, "kubernetes-admin", ("system:masters",)))
    uids = {}
    for n in ("sn1", "sn2"):
        uids[n] = admin.create_node({"metadata": {"name": n}}).metadata.uid
        admin.create_namespaced_pod("default", {
            "metadata": {"name": f"on-{n}"},
            "spec": {"nodeName": n, "containers": [{"name": "c", "image": "busybox"}]}})
    ctx = cluster.ssl_context("system:node:sn1", ("system:nodes",))
    eventually(lambda: _request(cluster, ctx, "GET", "/api/v1/nodes/sn1")[0] == 200)
    return ctx, uids


def _mirror(**spec) -> dict:
    return {"metadata": {"name": "static-sn1", "annotations": {
                "kubernetes.io/config.mirror": "abc"}},
            "spec": {"nodeName": "sn1", "containers": [{"name": "c", "image": "busybox",
                                                         **spec.pop("container", {})}],
                     **spec}}


PODS = "/api/v1/namespaces/default/pods"


@pytest.mark.parametrize("spec,what", [
    ({"volumes": [{"name": "s", "secret": {"secretName": "admin-token"}}]}, "secrets"),
    ({"container": {"env": [{"name": "P", "valueFrom": {"secretKeyRef": {
        "name": "db", "key": "password"}}}]}}, "secrets"),
    ({"container": {"envFrom": [{"configMapRef": {"name": "cfg"}}]}}, "configmaps"),
    ({"volumes": [{"name": "p", "projected": {"sources": [{"configMap": {"name": "c"}}]}}]},
     "configmaps"),
    ({"serviceAccountName": "default"}, "a service account"),
    ({"volumes": [{"name": "t", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token"}}]}}]}, "a service account"),
    ({"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]},
     "persistentvolumeclaims"),
])
def test_node_cannot_create_mirror_pod_referencing_api_objects(cluster, nodes, spec, what):
    ctx, _ = nodes
    code, status = _request(cluster, ctx, "POST", PODS, _mirror(**spec))
    assert code == 403, status
    assert f'node "sn1" can not create pods that reference {what}' in status["message"]


def test_node_mirror_pod_owner_reference_must_be_its_own_node(cluster, nodes):
    ctx, uids = nodes
    pod = _mirror()
    pod["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": "sn1",
                                           "uid": uids["sn2"], "controller": True}]
    code, status = _request(cluster, ctx, "POST", PODS, pod)
    assert code == 403 and "UID mismatch" in status["message"]
    pod["metadata"]["ownerReferences"][0]["uid"] = uids["sn1"]
    code, status = _request(cluster, ctx, "POST", PODS, pod)
    assert code == 201, status
    _request(cluster, cluster.ssl_context(), "DELETE", PODS + "/static-sn1")


def test_node_token_requests_only_for_pods_bound_to_itself(cluster, nodes):
    ctx, _ = nodes
    admin = client.CoreV1Api(_api(cluster, "kubernetes-admin", ("system:masters",)))
    pods = {n: admin.read_namespaced_pod(f"on-{n}", "default").metadata.uid
            for n in ("sn1", "sn2")}
    url = "/api/v1/namespaces/default/serviceaccounts/default/token"

    def request(ref):
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"audiences": ["https://kubernetes.default.svc.cluster.local"]}}
        if ref:
            body["spec"]["boundObjectRef"] = ref
        return _request(cluster, ctx, "POST", url, body)

    code, status = request(None)
    assert code == 403 and "node requested token not bound to a pod" in status["message"]
    code, status = request({"kind": "Pod", "apiVersion": "v1", "name": "on-sn2",
                            "uid": pods["sn2"]})
    assert code == 403, status
    assert "bound to a pod scheduled on a different node" in status["message"]
    code, status = request({"kind": "Pod", "apiVersion": "v1", "name": "on-sn1"})
    assert code == 403 and "without a uid" in status["message"]
    code, out = request({"kind": "Pod", "apiVersion": "v1", "name": "on-sn1",
                         "uid": pods["sn1"]})
    assert code == 201, out
    assert out["status"]["token"]


# bound tokens ---------------------------------------------------------------------

def _whoami(cluster, token: str) -> int:
    ctx = ssl.create_default_context(cafile=cluster.pki.path("ca.crt"))
    req = urllib.request.Request(
        cluster.server.url + "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        data=json.dumps({"apiVersion": "authentication.k8s.io/v1",
                         "kind": "SelfSubjectReview"}).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_node_bound_token_dies_with_its_node(cluster):
    admin = client.CoreV1Api(_api(cluster, "kubernetes-admin", ("system:masters",)))
    node = admin.create_node({"metadata": {"name": "tok-node"}})
    code, out = _request(cluster, cluster.ssl_context(), "POST",
                         "/api/v1/namespaces/default/serviceaccounts/default/token", {
                             "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                             "spec": {"boundObjectRef": {"kind": "Node", "apiVersion": "v1",
                                                         "name": "tok-node",
                                                         "uid": node.metadata.uid}}})
    assert code == 201, out
    token = out["status"]["token"]
    assert eventually(lambda: _whoami(cluster, token) == 201)
    admin.delete_node("tok-node")
    assert eventually(lambda: _whoami(cluster, token) == 401)
    # A new Node with the same name has a new uid: the old token stays dead.
    admin.create_node({"metadata": {"name": "tok-node"}})
    assert eventually(lambda: _whoami(cluster, token) == 401)
    admin.delete_node("tok-node")
