"""RBAC evaluation, default policy, Node authorizer, the authorizer chain and reviews."""

from __future__ import annotations

import pytest
from test_auth_authn import FakeStore

from bootstrap.agents.apiserver.auth import reviews
from bootstrap.agents.apiserver.auth.authn import Authenticator, UserInfo
from bootstrap.agents.apiserver.auth.authz import Attributes, Authorizer
from bootstrap.agents.apiserver.auth.defaults import default_rbac_objects
from bootstrap.agents.apiserver.auth.rbac import Request, rule_allows
from bootstrap.api.errors import APIError

PLURALS = {"ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings",
           "Role": "roles", "RoleBinding": "rolebindings"}


def policy_store(*extra) -> FakeStore:
    store = FakeStore()
    for obj in list(default_rbac_objects()) + list(extra):
        store.put(PLURALS.get(obj.get("kind"), obj.get("kind")), obj)
    return store


def user(name, *groups):
    return UserInfo(name=name, groups=[*groups, "system:authenticated"])


def attrs(u, verb, resource="", ns="", name="", group="", sub="", path="", fs=None):
    return Attributes(user=u, verb=verb, api_group=group, resource=resource, subresource=sub,
                      namespace=ns, name=name, path=path, resource_request=not path,
                      field_selector=fs)


def binding(kind, name, role_kind, role, subjects, ns=None):
    meta = {"name": name}
    if ns:
        meta["namespace"] = ns
    return {"kind": kind, "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind,
                        "name": role},
            "subjects": subjects}


def test_rule_matching():
    rule = {"apiGroups": ["apps"], "resources": ["deployments", "*/scale"],
            "verbs": ["get", "update"], "resourceNames": ["web"]}
    assert rule_allows(rule, Request("get", "apps", "deployments", name="web"))
    assert not rule_allows(rule, Request("get", "apps", "deployments", name="db"))
    assert not rule_allows(rule, Request("get", "", "deployments", name="web"))
    assert not rule_allows(rule, Request("delete", "apps", "deployments", name="web"))
    assert rule_allows(rule, Request("update", "apps", "replicasets", "scale", name="web"))
    # The parent resource does not grant its subresources.
    assert not rule_allows(rule, Request("get", "apps", "deployments", "status", name="web"))
    urls = {"nonResourceURLs": ["/healthz", "/apis/*"], "verbs": ["get"]}
    assert rule_allows(urls, Request("get", path="/apis/apps/v1", resource_request=False))
    assert rule_allows(urls, Request("get", path="/healthz", resource_request=False))
    assert not rule_allows(urls, Request("get", path="/healthz/etcd", resource_request=False))
    assert not rule_allows(urls, Request("post", path="/healthz", resource_request=False))


async def test_default_roles_view_edit_admin_via_rolebinding():
    store = policy_store(
        binding("RoleBinding", "v", "ClusterRole", "view",
                [{"kind": "User", "name": "viewer"}], ns="team"),
        binding("RoleBinding", "e", "ClusterRole", "edit",
                [{"kind": "Group", "name": "devs"}], ns="team"),
        binding("RoleBinding", "a", "ClusterRole", "admin",
                [{"kind": "ServiceAccount", "name": "ci"}], ns="team"))
    authz = Authorizer("Node,RBAC", store)
    viewer, dev = user("viewer"), user("bob", "devs")
    ci = user("system:serviceaccount:team:ci", "system:serviceaccounts")

    async def ok(u, *a, **kw):
        return (await authz.authorize(attrs(u, *a, **kw))).allowed

    assert await ok(viewer, "list", "pods", "team")
    assert await ok(viewer, "get", "deployments", "team", group="apps")
    assert not await ok(viewer, "get", "secrets", "team")
    assert not await ok(viewer, "list", "pods", "other")  # RoleBinding is namespace-bound
    assert not await ok(viewer, "create", "pods", "team")
    assert await ok(dev, "create", "pods", "team")
    assert await ok(dev, "get", "secrets", "team")
    assert await ok(dev, "patch", "deployments", "team", group="apps", sub="scale")
    assert not await ok(dev, "create", "rolebindings", "team", group="rbac.authorization.k8s.io")
    assert await ok(ci, "create", "rolebindings", "team", group="rbac.authorization.k8s.io")
    assert await ok(ci, "list", "pods", "team")  # admin aggregates edit aggregates view
    decision = await authz.authorize(attrs(viewer, "list", "pods", "team"))
    assert decision.reason == ('RBAC: allowed by RoleBinding "v/team" of ClusterRole "view" '
                               'to User "viewer"')


