"""Admission plugins (NamespaceLifecycle, ServiceAccount, NodeRestriction) and the audit log."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from test_auth_authn import FakeStore

from bootstrap.agents.apiserver.admission import SA_MOUNT_PATH, admit
from bootstrap.agents.apiserver.audit import AuditLogger, build_event
from bootstrap.agents.apiserver.auth.authn import UserInfo
from bootstrap.api.errors import APIError
from bootstrap.api.resources import by_gvr

PODS = by_gvr("", "v1", "pods")
NODES = by_gvr("", "v1", "nodes")
NAMESPACES = by_gvr("", "v1", "namespaces")
CONFIGMAPS = by_gvr("", "v1", "configmaps")
LEASES = by_gvr("coordination.k8s.io", "v1", "leases")
SSAR = by_gvr("authorization.k8s.io", "v1", "selfsubjectaccessreviews")

ADMIN = UserInfo("admin", groups=["system:masters", "system:authenticated"])
NODE1 = UserInfo("system:node:n1", groups=["system:nodes", "system:authenticated"])


def ns(name, terminating=False):
    obj = {"metadata": {"name": name}, "status": {"phase": "Active"}}
    if terminating:
        obj["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
        obj["status"]["phase"] = "Terminating"
    return obj


@pytest.fixture
def store():
    return FakeStore([("namespaces", ns("default")), ("namespaces", ns("kube-system")),
                      ("namespaces", ns("dying", terminating=True)),
                      ("serviceaccounts", {"metadata": {"name": "default",
                                                        "namespace": "default"}}),
                      ("serviceaccounts", {"metadata": {"name": "builder",
                                                        "namespace": "default"},
                                           "imagePullSecrets": [{"name": "regcred"}],
                                           "automountServiceAccountToken": False})])


def pod(name="p", node=None, **spec):
    body = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}
    if node:
        body["spec"]["nodeName"] = node
    return body


async def test_namespace_lifecycle(store):
    cm = {"metadata": {"name": "c", "namespace": "missing"}}
    with pytest.raises(APIError) as exc:
        await admit("CREATE", CONFIGMAPS, cm, None, ADMIN, store)
    assert exc.value.code == 404 and exc.value.message == 'namespaces "missing" not found'
    cm["metadata"]["namespace"] = "dying"
    with pytest.raises(APIError) as exc:
        await admit("CREATE", CONFIGMAPS, cm, None, ADMIN, store)
    assert exc.value.code == 403
    assert "unable to create new content in namespace dying because it is being terminated" \
        in exc.value.message
    assert exc.value.details["causes"][0]["reason"] == "NamespaceTerminating"
    # Updates in a terminating namespace and computed reviews are fine.
    await admit("UPDATE", CONFIGMAPS, cm, cm, ADMIN, store)
    await admit("CREATE", SSAR, {"metadata": {}}, None, ADMIN, store)
    for immortal in ("default", "kube-system", "kube-public", "kube-node-lease"):
        with pytest.raises(APIError) as exc:
            await admit("DELETE", NAMESPACES, None, ns(immortal), ADMIN, store)
        assert exc.value.message == (f'namespaces "{immortal}" is forbidden: this namespace '
                                     f'may not be deleted')
    await admit("DELETE", NAMESPACES, None, ns("dying"), ADMIN, store)


async def test_service_account_injects_token_volume(store):
    src = pod(initContainers=[{"name": "init", "image": "busybox"}])
    out = await admit("CREATE", PODS, src, None, ADMIN, store)
    assert "volumes" not in src["spec"]  # the caller's object is left alone
    assert out["spec"]["serviceAccountName"] == "default"
    (vol,) = out["spec"]["volumes"]
    assert vol["name"].startswith("kube-api-access-") and len(vol["name"]) == 21
    sources = vol["projected"]["sources"]
    assert sources[0] == {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
    assert sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"] == \
        "metadata.namespace"
    for c in out["spec"]["containers"] + out["spec"]["initContainers"]:
        assert c["volumeMounts"] == [{"name": vol["name"], "readOnly": True,
                                      "mountPath": SA_MOUNT_PATH}]

    # The SA opts out of automount and carries pull secrets.
    out = await admit("CREATE", PODS, pod(serviceAccountName="builder"), None, ADMIN, store)
    assert "volumes" not in out["spec"]
    assert out["spec"]["imagePullSecrets"] == [{"name": "regcred"}]

    with pytest.raises(APIError) as exc:
        await admit("CREATE", PODS, pod(serviceAccountName="ghost"), None, ADMIN, store)
    assert exc.value.code == 403
    assert 'serviceaccount "ghost" not found' in exc.value.message


async def test_node_restriction(store):
    own = {"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}}}
    await admit("CREATE", NODES, own, None, NODE1, store)
    with pytest.raises(APIError):
        await admit("CREATE", NODES, {"metadata": {"name": "n2"}}, None, NODE1, store)
    labelled = {"metadata": {"name": "n1", "labels": {
        "node-restriction.kubernetes.io/trusted": "yes"}}}
    with pytest.raises(APIError) as exc:
        await admit("UPDATE", NODES, labelled, own, NODE1, store)
    assert "node-restriction.kubernetes.io/trusted" in exc.value.message
    role = {"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": ""}}}
    with pytest.raises(APIError):
        await admit("UPDATE", NODES, role, own, NODE1, store)
    ok = {"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1",
                                                 "example.com/rack": "r1"}}}
    await admit("UPDATE", NODES, ok, own, NODE1, store)

    store.put("pods", pod("mine", node="n1"))
    store.put("pods", pod("theirs", node="n2"))
    await admit("UPDATE", PODS, pod("mine", node="n1"), pod("mine", node="n1"), NODE1, store,
                subresource="status")
    with pytest.raises(APIError) as exc:
        await admit("UPDATE", PODS, pod("theirs", node="n2"), pod("theirs", node="n2"),
                    NODE1, store, subresource="status")
    assert exc.value.code == 403
    with pytest.raises(APIError):
        await admit("UPDATE", PODS, pod("mine", node="n1"), pod("mine", node="n1"), NODE1,
                    store)
    with pytest.raises(APIError):
        await admit("DELETE", PODS, None, pod("theirs", node="n2"), NODE1, store)
    await admit("DELETE", PODS, None, pod("mine", node="n1"), NODE1, store)
    with pytest.raises(APIError) as exc:  # only mirror pods
        await admit("CREATE", PODS, pod("new", node="n1"), None, NODE1, store)
    assert "can only create mirror pods" in exc.value.message
    mirror = pod("static-n1", node="n1")
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "hash"}
    out = await admit("CREATE", PODS, mirror, None, NODE1, store)
    assert "volumes" not in out["spec"]
    lease = {"metadata": {"name": "n2", "namespace": "kube-node-lease"}}
    with pytest.raises(APIError):
        await admit("UPDATE", LEASES, lease, lease, NODE1, store)


def test_audit_log_lines(tmp_path):
    path = tmp_path / "audit" / "audit.log"
    logger = AuditLogger(path)
    try:
        received = datetime.now(UTC)
        for code in (200, 403):
            logger.log(build_event(
                verb="get", request_uri="/api/v1/namespaces/default/pods/p",
                user={"username": "alice", "groups": ["system:authenticated"]},
                source_ips=["127.0.0.1"], user_agent="kubectl/v1.32.0", code=code,
                received=received, object_ref={"resource": "pods", "namespace": "default",
                                               "name": "p", "apiVersion": "v1",
                                               "apiGroup": ""},
                status_reason="Forbidden" if code == 403 else ""))
    finally:
        logger.close()
    lines = path.read_bytes().splitlines()
    assert len(lines) == 2
    first, second = (orjson.loads(x) for x in lines)
    assert first["kind"] == "Event" and first["apiVersion"] == "audit.k8s.io/v1"
    assert first["level"] == "Metadata" and first["stage"] == "ResponseComplete"
    assert first["objectRef"] == {"resource": "pods", "namespace": "default", "name": "p",
                                  "apiVersion": "v1"}
    assert first["responseStatus"] == {"metadata": {}, "code": 200}
    assert second["responseStatus"]["status"] == "Failure"
    assert second["responseStatus"]["reason"] == "Forbidden"
    assert first["auditID"] != second["auditID"]
    assert first["requestReceivedTimestamp"].endswith("Z")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
