"""Authentication, authorization, admission and audit on a real API server + etcd,
driven with the real kubectl."""

from __future__ import annotations

import functools
import json
import subprocess
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from .cluster import eventually, running_cluster


def kubectl(kubeconfig, *args, stdin: str | None = None, token: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["/usr/bin/kubectl", f"--kubeconfig={kubeconfig}", *args]
    if token:
        cmd.append(f"--token={token}")
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed: {proc.stderr}")
    return proc


def whoami(kubeconfig, token: str | None = None) -> subprocess.CompletedProcess:
    """A SelfSubjectReview sent as JSON. (``kubectl auth whoami`` itself posts a protobuf
    body, which the server does not decode.)"""
    return kubectl(kubeconfig, "create", "--validate=false", "-o", "json", "-f", "-",
                   token=token, check=False,
                   stdin='{"apiVersion": "authentication.k8s.io/v1", '
                         '"kind": "SelfSubjectReview"}')


# The watch cache behind the auth store is eventually consistent with a write made a
# moment ago; token and RBAC checks get a longer bound than plain reads.
wait_for = functools.partial(eventually, timeout=30.0)


def token_kubeconfig(cluster) -> Path:
    """A kubeconfig with the cluster CA and no client certificate (which would win
    over any bearer token), for ``kubectl --token``."""
    path = cluster.base / "token.kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "clusters": [{"name": "k", "cluster": {"server": cluster.server.url,
                                              "certificate-authority":
                                                  cluster.pki.path("ca.crt")}}],
        "users": [{"name": "t", "user": {}}],
        "contexts": [{"name": "t", "context": {"cluster": "k", "user": "t"}}]}))
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    audit = tmp_path_factory.mktemp("audit") / "audit.log"
    with running_cluster([f"--audit-log-path={audit}"], ("kubeadm:cluster-admins",)) as c:
        c.audit_path = audit
        kubectl(c.admin, "apply", "-f", "-", stdin=textwrap.dedent("""\
            apiVersion: v1
            kind: Namespace
            metadata: {name: team}
            ---
            apiVersion: v1
            kind: ServiceAccount
            metadata: {name: default, namespace: team}
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: Role
            metadata: {name: pod-reader, namespace: team}
            rules:
            - apiGroups: [""]
              resources: [pods]
              verbs: [get, list, watch]
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: RoleBinding
            metadata: {name: alice-reads-pods, namespace: team}
            roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
            subjects:
            - {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}
            """))
        yield c


def test_rbac_limited_user_can_i_and_forbidden_message(cluster):
    alice = cluster.kubeconfig("alice")
    assert wait_for(lambda: kubectl(alice, "auth", "can-i", "list", "pods", "-n", "team",
                                    check=False).stdout.strip() == "yes")
    no = kubectl(alice, "auth", "can-i", "delete", "pods", "-n", "team", check=False)
    assert (no.returncode, no.stdout.strip()) == (1, "no")
    assert kubectl(alice, "auth", "can-i", "list", "pods", "-n", "default",
                   check=False).stdout.strip() == "no"
    denied = kubectl(alice, "get", "secrets", "-n", "team", check=False)
    assert denied.returncode == 1
    assert denied.stderr.strip() == (
        'Error from server (Forbidden): secrets is forbidden: User "alice" cannot list '
        'resource "secrets" in API group "" in the namespace "team"')
    denied = kubectl(alice, "get", "nodes", "n9", check=False)
    assert 'nodes "n9" is forbidden: User "alice" cannot get resource "nodes" in API group ' \
        '"" at the cluster scope' in denied.stderr
    listed = kubectl(alice, "auth", "can-i", "--list", "-n", "team").stdout
    assert any(line.startswith("pods ") and "[get list watch]" in line
               for line in listed.splitlines())
    who = whoami(alice)
    assert json.loads(who.stdout)["status"]["userInfo"]["username"] == "alice"
    # The admin (kubeadm:cluster-admins -> cluster-admin) may do anything.
    assert kubectl(cluster.admin, "auth", "can-i", "*", "*").stdout.strip() == "yes"


def _pod(name, node, secret):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "team"},
            "spec": {"nodeName": node, "containers": [{
                "name": "c", "image": "busybox",
                "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": secret,
                                                                     "key": "k"}}}]}]}}


def test_node_identity_only_sees_its_own_pods_and_secrets(cluster):
    docs = [_pod("on-n1", "n1", "s1"), _pod("on-n2", "n2", "s2")]
    for s in ("s1", "s2"):
        docs.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                     "metadata": {"name": s, "namespace": "team"},
                     "stringData": {"k": "v"}})
    # Schema validation is not what this test is about.
    kubectl(cluster.admin, "apply", "--validate=false", "-f", "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    pod = json.loads(kubectl(cluster.admin, "get", "pod", "on-n1", "-n", "team",
                             "-o", "json").stdout)
    # ServiceAccount admission mounted the token volume.
    assert any(v["name"].startswith("kube-api-access-") for v in pod["spec"]["volumes"])
    n1 = cluster.kubeconfig("system:node:n1", ("system:nodes",))
    assert wait_for(lambda: kubectl(n1, "get", "pod", "on-n1", "-n", "team",
                                    check=False).returncode == 0)
    other = kubectl(n1, "get", "pod", "on-n2", "-n", "team", check=False)
    assert other.returncode == 1 and "Forbidden" in other.stderr
    assert "no relationship found between node 'n1' and this object" in other.stderr
    assert kubectl(n1, "get", "pods", "-A", check=False).returncode == 1
    mine = kubectl(n1, "get", "pods", "-A", "--field-selector", "spec.nodeName=n1",
                   "-o", "name").stdout.split()
    assert mine == ["pod/on-n1"]
    assert kubectl(n1, "get", "secret", "s1", "-n", "team", check=False).returncode == 0
    assert kubectl(n1, "get", "secret", "s2", "-n", "team", check=False).returncode == 1
    # NodeRestriction: a kubelet cannot rewrite another node's pods.
    patched = kubectl(n1, "patch", "pod", "on-n2", "-n", "team", "--subresource=status",
                      "--type=merge", "-p", '{"status":{"phase":"Failed"}}', check=False)
    assert patched.returncode == 1 and "Forbidden" in patched.stderr


