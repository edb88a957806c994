"""Admission the controllers depend on: DefaultTolerationSeconds, and approve / sign on
signers for CSR approval and issuing (CertificateApproval, CertificateSigning); plus the
controller roles of the default policy."""

import pytest
from test_rbac import policy_store, user

from bootstrap.agents.apiserver.admission import admit
from bootstrap.agents.apiserver.auth.authz import Attributes, Authorizer
from bootstrap.api.errors import APIError
from bootstrap.api.resources import by_gvr

pytestmark = pytest.mark.timeout(20)
PODS = by_gvr("", "v1", "pods")
CSRS = by_gvr("certificates.k8s.io", "v1", "certificatesigningrequests")
ADMIN = user("admin", "system:masters")


@pytest.fixture
def store():
    s = policy_store()
    s.put("namespaces", {"metadata": {"name": "default"}, "status": {"phase": "Active"}})
    s.put("serviceaccounts", {"metadata": {"name": "default", "namespace": "default"},
                              "automountServiceAccountToken": False})
    return s


def pod(tolerations=None):
    return {"metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "x"}],
                     **({"tolerations": tolerations} if tolerations is not None else {})}}


async def test_default_toleration_seconds_added_when_missing(store):
    out = await admit("CREATE", PODS, pod(), None, ADMIN, store)
    assert out["spec"]["tolerations"] == [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300}]


async def test_default_toleration_seconds_respects_existing(store):
    own = {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
           "effect": "NoExecute", "tolerationSeconds": 5}
    out = await admit("CREATE", PODS, pod([own]), None, ADMIN, store)
    assert out["spec"]["tolerations"][0] == own
    assert [t["key"] for t in out["spec"]["tolerations"]] == [
        "node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"]
    everything = {"operator": "Exists"}
    out = await admit("CREATE", PODS, pod([everything]), None, ADMIN, store)
    assert out["spec"]["tolerations"] == [everything]
    # updates are left alone
    out = await admit("UPDATE", PODS, pod([]), pod([]), ADMIN, store)
    assert out["spec"]["tolerations"] == []


def csr(signer="kubernetes.io/kube-apiserver-client-kubelet", cert=None, approved=False):
    obj = {"metadata": {"name": "c1"}, "spec": {"signerName": signer}, "status": {}}
    if approved:
        obj["status"]["conditions"] = [{"type": "Approved", "status": "True"}]
    if cert:
        obj["status"]["certificate"] = cert
    return obj


async def test_approval_needs_approve_on_the_signer(store):
    authz = Authorizer("Node,RBAC", store)
    cm = user("system:kube-controller-manager")
    await admit("UPDATE", CSRS, csr(approved=True), csr(), cm, store, subresource="approval",
                authorizer=authz)
    sa = user("system:serviceaccount:kube-system:certificate-controller",
              "system:serviceaccounts", "system:serviceaccounts:kube-system")
    await admit("UPDATE", CSRS, csr(approved=True), csr(), sa, store, subresource="approval",
                authorizer=authz)
    for who, signer in ((user("mallory"), "kubernetes.io/kube-apiserver-client-kubelet"),
                        (sa, "kubernetes.io/kubelet-serving")):
        with pytest.raises(APIError) as exc:
            await admit("UPDATE", CSRS, csr(signer, approved=True), csr(signer), who, store,
                        subresource="approval", authorizer=authz)
        assert exc.value.code == 403 and (
            f'user not permitted to approve requests with signerName "{signer}"'
            in exc.value.message)


async def test_issuing_needs_sign_and_wildcard_signer_names_count(store):
    authz = Authorizer("RBAC", store)
    with pytest.raises(APIError) as exc:
        await admit("UPDATE", CSRS, csr(cert="Y2VydA=="), csr(), user("mallory"), store,
                    subresource="status", authorizer=authz)
    assert "not permitted to sign" in exc.value.message
    # a status write that leaves the certificate alone needs no signer permission
    await admit("UPDATE", CSRS, csr(), csr(), user("mallory"), store, subresource="status",
                authorizer=authz)
    store.put("clusterroles", {"metadata": {"name": "wild"}, "rules": [
        {"verbs": ["sign"], "apiGroups": ["certificates.k8s.io"], "resources": ["signers"],
         "resourceNames": ["example.com/*"]}]})
    store.put("clusterrolebindings", {"metadata": {"name": "wild"}, "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "wild"},
        "subjects": [{"kind": "User", "name": "signer-bot",
                      "apiGroup": "rbac.authorization.k8s.io"}]})
    await admit("UPDATE", CSRS, csr("example.com/foo", cert="Y2VydA=="), csr("example.com/foo"),
                user("signer-bot"), store, subresource="status", authorizer=authz)


@pytest.mark.parametrize("sa,verb,resource,ns,name,sub,allowed", [
    ("generic-garbage-collector", "delete", "pods", "default", "p", "", True),
    ("namespace-controller", "update", "namespaces", "", "x", "finalize", True),
    ("node-controller", "update", "nodes", "", "n1", "status", True),
    ("node-controller", "delete", "secrets", "default", "s", "", False),
    ("service-account-controller", "create", "serviceaccounts", "ns", "", "", True),
    ("service-account-controller", "delete", "serviceaccounts", "ns", "default", "", False),
    ("token-cleaner", "delete", "secrets", "kube-system", "bootstrap-token-a", "", True),
    ("token-cleaner", "delete", "secrets", "default", "x", "", False),
    ("bootstrap-signer", "update", "configmaps", "kube-public", "cluster-info", "", True),
    ("bootstrap-signer", "update", "configmaps", "kube-public", "other", "", False),
])
async def test_controller_roles(store, sa, verb, resource, ns, name, sub, allowed):
    authz = Authorizer("RBAC", store)
    who = user(f"system:serviceaccount:kube-system:{sa}", "system:serviceaccounts",
               "system:serviceaccounts:kube-system")
    decision = await authz.authorize(Attributes(user=who, verb=verb, resource=resource,
                                                namespace=ns, name=name, subresource=sub))
    assert decision.allowed is allowed
