"""Default RBAC policy the API server creates at start when absent.

Names, subjects and rules follow upstream's bootstrap policy
(plugin/pkg/auth/authorizer/rbac/bootstrappolicy) plus the bindings kubeadm adds
for TLS bootstrapping (kubeadm:kubelet-bootstrap, kubeadm:node-autoapprove-*,
kubeadm:cluster-admins, kubeadm:get-nodes). The controller manager runs every
controller under its own identity by default, so system:kube-controller-manager
carries the union of what the per-controller roles grant; with
--use-service-account-credentials each controller uses its service account
kube-system:<name> bound to system:controller:<name>, as upstream's
controller_policy.go and namespace_policy.go.
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


# Controller roles (system:controller:<service account>), from upstream's
# controller_policy.go for the controllers our controller manager runs.
_EVENTS = _rule(["create", "update", "patch"], ["", "events.k8s.io"], ["events"])
_CONTROLLER_ROLES: dict[str, list[dict]] = {
    "deployment-controller": [
        _rule(["get", "list", "watch", "update"], ["apps"], ["deployments"]),
        _rule(["update"], ["apps"], ["deployments/status", "deployments/finalizers"]),
        _rule(["get", "list", "watch", "create", "update", "patch", "delete"], ["apps"],
              ["replicasets"]),
        _rule(["get", "list", "watch", "update"], [""], ["pods"]), _EVENTS],
    "replicaset-controller": [
        _rule(["get", "list", "watch", "update"], ["apps"], ["replicasets"]),
        _rule(["update"], ["apps"], ["replicasets/status", "replicasets/finalizers"]),
        _rule(["list", "watch", "patch", "create", "delete"], [""], ["pods"]), _EVENTS],
    "replication-controller": [
        _rule(["get", "list", "watch", "update"], [""], ["replicationcontrollers"]),
        _rule(["update"], [""], ["replicationcontrollers/status",
                                 "replicationcontrollers/finalizers"]),
        _rule(["list", "watch", "patch", "create", "delete"], [""], ["pods"]), _EVENTS],
    "daemon-set-controller": [
        _rule(READ, ["apps"], ["daemonsets"]),
        _rule(["update"], ["apps"], ["daemonsets/status", "daemonsets/finalizers"]),
        _rule(["list", "watch"], [""], ["nodes"]),
        _rule(["list", "watch", "create", "delete", "patch"], [""], ["pods"]),
        _rule(["create"], [""], ["pods/binding"]),
        _rule(READ + ["create", "delete", "update", "patch"], ["apps"],
              ["controllerrevisions"]), _EVENTS],
    "statefulset-controller": [
        _rule(["list", "watch"], [""], ["pods"]),
        _rule(READ, ["apps"], ["statefulsets"]),
        _rule(["update"], ["apps"], ["statefulsets/status", "statefulsets/finalizers"]),
        _rule(["get", "create", "delete", "update", "patch"], [""], ["pods"]),
        _rule(READ + ["create", "delete", "update", "patch"], ["apps"],
              ["controllerrevisions"]),
        _rule(["get", "create", "list", "watch", "update", "delete"], [""],
              ["persistentvolumeclaims"]),
        _rule(["update"], [""], ["pods/finalizers"]), _EVENTS],
    "job-controller": [
        _rule(READ + ["update", "patch"], ["batch"], ["jobs"]),
        _rule(["update"], ["batch"], ["jobs/status", "jobs/finalizers"]),
        _rule(["list", "watch", "create", "delete", "patch"], [""], ["pods"]), _EVENTS],
    "cronjob-controller": [
        _rule(READ + ["update"], ["batch"], ["cronjobs"]),
        _rule(READ + ["create", "update", "delete", "patch"], ["batch"], ["jobs"]),
        _rule(["update"], ["batch"], ["cronjobs/status", "cronjobs/finalizers"]),
        _rule(["list", "watch", "delete"], [""], ["pods"]), _EVENTS],
    "ttl-after-finished-controller": [
        _rule(READ + ["delete"], ["batch"], ["jobs"]), _EVENTS],
    "disruption-controller": [
        _rule(READ, ["apps"], ["deployments", "replicasets", "statefulsets"]),
        _rule(READ, [""], ["replicationcontrollers"]),
        _rule(READ, ["policy"], ["poddisruptionbudgets"]),
        _rule(["update"], ["policy"], ["poddisruptionbudgets/status"]),
        _rule(["patch", "update"], [""], ["pods/status"]),
        _rule(["get"], ["*"], ["*/scale"]), _EVENTS],
    "endpoint-controller": [
        _rule(READ, [""], ["services", "pods"]),
        _rule(READ + ["create", "update", "delete"], [""], ["endpoints"]),
        _rule(["create"], [""], ["endpoints/restricted"]), _EVENTS],
    "endpointslice-controller": [
        _rule(READ, [""], ["services", "pods", "nodes"]),
        _rule(["update"], [""], ["services/finalizers"]),
        _rule(READ + ["create", "update", "delete"], ["discovery.k8s.io"], ["endpointslices"]),
        _EVENTS],
    "generic-garbage-collector": [
        _rule(["get", "list", "watch", "patch", "update", "delete"], ["*"], ["*"]), _EVENTS],
    "namespace-controller": [
        _rule(["get", "list", "watch", "delete"], [""], ["namespaces"]),
        _rule(["update"], [""], ["namespaces/finalize", "namespaces/status"]),
        _rule(["get", "list", "watch", "delete", "deletecollection"], ["*"], ["*"])],
    "node-controller": [
        _rule(["get", "list", "watch", "update", "delete", "patch"], [""], ["nodes"]),
        _rule(["patch", "update"], [""], ["nodes/status", "pods/status"]),
        _rule(["list", "watch", "get", "delete"], [""], ["pods"]), _EVENTS],
    # Upstream runs taint eviction under this name since 1.29; the rules are what
    # the controller does: delete pods and write their DisruptionTarget condition.
    "taint-eviction-controller": [
        _rule(["get", "list", "watch", "delete"], [""], ["pods"]),
        _rule(["patch", "update"], [""], ["pods/status"]),
        _rule(["list", "watch"], [""], ["nodes"]), _EVENTS],
    "pod-garbage-collector": [
        _rule(["list", "watch", "delete"], [""], ["pods"]),
        _rule(READ, [""], ["nodes"]),
        _rule(["patch"], [""], ["pods/status"])],
    "service-account-controller": [_rule(["create"], [""], ["serviceaccounts"]), _EVENTS],
    "certificate-controller": [
        _rule(["get", "list", "watch", "delete"], ["certificates.k8s.io"],
              ["certificatesigningrequests"]),
        _rule(["update"], ["certificates.k8s.io"],
              ["certificatesigningrequests/status", "certificatesigningrequests/approval"]),
        _rule(["approve"], ["certificates.k8s.io"], ["signers"],
              names=["kubernetes.io/kube-apiserver-client-kubelet"]),
        _rule(["sign"], ["certificates.k8s.io"], ["signers"],
              names=["kubernetes.io/legacy-unknown", "kubernetes.io/kube-apiserver-client",
                     "kubernetes.io/kube-apiserver-client-kubelet",
                     "kubernetes.io/kubelet-serving"]),
        _rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]), _EVENTS],
    "root-ca-cert-publisher": [_rule(["create", "update"], [""], ["configmaps"]), _EVENTS],
    # Quota counts anything, so it may list and watch everything.
    "resourcequota-controller": [
        _rule(["list", "watch"], ["*"], ["*"]),
        _rule(["update"], [""], ["resourcequotas/status"]), _EVENTS],
}

# Namespaced controller roles (namespace_policy.go): (namespace, name) -> rules.
_NAMESPACED_CONTROLLER_ROLES: dict[tuple[str, str], list[dict]] = {
    ("kube-system", "bootstrap-signer"): [_rule(READ, [""], ["secrets"])],
    ("kube-public", "bootstrap-signer"): [
        _rule(READ, [""], ["configmaps"]),
        _rule(["update"], [""], ["configmaps"], names=["cluster-info"]), _EVENTS],
    ("kube-system", "token-cleaner"): [
        _rule(["delete", "get", "list", "watch"], [""], ["secrets"]), _EVENTS],
}
CONTROLLER_ROLE_PREFIX = "system:controller:"
# Namespaced roles that are not a controller's (namespace_policy.go), unbound:
# add-ons bind them (an extension API server reads how to trust the aggregator).
_NAMESPACED_ROLES: dict[tuple[str, str], list[dict]] = {
    ("kube-system", "extension-apiserver-authentication-reader"): [
        _rule(["get", "list", "watch"], [""], ["configmaps"],
              names=["extension-apiserver-authentication"])],
}


def _controller_objects() -> list[dict]:
    out: list[dict] = []
    for sa, rules in _CONTROLLER_ROLES.items():
        out.append(cluster_role(CONTROLLER_ROLE_PREFIX + sa, rules))
        out.append(cluster_role_binding(CONTROLLER_ROLE_PREFIX + sa,
                                        CONTROLLER_ROLE_PREFIX + sa,
                                        [subject("ServiceAccount", sa, "kube-system")]))
    for (ns, sa), rules in _NAMESPACED_CONTROLLER_ROLES.items():
        name = CONTROLLER_ROLE_PREFIX + sa
        out.append({"apiVersion": RBAC_API, "kind": "Role",
                    "metadata": {**_meta(name), "namespace": ns}, "rules": rules})
        out.append({"apiVersion": RBAC_API, "kind": "RoleBinding",
                    "metadata": {**_meta(name), "namespace": ns},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                "name": name},
                    "subjects": [subject("ServiceAccount", sa, "kube-system")]})
    for (ns, name), rules in _NAMESPACED_ROLES.items():
        out.append({"apiVersion": RBAC_API, "kind": "Role",
                    "metadata": {**_meta(name), "namespace": ns}, "rules": rules})
    return out


def default_rbac_objects() -> list[dict]:
    """ClusterRoles first, then ClusterRoleBindings, then the controller roles and their
    bindings; fresh copies each call so callers may add server-set metadata without
    touching the module's data."""
    return copy.deepcopy(_cluster_roles() + _cluster_role_bindings() + _controller_objects())
