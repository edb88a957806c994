"""The Node authorizer (plugin/pkg/auth/authorizer/node) for kubelet identities.

A user ``system:node:<n>`` in ``system:nodes`` may read only what the pods bound
to node <n> need (their secrets, configmaps, PVCs, service-account tokens), its
own Node and Lease, and the pods bound to it: list/watch of pods must carry the
``spec.nodeName=<n>`` field selector and list/watch of nodes ``metadata.name=<n>``,
as upstream does with AuthorizeNodeWithSelectors (on by default since 1.32).
Everything else falls back to upstream's fixed node rules; what those do not
cover gets no opinion, so RBAC still decides.
"""

from __future__ import annotations

from bootstrap.agents.apiserver.auth.authn import Store, UserInfo
from bootstrap.agents.apiserver.auth.rbac import Request, rule_allows

READ = ("get", "list", "watch")

# Upstream NodeRules() for what is not graph-constrained (bootstrappolicy/policy.go).
NODE_RULES: list[dict] = [
    {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
    {"apiGroups": ["authorization.k8s.io"],
     "resources": ["subjectaccessreviews", "localsubjectaccessreviews"], "verbs": ["create"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": list(READ)},
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["create"]},
    {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch", "update"]},
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["patch", "update"]},
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"],
     "verbs": ["create", "patch", "update"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "delete"]},
    {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch", "update"]},
    {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
    {"apiGroups": [""], "resources": ["endpoints"], "verbs": ["get"]},
    {"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests"],
     "verbs": ["create", "get", "list", "watch"]},
    {"apiGroups": ["storage.k8s.io"], "resources": ["csidrivers", "csinodes"],
     "verbs": list(READ)},
    {"apiGroups": ["node.k8s.io"], "resources": ["runtimeclasses"], "verbs": list(READ)},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": list(READ)},
]


def pod_references(pod: dict) -> dict[str, set[str]]:
    """Secrets, configmaps, PVCs and the service account a pod uses (the graph edges)."""
    refs: dict[str, set[str]] = {"secrets": set(), "configmaps": set(),
                                 "persistentvolumeclaims": set(), "serviceaccounts": set()}
    spec = pod.get("spec") or {}
    refs["serviceaccounts"].add(spec.get("serviceAccountName") or "default")
    for s in spec.get("imagePullSecrets") or []:
        refs["secrets"].add(s.get("name", ""))
    for vol in spec.get("volumes") or []:
        if vol.get("secret"):
            refs["secrets"].add(vol["secret"].get("secretName", ""))
        if vol.get("configMap"):
            refs["configmaps"].add(vol["configMap"].get("name", ""))
        if vol.get("persistentVolumeClaim"):
            refs["persistentvolumeclaims"].add(vol["persistentVolumeClaim"].get("claimName", ""))
        for src in (vol.get("projected") or {}).get("sources") or []:
            if src.get("secret"):
                refs["secrets"].add(src["secret"].get("name", ""))
            if src.get("configMap"):
                refs["configmaps"].add(src["configMap"].get("name", ""))
        for key in ("cephfs", "rbd", "iscsi", "flexVolume", "azureFile", "scaleIO", "storageos",
                    "csi"):
            ref = (vol.get(key) or {}).get("secretRef") or \
                (vol.get(key) or {}).get("nodePublishSecretRef")
            if ref:
                refs["secrets"].add(ref.get("name", ""))
    containers = (spec.get("containers") or []) + (spec.get("initContainers") or []) + \
        (spec.get("ephemeralContainers") or [])
    for c in containers:
        for env in c.get("env") or []:
            vf = env.get("valueFrom") or {}
            if vf.get("secretKeyRef"):
                refs["secrets"].add(vf["secretKeyRef"].get("name", ""))
            if vf.get("configMapKeyRef"):
                refs["configmaps"].add(vf["configMapKeyRef"].get("name", ""))
        for ef in c.get("envFrom") or []:
            if ef.get("secretRef"):
                refs["secrets"].add(ef["secretRef"].get("name", ""))
            if ef.get("configMapRef"):
                refs["configmaps"].add(ef["configMapRef"].get("name", ""))
    for v in refs.values():
        v.discard("")
    return refs


def _pinned_value(selector: str | None, field: str) -> str | None:
    """The value a field selector requires ``field`` to equal (``f=v`` or ``f==v``)."""
    for term in (selector or "").split(","):
        term = term.strip()
        if "!=" in term:
            continue
        key, sep, value = term.partition("==") if "==" in term else term.partition("=")
        if sep and key.strip() == field:
            return value.strip()
    return None


def _selector_pins(selector: str | None, field: str, value: str) -> bool:
    return _pinned_value(selector, field) == value


class NodeAuthorizer:
    def __init__(self, store: Store):
        self._store = store

    async def authorize(self, user: UserInfo, req: Request, *,
                        field_selector: str | None = None) -> tuple[bool | None, str]:
        """(True, reason) to allow, (None, reason) for no opinion; never a hard deny."""
        node = user.node_name
        if node is None:
            return None, ""
        if not node:
            return None, "unknown node"
        if not req.resource_request:
            return None, ""
        gr = (req.api_group, req.resource)
        if gr == ("", "pods") and not req.subresource:
            return await self._pods(node, req, field_selector)
        if gr == ("", "nodes") and req.verb in READ and not req.subresource:
            return self._own_node_read(node, req, field_selector)
        if gr in (("", "nodes"),) and req.verb in ("update", "patch", "delete"):
            if req.name != node:
                return None, f'node "{node}" cannot modify node "{req.name}"'
        if gr in (("", "secrets"), ("", "configmaps"), ("", "persistentvolumeclaims")) \
                and not req.subresource:
            return await self._referenced(node, req, field_selector)
        if gr == ("", "serviceaccounts") and req.subresource == "token":
            if req.verb != "create":
                return None, "can only create tokens for individual service accounts"
            return await self._referenced(node, req)
        if gr == ("", "pods") and req.subresource in ("status", "eviction"):
            pod = await self._store.get("pods", req.namespace, req.name)
            if pod is None or (pod.get("spec") or {}).get("nodeName") != node:
                return None, (f"no relationship found between node '{node}' and this object")
        if gr == ("coordination.k8s.io", "leases"):
            return self._lease(node, req)
        if rule_allows_any(req):
            return True, ""
        return None, ""

    async def _pods(self, node: str, req: Request, field_selector: str | None):
        if req.verb in ("list", "watch"):
            if _selector_pins(field_selector, "spec.nodeName", node):
                return True, ""
            return None, "can only list/watch pods with spec.nodeName field selector"
        if req.verb == "get":
            pod = await self._store.get("pods", req.namespace, req.name)
            if pod is not None and (pod.get("spec") or {}).get("nodeName") == node:
                return True, ""
            return None, f"no relationship found between node '{node}' and this object"
        if req.verb in ("create", "delete"):
            # Mirror pods; NodeRestriction admission checks the node binding.
            return True, ""
        return None, ""

    def _own_node_read(self, node: str, req: Request, field_selector: str | None):
        if req.verb == "get":
            if req.name == node:
                return True, ""
            return None, f'node "{node}" can only get its own Node object'
        if _selector_pins(field_selector, "metadata.name", node) or req.name == node:
            return True, ""
        return None, f'node "{node}" can only list/watch its own Node object'

    async def _referenced(self, node: str, req: Request, field_selector: str | None = None):
        """get of one object (or list/watch pinned to one name by metadata.name) that a
        pod bound to the node references."""
        name = req.name
        if req.verb in ("list", "watch") and not name:
            name = _pinned_value(field_selector, "metadata.name") or ""
        elif req.verb != "get" and not (req.verb == "create" and req.subresource == "token"):
            name = ""
        if not name:
            return None, f"can only get individual {req.resource}"
        for pod in await self._store.list("pods", req.namespace):
            if (pod.get("spec") or {}).get("nodeName") != node:
                continue
            if name in pod_references(pod).get(req.resource, set()):
                return True, ""
        return None, f"no relationship found between node '{node}' and this object"

    @staticmethod
    def _lease(node: str, req: Request):
        if req.namespace != "kube-node-lease":
            return None, "can only access node lease in the kube-node-lease namespace"
        if req.verb not in ("get", "create", "update", "patch", "delete"):
            return None, f"can't {req.verb} node lease"
        if req.verb != "create" and req.name != node:
            return None, "can only access node lease with the same name as the requesting node"
        return True, ""


def rule_allows_any(req: Request) -> bool:
    return any(rule_allows(r, req) for r in NODE_RULES)