async def test_cluster_bindings_masters_and_missing_role_reason():
    store = policy_store(
        binding("ClusterRoleBinding", "ghost", "ClusterRole", "does-not-exist",
                [{"kind": "User", "name": "carol"}]),
        {"kind": "Role", "metadata": {"name": "cm-reader", "namespace": "x"},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"],
                    "resourceNames": ["settings"]}]},
        binding("RoleBinding", "r", "Role", "cm-reader", [{"kind": "User", "name": "carol"}],
                ns="x"))
    authz = Authorizer(["Node", "RBAC"], store)
    carol = user("carol")
    assert (await authz.authorize(attrs(carol, "get", "configmaps", "x", "settings"))).allowed
    denied = await authz.authorize(attrs(carol, "get", "configmaps", "x", "other"))
    assert not denied.allowed and not denied.denied
    assert 'clusterrole.rbac.authorization.k8s.io "does-not-exist" not found' in denied.reason
    # system:masters is allowed everything, before any mode runs.
    admin = user("kubernetes-admin", "system:masters")
    assert (await authz.authorize(attrs(admin, "delete", "nodes", name="n1"))).allowed
    # kubeadm's admin group is bound to cluster-admin by the defaults.
    kadm = user("kubernetes-admin", "kubeadm:cluster-admins")
    assert (await authz.authorize(attrs(kadm, "get", path="/metrics"))).allowed
    # Anyone authenticated may discover and ask about themselves.
    anyone = user("nobody")
    assert (await authz.authorize(attrs(anyone, "get", path="/apis/apps/v1"))).allowed
    assert (await authz.authorize(attrs(anyone, "create", "selfsubjectaccessreviews",
                                        group="authorization.k8s.io"))).allowed
    anon = UserInfo("system:anonymous", groups=["system:unauthenticated"])
    assert (await authz.authorize(attrs(anon, "get", path="/version"))).allowed
    assert not (await authz.authorize(attrs(anon, "get", path="/api"))).allowed
    with pytest.raises(ValueError):
        Authorizer("RBAC,Webhook", store)


async def test_system_components_and_bootstrappers():
    authz = Authorizer("Node,RBAC", policy_store())
    sched = user("system:kube-scheduler")
    cm = user("system:kube-controller-manager")
    boot = user("system:bootstrap:abcdef", "system:bootstrappers",
                "system:bootstrappers:kubeadm:default-node-token")

    async def ok(u, *a, **kw):
        return (await authz.authorize(attrs(u, *a, **kw))).allowed

    assert await ok(sched, "create", "pods", "default", "p", sub="binding")
    assert await ok(sched, "update", "leases", "kube-system", "kube-scheduler",
                    group="coordination.k8s.io")
    assert not await ok(sched, "update", "leases", "kube-system", "kube-controller-manager",
                        group="coordination.k8s.io")
    assert not await ok(sched, "get", "secrets", "default", "s")
    assert await ok(cm, "create", "replicasets", "default", group="apps")
    assert await ok(cm, "delete", "pods", "default", "p")
    assert await ok(cm, "update", "certificatesigningrequests", name="c", sub="approval",
                    group="certificates.k8s.io")
    assert await ok(boot, "create", "certificatesigningrequests", group="certificates.k8s.io")
    assert await ok(boot, "create", "certificatesigningrequests", sub="nodeclient",
                    group="certificates.k8s.io")
    assert not await ok(boot, "list", "pods", "default")


def _pod(name, node, ns="default", secret=None, cm=None):
    spec = {"nodeName": node, "containers": [{"name": "c", "image": "i"}], "volumes": []}
    if secret:
        spec["volumes"].append({"name": "s", "secret": {"secretName": secret}})
    if cm:
        spec["containers"][0]["envFrom"] = [{"configMapRef": {"name": cm}}]
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


