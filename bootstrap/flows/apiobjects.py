"""The objects ``init`` writes to the API, as kubeadm writes them (pure data builders).

Names, namespaces, labels and RBAC subjects follow kubeadm
(cmd/kubeadm/app/phases/{uploadconfig,bootstraptoken,copycerts,addons}).
"""

from __future__ import annotations

import base64
import dataclasses
from datetime import datetime, timedelta

import yaml

from bootstrap import __version__
from bootstrap.config.cluster import dump_cluster_config
from bootstrap.config.model import ClusterConfig

KUBE_SYSTEM = "kube-system"
KUBE_PUBLIC = "kube-public"
NODE_TOKEN_GROUP = "system:bootstrappers:kubeadm:default-node-token"
DEFAULT_USAGES = ("signing", "authentication")
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
CONTROL_PLANE_TAINT = {"key": CONTROL_PLANE_LABEL, "effect": "NoSchedule"}
CERTS_SECRET = "kubeadm-certs"
CERTS_TTL = timedelta(hours=2)
RBAC = "rbac.authorization.k8s.io/v1"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def _b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _meta(name: str, namespace: str | None = None, **extra) -> dict:
    meta = {"name": name, **extra}
    if namespace:
        meta["namespace"] = namespace
    return meta


def config_map(name: str, namespace: str, data: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(name, namespace),
            "data": data}


def kubeadm_config(config: ClusterConfig, version: str | None = None) -> dict:
    """kubeadm-config: the ClusterConfiguration later joins and upgrades read back.

    kubernetesVersion records the bootstrap version the control plane runs
    (``v0.1.0``), as kubeadm records the Kubernetes version it installed: by
    default the toolkit's own install, after ``upgrade apply`` its target."""
    recorded = dataclasses.replace(config, kubernetes_version=f"v{version or __version__}")
    return config_map("kubeadm-config", KUBE_SYSTEM,
                      {"ClusterConfiguration": dump_cluster_config(recorded)})


def kubelet_config(kubelet_yaml: str) -> dict:
    return config_map("kubelet-config", KUBE_SYSTEM, {"kubelet": kubelet_yaml})


def _role(kind: str, name: str, namespace: str | None, rules: list[dict]) -> dict:
    return {"apiVersion": RBAC, "kind": kind, "metadata": _meta(name, namespace), "rules": rules}


def _binding(kind: str, name: str, namespace: str | None, role_kind: str, role: str,
             subjects: list[tuple[str, str]]) -> dict:
    return {"apiVersion": RBAC, "kind": kind, "metadata": _meta(name, namespace),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": k, "name": n}
                         for k, n in subjects]}


def bootstrap_token_rbac() -> list[dict]:
    """kubeadm's bindings for bootstrapping nodes (bootstraptoken/node and clusterinfo)."""
    g = NODE_TOKEN_GROUP
    return [
        _role("ClusterRole", "kubeadm:get-nodes", None,
              [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]),
        _binding("ClusterRoleBinding", "kubeadm:get-nodes", None, "ClusterRole",
                 "kubeadm:get-nodes", [("Group", g)]),
        _binding("ClusterRoleBinding", "kubeadm:kubelet-bootstrap", None, "ClusterRole",
                 "system:node-bootstrapper", [("Group", g)]),
        _binding("ClusterRoleBinding", "kubeadm:node-autoapprove-bootstrap", None, "ClusterRole",
                 "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
                 [("Group", g)]),
        _binding("ClusterRoleBinding", "kubeadm:node-autoapprove-certificate-rotation", None,
                 "ClusterRole",
                 "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
                 [("Group", "system:nodes")]),
        # cluster-info is public: joining nodes read it before they hold any credential.
        _role("Role", "kubeadm:bootstrap-signer-clusterinfo", KUBE_PUBLIC,
              [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cluster-info"],
                "verbs": ["get"]}]),
        _binding("RoleBinding", "kubeadm:bootstrap-signer-clusterinfo", KUBE_PUBLIC, "Role",
                 "kubeadm:bootstrap-signer-clusterinfo", [("User", "system:anonymous")]),
    ]


def config_rbac() -> list[dict]:
    """Joining nodes (bootstrap token) and nodes read kubeadm-config and kubelet-config."""
    subjects = [("Group", NODE_TOKEN_GROUP), ("Group", "system:nodes")]
    out = []
    for role, cm in (("kubeadm:nodes-kubeadm-config", "kubeadm-config"),
                     ("kubeadm:kubelet-config", "kubelet-config")):
        out.append(_role("Role", role, KUBE_SYSTEM, [{"apiGroups": [""], "resources": [
            "configmaps"], "resourceNames": [cm], "verbs": ["get"]}]))
        out.append(_binding("RoleBinding", role, KUBE_SYSTEM, "Role", role, subjects))
    return out


def certs_rbac() -> list[dict]:
    """Joining control-plane nodes read kubeadm-certs with their bootstrap token."""
    role = "kubeadm:kubeadm-certs"
    return [_role("Role", role, KUBE_SYSTEM, [{"apiGroups": [""], "resources": ["secrets"],
                                               "resourceNames": [CERTS_SECRET],
                                               "verbs": ["get"]}]),
            _binding("RoleBinding", role, KUBE_SYSTEM, "Role", role,
                     [("Group", NODE_TOKEN_GROUP)])]


