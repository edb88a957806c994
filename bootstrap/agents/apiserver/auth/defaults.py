"""Default RBAC policy the API server creates at start when absent.

Names, subjects and rules follow upstream's bootstrap policy
(plugin/pkg/auth/authorizer/rbac/bootstrappolicy) plus the bindings kubeadm adds
for TLS bootstrapping (kubeadm:kubelet-bootstrap, kubeadm:node-autoapprove-*,
kubeadm:cluster-admins, kubeadm:get-nodes). One deliberate difference: our
controller manager runs every controller under its own identity (upstream's
--use-service-account-credentials=false), so system:kube-controller-manager
carries the union of what the per-controller roles upstream would grant.
"""

from __future__ import annotations

import copy

from bootstrap.agents.apiserver.auth.node import NODE_RULES

RBAC_API = "rbac.authorization.k8s.io/v1"
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAPPING_LABEL = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"
KUBEADM_NODE_TOKEN_GROUP = "system:bootstrappers:kubeadm:default-node-token"

READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
READ_WRITE = READ + WRITE


def _rule(verbs, groups=None, resources=None, names=None, urls=None) -> dict:
    rule: dict = {"verbs": list(verbs)}
    if urls is not None:
        rule["nonResourceURLs"] = list(urls)
        return rule
    rule["apiGroups"] = list(groups)
    rule["resources"] = list(resources)
    if names:
        rule["resourceNames"] = list(names)
    return rule


def _meta(name: str, labels: dict | None = None) -> dict:
    return {"name": name, "labels": {**BOOTSTRAPPING_LABEL, **(labels or {})},
            "annotations": {AUTOUPDATE: "true"}}


def cluster_role(name: str, rules: list[dict], *, labels: dict | None = None,
                 aggregate_from: str | None = None) -> dict:
    role = {"apiVersion": RBAC_API, "kind": "ClusterRole", "metadata": _meta(name, labels),
            "rules": rules}
    if aggregate_from:
        role["aggregationRule"] = {"clusterRoleSelectors": [
            {"matchLabels": {AGGREGATE + aggregate_from: "true"}}]}
    return role


def subject(kind: str, name: str, namespace: str | None = None) -> dict:
    if kind == "ServiceAccount":
        return {"kind": kind, "name": name, "namespace": namespace or ""}
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name}


def cluster_role_binding(name: str, role: str, subjects: list[dict]) -> dict:
    return {"apiVersion": RBAC_API, "kind": "ClusterRoleBinding", "metadata": _meta(name),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": role},
            "subjects": subjects}