def _bootstrap_secret(token_id: str, secret: str, expires: datetime) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
        "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
        "stringData": {"token-id": token_id, "token-secret": secret,
                       "usage-bootstrap-authentication": "true",
                       "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
                       "expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}})


def test_bootstrap_tokens_authenticate_until_expiry(cluster):
    now = datetime.now(UTC)
    kubectl(cluster.admin, "apply", "-f", "-",
            stdin=_bootstrap_secret("abcdef", "0123456789abcdef", now + timedelta(hours=1)))
    kubectl(cluster.admin, "apply", "-f", "-",
            stdin=_bootstrap_secret("zyxwvu", "0123456789abcdef", now - timedelta(minutes=1)))
    kc = token_kubeconfig(cluster)

    assert wait_for(lambda: whoami(kc, "abcdef.0123456789abcdef").returncode == 0)
    info = json.loads(whoami(kc, "abcdef.0123456789abcdef").stdout)["status"]["userInfo"]
    assert info["username"] == "system:bootstrap:abcdef"
    assert "system:bootstrappers:kubeadm:default-node-token" in info["groups"]
    assert kubectl(kc, "auth", "can-i", "create", "certificatesigningrequests",
                   token="abcdef.0123456789abcdef").stdout.strip() == "yes"
    expired = whoami(kc, "zyxwvu.0123456789abcdef")
    assert expired.returncode == 1 and "Unauthorized" in expired.stderr
    assert "Unauthorized" in whoami(kc, "abcdef.ffffffffffffffff").stderr


def test_service_account_token_request_and_revocation(cluster):
    kubectl(cluster.admin, "create", "serviceaccount", "robot", "-n", "team")
    token = kubectl(cluster.admin, "create", "token", "robot", "-n", "team",
                    "--duration=20m").stdout.strip()
    kc = token_kubeconfig(cluster)
    name = "system:serviceaccount:team:robot"
    assert wait_for(lambda: whoami(kc, token).returncode == 0)
    info = json.loads(whoami(kc, token).stdout)
    assert info["status"]["userInfo"]["username"] == name
    assert "system:serviceaccounts:team" in info["status"]["userInfo"]["groups"]
    review = kubectl(cluster.admin, "create", "--validate=false", "-o", "json", "-f", "-",
                     stdin=json.dumps({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": token}}))
    assert json.loads(review.stdout)["status"]["user"]["username"] == name
    kubectl(cluster.admin, "delete", "serviceaccount", "robot", "-n", "team")
    assert wait_for(lambda: "Unauthorized" in whoami(kc, token).stderr)


def test_namespace_lifecycle_and_audit_log(cluster):
    gone = kubectl(cluster.admin, "create", "configmap", "x", "-n", "nowhere", check=False)
    assert 'namespaces "nowhere" not found' in gone.stderr
    undeletable = kubectl(cluster.admin, "delete", "namespace", "kube-system", check=False)
    assert "this namespace may not be deleted" in undeletable.stderr
    alice = cluster.kubeconfig("alice")
    kubectl(alice, "get", "configmaps", "-n", "team", check=False)

    def forbidden_event():
        for line in cluster.audit_path.read_text().splitlines():
            ev = json.loads(line)
            if ev["user"].get("username") == "alice" and ev["responseStatus"]["code"] == 403 \
                    and ev.get("objectRef", {}).get("resource") == "configmaps":
                return ev
        return None

    ev = wait_for(forbidden_event)
    assert ev is not None
    assert ev["apiVersion"] == "audit.k8s.io/v1" and ev["stage"] == "ResponseComplete"
    assert ev["verb"] == "list" and ev["objectRef"]["namespace"] == "team"
    assert ev["sourceIPs"] == ["127.0.0.1"] and ev["userAgent"].startswith("kubectl")


def test_failed_authentication_is_audited(cluster):
    tk = token_kubeconfig(cluster)
    denied = kubectl(tk, "get", "secrets", "-n", "kube-system", token="zzzzzz.0000000000000000",
                     check=False)
    assert denied.returncode != 0 and "Unauthorized" in denied.stderr

    def failed_event():
        for line in cluster.audit_path.read_text().splitlines():
            ev = json.loads(line)
            if ev["responseStatus"]["code"] == 401 and "/secrets" in ev["requestURI"]:
                return ev
        return None

    ev = wait_for(failed_event)
    assert ev is not None
    assert ev["stage"] == "ResponseStarted" and ev["user"] == {}
    assert ev["responseStatus"]["message"] == "Authentication failed, attempted: bearer"
    assert ev["sourceIPs"] == ["127.0.0.1"]


def test_stored_default_policy_is_served(cluster):
    roles = json.loads(kubectl(cluster.admin, "get", "clusterroles", "-o", "json").stdout)
    names = {r["metadata"]["name"] for r in roles["items"]}
    assert {"cluster-admin", "admin", "edit", "view", "system:node",
            "system:kube-scheduler", "system:node-bootstrapper"} <= names
    crb = json.loads(kubectl(cluster.admin, "get", "clusterrolebinding", "cluster-admin",
                             "-o", "json").stdout)
    assert crb["subjects"][0]["name"] == "system:masters"
    assert crb["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] == \
        "true"