async def test_node_authorizer_limits_kubelet_to_its_node():
    store = policy_store()
    store.put("pods", _pod("mine", "n1", secret="db-pass", cm="settings"))
    store.put("pods", _pod("theirs", "n2", secret="other-pass"))
    authz = Authorizer("Node,RBAC", store)
    n1 = UserInfo("system:node:n1", groups=["system:nodes", "system:authenticated"])

    async def ok(*a, **kw):
        return (await authz.authorize(attrs(n1, *a, **kw))).allowed

    assert await ok("get", "pods", "default", "mine")
    denied = await authz.authorize(attrs(n1, "get", "pods", "default", "theirs"))
    assert not denied.allowed
    assert "no relationship found between node 'n1' and this object" in denied.reason
    assert await ok("list", "pods", fs="spec.nodeName=n1")
    assert await ok("watch", "pods", fs="status.phase!=Failed,spec.nodeName=n1")
    assert not await ok("list", "pods")
    assert not await ok("list", "pods", fs="spec.nodeName=n2")
    assert await ok("get", "secrets", "default", "db-pass")
    assert not await ok("get", "secrets", "default", "other-pass")
    assert await ok("get", "configmaps", "default", "settings")
    assert not await ok("list", "secrets", "default")
    assert await ok("get", "nodes", name="n1")
    assert await ok("watch", "nodes", fs="metadata.name=n1")
    assert not await ok("get", "nodes", name="n2")
    assert await ok("patch", "nodes", name="n1", sub="status")
    assert not await ok("patch", "nodes", name="n2", sub="status")
    assert await ok("update", "pods", "default", "mine", sub="status")
    assert not await ok("update", "pods", "default", "theirs", sub="status")
    assert await ok("update", "leases", "kube-node-lease", "n1", group="coordination.k8s.io")
    assert not await ok("update", "leases", "kube-node-lease", "n2",
                        group="coordination.k8s.io")
    assert await ok("create", "events", "default")
    assert await ok("create", "certificatesigningrequests", group="certificates.k8s.io")
    assert not await ok("delete", "namespaces", name="default")


async def test_access_reviews_shapes():
    store = policy_store(binding("RoleBinding", "v", "ClusterRole", "view",
                                 [{"kind": "User", "name": "viewer"}], ns="team"))
    authz = Authorizer("Node,RBAC", store)
    viewer = user("viewer")
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "metadata": {"creationTimestamp": None},
            "spec": {"resourceAttributes": {"namespace": "team", "verb": "list",
                                            "resource": "pods"}}}
    out = await reviews.self_subject_access_review(body, viewer, authz)
    assert out["status"]["allowed"] is True and "RBAC: allowed by" in out["status"]["reason"]
    assert out["spec"] == body["spec"]
    body["spec"]["resourceAttributes"]["verb"] = "delete"
    assert (await reviews.self_subject_access_review(body, viewer, authz))["status"] == {
        "allowed": False}
    sar = {"spec": {"user": "viewer", "groups": [],
                    "resourceAttributes": {"namespace": "team", "verb": "get",
                                           "resource": "configmaps"}}}
    assert (await reviews.subject_access_review(sar, authz))["status"]["allowed"]
    with pytest.raises(APIError) as exc:
        await reviews.subject_access_review({"spec": {"user": "x"}}, authz)
    assert exc.value.code == 422
    with pytest.raises(APIError):
        await reviews.local_subject_access_review(sar, "elsewhere", authz)
    rules = await reviews.self_subject_rules_review({"spec": {"namespace": "team"}}, viewer,
                                                    authz)
    verbs = {v for r in rules["status"]["resourceRules"] if "pods" in r["resources"]
             for v in r["verbs"]}
    assert {"get", "list", "watch"} <= verbs
    assert any("/api" in r["nonResourceURLs"] for r in rules["status"]["nonResourceRules"])
    assert rules["status"]["incomplete"] is False


async def test_token_review():
    from test_auth_authn import bootstrap_secret

    store = FakeStore([("secrets", bootstrap_secret())])
    authn = Authenticator(bootstrap_token_enabled=True, store=store, api_audiences=["api"])
    good = await reviews.token_review({"spec": {"token": "abcdef.0123456789abcdef"}}, authn)
    assert good["status"]["authenticated"] is True
    assert good["status"]["user"]["username"] == "system:bootstrap:abcdef"
    assert good["status"]["audiences"] == ["api"]
    bad = await reviews.token_review({"spec": {"token": "abcdef.ffffffffffffffff"}}, authn)
    assert bad["status"]["authenticated"] is False and bad["status"]["error"]
    other_aud = await reviews.token_review(
        {"spec": {"token": "abcdef.0123456789abcdef", "audiences": ["vault"]}}, authn)
    assert other_aud["status"]["authenticated"] is False
    me = reviews.self_subject_review(user("alice", "devs"))
    assert me["status"]["userInfo"] == {"username": "alice",
                                        "groups": ["devs", "system:authenticated"]}