_VIEW_RULES = [
    _rule(READ, [""], ["pods", "replicationcontrollers", "replicationcontrollers/scale",
                       "serviceaccounts", "services", "services/status", "endpoints",
                       "persistentvolumeclaims", "persistentvolumeclaims/status", "configmaps"]),
    _rule(READ, [""], ["limitranges", "resourcequotas", "bindings", "events", "pods/status",
                       "resourcequotas/status", "namespaces/status",
                       "replicationcontrollers/status", "pods/log"]),
    _rule(READ, [""], ["namespaces"]),
    _rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
    _rule(READ, ["apps"], ["controllerrevisions", "statefulsets", "statefulsets/scale",
                           "statefulsets/status", "daemonsets", "daemonsets/status",
                           "deployments", "deployments/scale", "deployments/status",
                           "replicasets", "replicasets/scale", "replicasets/status"]),
    _rule(READ, ["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
    _rule(READ, ["batch"], ["cronjobs", "cronjobs/status", "jobs", "jobs/status"]),
    _rule(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
    _rule(READ, ["networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"]),
    _rule(READ, ["coordination.k8s.io"], ["leases"]),
]

_EDIT_RULES = [
    _rule(["impersonate"], [""], ["serviceaccounts"]),
    _rule(WRITE, [""], ["pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"]),
    _rule(["create"], [""], ["pods/eviction"]),
    _rule(WRITE, [""], ["replicationcontrollers", "replicationcontrollers/scale",
                        "serviceaccounts", "services", "services/proxy",
                        "persistentvolumeclaims", "configmaps", "secrets", "events"]),
    _rule(["create"], [""], ["serviceaccounts/token"]),
    _rule(READ, [""], ["secrets", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy",
                       "services/proxy"]),
    _rule(WRITE, ["apps"], ["statefulsets", "statefulsets/scale", "daemonsets", "deployments",
                            "deployments/scale", "deployments/rollback", "replicasets",
                            "replicasets/scale"]),
    _rule(WRITE, ["autoscaling"], ["horizontalpodautoscalers"]),
    _rule(WRITE, ["batch"], ["cronjobs", "jobs"]),
    _rule(WRITE, ["policy"], ["poddisruptionbudgets"]),
    _rule(WRITE, ["networking.k8s.io"], ["ingresses", "networkpolicies"]),
    _rule(WRITE, ["discovery.k8s.io"], ["endpointslices"]),
    _rule(WRITE, ["coordination.k8s.io"], ["leases"]),
]

_ADMIN_RULES = [
    _rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
    _rule(READ_WRITE, ["rbac.authorization.k8s.io"], ["rolebindings", "roles"]),
]

_SCHEDULER_RULES = [
    _rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
    _rule(["create"], ["coordination.k8s.io"], ["leases"]),
    _rule(["get", "update"], ["coordination.k8s.io"], ["leases"], names=["kube-scheduler"]),
    _rule(["create"], [""], ["endpoints"]),
    _rule(["get", "update"], [""], ["endpoints"], names=["kube-scheduler"]),
    _rule(READ, [""], ["nodes"]),
    _rule(["delete", "get", "list", "watch"], [""], ["pods"]),
    _rule(["create"], [""], ["bindings", "pods/binding"]),
    _rule(["patch", "update"], [""], ["pods/status"]),
    _rule(READ, [""], ["replicationcontrollers", "services", "namespaces",
                       "persistentvolumeclaims", "persistentvolumes", "configmaps"]),
    _rule(READ, ["apps"], ["replicasets", "statefulsets"]),
    _rule(READ, ["policy"], ["poddisruptionbudgets"]),
    _rule(READ, ["storage.k8s.io"], ["csinodes", "csidrivers", "csistoragecapacities",
                                     "storageclasses"]),
    _rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
    _rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
]

_CONTROLLER_MANAGER_RULES = [
    _rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
    _rule(["create"], ["coordination.k8s.io"], ["leases"]),
    _rule(["get", "update"], ["coordination.k8s.io"], ["leases"],
          names=["kube-controller-manager"]),
    # Garbage collector, namespace controller and the informers of every controller.
    _rule(["get", "list", "watch", "patch", "update", "delete", "deletecollection"],
          ["*"], ["*"]),
    _rule(["create"], [""], ["pods", "endpoints", "secrets", "serviceaccounts", "events",
                             "configmaps", "serviceaccounts/token", "pods/eviction",
                             "pods/binding", "bindings"]),
    _rule(["create"], ["apps"], ["replicasets", "controllerrevisions"]),
    _rule(["create"], ["discovery.k8s.io"], ["endpointslices"]),
    _rule(["create"], ["batch"], ["jobs"]),
    _rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
    _rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
    _rule(["update", "patch"], ["certificates.k8s.io"],
          ["certificatesigningrequests/approval", "certificatesigningrequests/status"]),
    _rule(["approve", "sign"], ["certificates.k8s.io"], ["signers"],
          names=["kubernetes.io/kube-apiserver-client-kubelet", "kubernetes.io/kubelet-serving",
                 "kubernetes.io/kube-apiserver-client", "kubernetes.io/legacy-unknown"]),
]

_NODE_ROLE_RULES = NODE_RULES + [
    _rule(READ, [""], ["nodes", "pods"]),
    _rule(["get"], [""], ["secrets", "configmaps", "persistentvolumeclaims",
                          "persistentvolumes"]),
    _rule(["create"], [""], ["serviceaccounts/token"]),
    _rule(["get", "create", "update", "patch", "delete"], ["coordination.k8s.io"], ["leases"]),
]


def _cluster_roles() -> list[dict]:
    return [
        cluster_role("cluster-admin", [_rule(["*"], ["*"], ["*"]), _rule(["*"], urls=["*"])]),
        cluster_role("system:discovery", [_rule(["get"], urls=[
            "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
            "/openapi/*", "/readyz", "/version", "/version/"])]),
        cluster_role("system:public-info-viewer", [_rule(["get"], urls=[
            "/healthz", "/livez", "/readyz", "/version", "/version/"])]),
        cluster_role("system:basic-user", [
            _rule(["create"], ["authorization.k8s.io"],
                  ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
            _rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"])]),
        cluster_role("system:monitoring", [_rule(["get"], urls=[
            "/metrics", "/metrics/slis", "/livez", "/readyz", "/healthz", "/livez/*",
            "/readyz/*", "/healthz/*"])]),
        cluster_role("admin", [], aggregate_from="admin"),
        cluster_role("edit", [], aggregate_from="edit",
                     labels={AGGREGATE + "admin": "true"}),
        cluster_role("view", [], aggregate_from="view",
                     labels={AGGREGATE + "edit": "true"}),
        cluster_role("system:aggregate-to-admin", _ADMIN_RULES,
                     labels={AGGREGATE + "admin": "true"}),
        cluster_role("system:aggregate-to-edit", _EDIT_RULES,
                     labels={AGGREGATE + "edit": "true"}),
        cluster_role("system:aggregate-to-view", _VIEW_RULES,
                     labels={AGGREGATE + "view": "true"}),
        cluster_role("system:node", _NODE_ROLE_RULES),
        cluster_role("system:node-proxier", [
            _rule(["list", "watch"], [""], ["services", "endpoints"]),
            _rule(READ, [""], ["nodes"]),
            _rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
            _rule(["list", "watch"], ["discovery.k8s.io"], ["endpointslices"])]),
        cluster_role("system:kube-scheduler", _SCHEDULER_RULES),
        cluster_role("system:kube-controller-manager", _CONTROLLER_MANAGER_RULES),
        cluster_role("system:kube-dns", [_rule(["list", "watch"], [""],
                                               ["endpoints", "services"])]),
        cluster_role("system:auth-delegator", [
            _rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
            _rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"])]),
        cluster_role("system:kubelet-api-admin", [
            _rule(["get", "list", "watch", "proxy"], [""], ["nodes"]),
            _rule(["*"], [""], ["nodes/log", "nodes/metrics", "nodes/proxy", "nodes/stats"])]),
        cluster_role("system:node-bootstrapper", [
            _rule(["create", "get", "list", "watch"], ["certificates.k8s.io"],
                  ["certificatesigningrequests"])]),
        cluster_role("system:certificates.k8s.io:certificatesigningrequests:nodeclient", [
            _rule(["create"], ["certificates.k8s.io"],
                  ["certificatesigningrequests/nodeclient"])]),
        cluster_role("system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", [
            _rule(["create"], ["certificates.k8s.io"],
                  ["certificatesigningrequests/selfnodeclient"])]),
        cluster_role("system:certificates.k8s.io:kube-apiserver-client-kubelet-approver", [
            _rule(["approve"], ["certificates.k8s.io"], ["signers"],
                  names=["kubernetes.io/kube-apiserver-client-kubelet"])]),
        cluster_role("system:certificates.k8s.io:kubelet-serving-approver", [
            _rule(["approve"], ["certificates.k8s.io"], ["signers"],
                  names=["kubernetes.io/kubelet-serving"])]),
        cluster_role("system:service-account-issuer-discovery", [_rule(["get"], urls=[
            "/.well-known/openid-configuration", "/.well-known/openid-configuration/",
            "/openid/v1/jwks", "/openid/v1/jwks/"])]),
        cluster_role("kubeadm:get-nodes", [_rule(["get"], [""], ["nodes"])]),
    ]


def _cluster_role_bindings() -> list[dict]:
    g, u = (lambda n: subject("Group", n)), (lambda n: subject("User", n))
    return [
        cluster_role_binding("cluster-admin", "cluster-admin", [g("system:masters")]),
        cluster_role_binding("system:discovery", "system:discovery",
                             [g("system:authenticated")]),
        cluster_role_binding("system:basic-user", "system:basic-user",
                             [g("system:authenticated")]),
        cluster_role_binding("system:public-info-viewer", "system:public-info-viewer",
                             [g("system:authenticated"), g("system:unauthenticated")]),
        cluster_role_binding("system:monitoring", "system:monitoring", [g("system:monitoring")]),
        # Upstream keeps this binding without subjects: kubelets go through the Node
        # authorizer, never through RBAC.
        cluster_role_binding("system:node", "system:node", []),
        cluster_role_binding("system:node-proxier", "system:node-proxier",
                             [u("system:kube-proxy")]),
        cluster_role_binding("system:kube-scheduler", "system:kube-scheduler",
                             [u("system:kube-scheduler")]),
        cluster_role_binding("system:kube-controller-manager", "system:kube-controller-manager",
                             [u("system:kube-controller-manager")]),
        cluster_role_binding("system:kube-dns", "system:kube-dns",
                             [subject("ServiceAccount", "kube-dns", "kube-system")]),
        cluster_role_binding("system:service-account-issuer-discovery",
                             "system:service-account-issuer-discovery",
                             [g("system:serviceaccounts")]),
        cluster_role_binding("kubeadm:cluster-admins", "cluster-admin",
                             [g("kubeadm:cluster-admins")]),
        cluster_role_binding("kubeadm:kubelet-bootstrap", "system:node-bootstrapper",
                             [g(KUBEADM_NODE_TOKEN_GROUP)]),
        cluster_role_binding(
            "kubeadm:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            [g(KUBEADM_NODE_TOKEN_GROUP)]),
        cluster_role_binding(
            "kubeadm:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            [g("system:nodes")]),
        cluster_role_binding("kubeadm:get-nodes", "kubeadm:get-nodes",
                             [g(KUBEADM_NODE_TOKEN_GROUP)]),
    ]


def default_rbac_objects() -> list[dict]:
    """ClusterRoles first, then ClusterRoleBindings; fresh copies each call so callers
    may add server-set metadata without touching the module's data."""
    return copy.deepcopy(_cluster_roles() + _cluster_role_bindings())