def cluster_info_kubeconfig(server: str, ca_pem: bytes) -> str:
    """The kubeconfig in cluster-info: the CA and the endpoint, no credentials (kubeadm's shape)."""
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "", "cluster": {"certificate-authority-data": _b64(ca_pem),
                                              "server": server}}],
        "contexts": None, "current-context": "", "preferences": {}, "users": None,
    }, sort_keys=False)


def cluster_info(server: str, ca_pem: bytes) -> dict:
    # The bootstrapsigner controller adds jws-kubeconfig-<token-id> keys for each token.
    return config_map("cluster-info", KUBE_PUBLIC,
                      {"kubeconfig": cluster_info_kubeconfig(server, ca_pem)})


def token_secret(token_id: str, secret: str, *, ttl: timedelta | None, now: datetime,
                 usages=DEFAULT_USAGES, groups=(NODE_TOKEN_GROUP,), description: str = "") -> dict:
    """The bootstrap-token-<id> Secret (type bootstrap.kubernetes.io/token)."""
    data = {"token-id": token_id, "token-secret": secret}
    if ttl:
        data["expiration"] = (now + ttl).strftime(TIME_FORMAT)
    for usage in usages:
        data[f"usage-bootstrap-{usage}"] = "true"
    if groups:
        data["auth-extra-groups"] = ",".join(groups)
    if description:
        data["description"] = description
    return {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": _meta(f"bootstrap-token-{token_id}", KUBE_SYSTEM),
            "data": {k: _b64(v) for k, v in data.items()}}


def certs_secret(packed: dict[str, str], owner_token_secret: dict | None) -> dict:
    """kubeadm-certs: the shared CA/SA/front-proxy/etcd-CA files, each AES-GCM sealed.

    Owned by a short-lived bootstrap token's Secret, as kubeadm does: when the
    token expires and is cleaned up, the garbage collector deletes this too.
    """
    meta = _meta(CERTS_SECRET, KUBE_SYSTEM)
    if owner_token_secret is not None:
        owner_meta = owner_token_secret["metadata"]
        meta["ownerReferences"] = [{
            "apiVersion": "v1", "kind": "Secret", "name": owner_meta["name"],
            "uid": owner_meta["uid"], "controller": True, "blockOwnerDeletion": True}]
    # Secret data keys cannot hold "/"; kubeadm names them ca.crt, etcd-ca.crt, ...
    # ``packed`` values are already base64 of the sealed bytes: Secret data as is.
    data = {rel.replace("/", "-"): value for rel, value in packed.items()}
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": meta,
            "data": data}


def secret_key_to_path(key: str) -> str:
    """kubeadm-certs data key -> file under the PKI dir (etcd-ca.crt -> etcd/ca.crt)."""
    return "etcd/" + key[len("etcd-"):] if key.startswith("etcd-") else key


DNS_USER = "system:bootstrap-dns"


def dns_rbac(user: str = DNS_USER) -> list[dict]:
    """What the cluster DNS servers (bootstrap-dns units) may do, applied with the
    kube-dns Service by init's addons/coredns: read Services and
    EndpointSlices everywhere (upstream's system:coredns, minus what we do not
    serve), and in kube-system apply the DNS Service and their own slices."""
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": DNS_USER},
            "rules": [{"apiGroups": [""], "resources": ["services"],
                       "verbs": ["get", "list", "watch"]},
                      {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                       "verbs": ["get", "list", "watch"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": DNS_USER},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": DNS_USER},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                             "name": user}]}
    writer = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
              "metadata": {"name": DNS_USER, "namespace": KUBE_SYSTEM},
              "rules": [{"apiGroups": [""], "resources": ["services"],
                         "verbs": ["get", "create", "patch", "update"]},
                        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                         "verbs": ["get", "create", "patch", "update", "delete"]}]}
    writer_binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                      "metadata": {"name": DNS_USER, "namespace": KUBE_SYSTEM},
                      "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": DNS_USER},
                      "subjects": binding["subjects"]}
    return [role, binding, writer, writer_binding]


def dns_service(cluster_ip: str) -> dict:
    """kube-dns at the tenth service IP, selector-less: DNS runs on the control-plane
    hosts and registers itself in the Service's endpoints (docs/dns.md)."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": _meta("kube-dns", KUBE_SYSTEM, labels={
                "k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                "kubernetes.io/name": "CoreDNS"}),
            "spec": {"clusterIP": cluster_ip, "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]}}


def control_plane_node_patch() -> dict:
    """mark-control-plane: the label (empty value) and the NoSchedule taint, kept with others."""
    return {"metadata": {"labels": {CONTROL_PLANE_LABEL: "",
                                    "node.kubernetes.io/exclude-from-external-load-balancers": ""}}}


def with_control_plane_taint(node: dict) -> list[dict] | None:
    """The node's taints plus kubeadm's, or None when it has it already."""
    taints = list((node.get("spec") or {}).get("taints") or [])
    if any(t.get("key") == CONTROL_PLANE_LABEL and t.get("effect") == "NoSchedule"
           for t in taints):
        return None
    return taints + [dict(CONTROL_PLANE_TAINT)]