def test_default_policy_objects_are_well_formed():
    objs = default_rbac_objects()
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    for wanted in ["cluster-admin", "admin", "edit", "view", "system:node",
                   "system:kube-scheduler", "system:kube-controller-manager",
                   "system:node-bootstrapper",
                   "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
                   "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
                   "system:discovery", "system:basic-user", "system:public-info-viewer"]:
        assert ("ClusterRole", wanted) in names
    roles = {o["metadata"]["name"] for o in objs if o["kind"] == "ClusterRole"}
    for o in objs:
        assert o["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] == "true"
        if o["kind"] == "ClusterRoleBinding":
            assert o["roleRef"]["name"] in roles, o["metadata"]["name"]
    masters = next(o for o in objs if o["kind"] == "ClusterRoleBinding"
                   and o["metadata"]["name"] == "cluster-admin")
    assert masters["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                    "name": "system:masters"}]
    objs[0]["metadata"]["name"] = "mutated"
    assert default_rbac_objects()[0]["metadata"]["name"] == "cluster-admin"


async def test_impersonation_needs_the_impersonate_verb():
    from multidict import CIMultiDict

    from bootstrap.agents.apiserver.auth.impersonation import impersonate

    store = policy_store(
        {"kind": "ClusterRole", "metadata": {"name": "impersonator"},
         "rules": [{"apiGroups": [""], "resources": ["users", "groups"],
                    "verbs": ["impersonate"], "resourceNames": ["bob", "devs"]}]},
        binding("ClusterRoleBinding", "imp", "ClusterRole", "impersonator",
                [{"kind": "User", "name": "alice"}]))
    authz = Authorizer("Node,RBAC", store)
    alice = user("alice", "team-a")
    assert await impersonate(alice, CIMultiDict(), authz) is alice
    bob = await impersonate(alice, CIMultiDict([("Impersonate-User", "bob"),
                                                ("Impersonate-Group", "devs")]), authz)
    assert bob == UserInfo("bob", groups=["devs", "system:authenticated"])
    with pytest.raises(APIError) as exc:
        await impersonate(alice, CIMultiDict([("Impersonate-User", "carol")]), authz)
    assert exc.value.message == ('users "carol" is forbidden: User "alice" cannot impersonate '
                                 'resource "users" in API group "" at the cluster scope')
    with pytest.raises(APIError) as exc:
        await impersonate(alice, CIMultiDict([("Impersonate-User", "bob"),
                                              ("Impersonate-Group", "system:masters")]), authz)
    assert exc.value.code == 403
    with pytest.raises(APIError) as exc:
        await impersonate(alice, CIMultiDict([("Impersonate-Group", "devs")]), authz)
    assert exc.value.code == 400
    # Namespace admins may impersonate service accounts of their namespace (edit role).
    store.put("rolebindings", binding("RoleBinding", "ed", "ClusterRole", "edit",
                                      [{"kind": "User", "name": "alice"}], ns="team"))
    sa = await impersonate(alice, CIMultiDict(
        [("Impersonate-User", "system:serviceaccount:team:builder")]), authz)
    assert sa.groups == ["system:serviceaccounts", "system:serviceaccounts:team",
                         "system:authenticated"]


async def test_node_authorizer_single_name_lists_and_token_requests():
    store = policy_store()
    store.put("pods", _pod("mine", "n1", secret="db-pass"))
    store.put("pods", {"metadata": {"name": "sa-user", "namespace": "default"},
                       "spec": {"nodeName": "n1", "serviceAccountName": "builder"}})
    authz = Authorizer("Node,RBAC", store)
    n1 = UserInfo("system:node:n1", groups=["system:nodes", "system:authenticated"])

    async def ok(*a, **kw):
        return (await authz.authorize(attrs(n1, *a, **kw))).allowed

    assert await ok("watch", "secrets", "default", fs="metadata.name=db-pass")
    assert not await ok("watch", "secrets", "default", fs="metadata.name!=db-pass")
    assert not await ok("create", "secrets", "default", "db-pass")
    assert not await ok("update", "secrets", "default", "db-pass")
    assert await ok("create", "serviceaccounts", "default", "builder", sub="token")
    assert not await ok("create", "serviceaccounts", "default", "admin", sub="token")
    assert not await ok("get", "serviceaccounts", "default", "builder", sub="token")


async def test_bad_client_certificate_is_not_anonymous(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from test_auth_authn import make_ca, make_leaf

    key, ca = make_ca()
    other_key, other_ca = make_ca("other")
    path = tmp_path / "ca.crt"
    path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    _, foreign = make_leaf(other_key, other_ca, "mallory")
    authn = Authenticator(client_ca_file=path, anonymous_allowed=True)
    assert (await authn.authenticate(None, None)).name == "system:anonymous"
    with pytest.raises(APIError) as exc:
        await authn.authenticate(foreign, None)
    assert exc.value.code == 401
