"""Admission: the plugins every request passes after authorization, before storage.

Plugins are a table in upstream's order with upstream's names (PLUGINS); each
request runs every enabled plugin's mutating phase, then every validating phase,
with upstream's checks and error messages. --enable-admission-plugins and
--disable-admission-plugins choose the set. Defaulting of object fields is the
schema's job, which the registry runs before calling ``admit``.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from bootstrap.agents.apiserver import limitranger, podrefs, policies, resourcequota, webhooks
from bootstrap.agents.apiserver.auth.authn import Store, UserInfo
from bootstrap.agents.apiserver.serviceaccount import PROJECTED_EXPIRATION_SECONDS
from bootstrap.api import errors
from bootstrap.api.resources import Resource

IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
SA_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
NODE_RESTRICTION_PREFIX = "node-restriction.kubernetes.io/"
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

# Labels under kubernetes.io / k8s.io a kubelet may set on its own Node (upstream
# NodeRestriction's allowed list); any other label in those namespaces is refused.
_KUBELET_LABELS = {
    "kubernetes.io/hostname", "kubernetes.io/arch", "kubernetes.io/os",
    "beta.kubernetes.io/arch", "beta.kubernetes.io/os", "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type", "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone", "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone", "node.kubernetes.io/windows-build",
}
_KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")


@dataclass(frozen=True)
class Attributes:
    """What every plugin sees of a request (upstream's admission.Attributes)."""

    op: str
    resource: Resource
    subresource: str
    obj: dict | None
    old: dict | None
    user: UserInfo
    store: Store
    namespace: str
    name: str
    authorizer: object = None
    dry_run: bool = False
    # Where webhooks' warnings (Warning headers) and audit annotations go; None: dropped.
    warnings: list | None = None
    annotations: dict | None = None

    @property
    def pod_create(self) -> bool:
        return self.op == "CREATE" and self.resource.gvr == ("", "v1", "pods") and \
            not self.subresource


async def _mutate_service_account(a: Attributes) -> dict | None:
    if a.pod_create:
        return await _service_account(copy.deepcopy(a.obj), a.namespace, a.store)
    return a.obj


async def _mutate_priority(a: Attributes) -> dict | None:
    if a.pod_create:
        return await _priority_pod(copy.deepcopy(a.obj), a.name, a.store)
    return a.obj


async def _mutate_default_tolerations(a: Attributes) -> dict | None:
    if a.pod_create:
        pod = copy.deepcopy(a.obj)
        _default_toleration_seconds(pod)
        return pod
    return a.obj


async def _validate_namespace_lifecycle(a: Attributes) -> None:
    await _namespace_lifecycle(a.op, a.resource, a.namespace, a.name, a.store)


async def _validate_priority(a: Attributes) -> None:
    if a.resource.gvr == PRIORITY_CLASSES and a.op in ("CREATE", "UPDATE") and \
            not a.subresource:
        await _priority_class(a.op, a.obj, a.name, a.store)


def _validate_certificates(subresource: str):
    async def check(a: Attributes) -> None:
        if a.authorizer is not None and a.resource.gvr == CSRS and a.op == "UPDATE" and \
                a.subresource == subresource:
            await _certificate_signer_permission(a.subresource, a.obj, a.old, a.user,
                                                 a.authorizer)
    return check


async def _validate_node_restriction(a: Attributes) -> None:
    node = a.user.node_name
    if node is not None:
        await _node_restriction(a.op, a.resource, a.subresource, a.obj, a.old, node,
                                a.namespace, a.name, a.store)


@dataclass(frozen=True)
class Plugin:
    name: str
    mutate: Callable[[Attributes], Awaitable[dict | None]] | None = None
    validate: Callable[[Attributes], Awaitable[None]] | None = None


# Upstream's plugin order (kube-apiserver's AllOrderedPlugins), for those we implement:
# all mutating phases run in this order, then all validating phases.
PLUGINS = (
    Plugin("NamespaceLifecycle", validate=_validate_namespace_lifecycle),
    Plugin("LimitRanger", mutate=limitranger.mutate, validate=limitranger.validate),
    Plugin("ServiceAccount", mutate=_mutate_service_account),
    Plugin("NodeRestriction", validate=_validate_node_restriction),
    Plugin("Priority", mutate=_mutate_priority, validate=_validate_priority),
    Plugin("DefaultTolerationSeconds", mutate=_mutate_default_tolerations),
    Plugin("CertificateApproval", validate=_validate_certificates("approval")),
    Plugin("CertificateSigning", validate=_validate_certificates("status")),
    # Upstream runs the webhooks last: mutating ones at the end of the mutating chain,
    # validating ones at the end of the validating chain.
    Plugin("MutatingAdmissionWebhook", mutate=webhooks.mutate),
    Plugin("ValidatingAdmissionPolicy", validate=policies.validate),
    Plugin("ValidatingAdmissionWebhook", validate=webhooks.validate),
    # Quota charges last, once every other plugin said yes.
    Plugin("ResourceQuota", validate=resourcequota.QuotaAdmission().validate),
)
BY_NAME = {p.name: p for p in PLUGINS}
# On unless --disable-admission-plugins names them (upstream's default-on set, as far as
# we implement it; NodeRestriction is off upstream and kubeadm enables it).
DEFAULT_ENABLED = frozenset({"NamespaceLifecycle", "LimitRanger", "ServiceAccount",
                             "Priority", "DefaultTolerationSeconds", "CertificateApproval",
                             "CertificateSigning", "MutatingAdmissionWebhook",
                             "ValidatingAdmissionPolicy", "ValidatingAdmissionWebhook",
                             "ResourceQuota"})
# Upstream plugins we do not implement: naming one is accepted with a warning, so a
# kube-apiserver flag line works, but never silently.
NOT_IMPLEMENTED = frozenset({
    "AlwaysAdmit", "AlwaysDeny", "AlwaysPullImages", "ClusterTrustBundleAttest",
    "CertificateSubjectRestriction", "DefaultIngressClass", "DefaultStorageClass",
    "DenyServiceExternalIPs", "EventRateLimit", "ExtendedResourceToleration",
    "ImagePolicyWebhook", "LimitPodHardAntiAffinityTopology",
    "NamespaceAutoProvision", "NamespaceExists",
    "OwnerReferencesPermissionEnforcement", "PersistentVolumeClaimResize",
    "PodNodeSelector", "PodSecurity", "PodTolerationRestriction",
    "RuntimeClass", "SecurityContextDeny", "StorageObjectInUseProtection",
    "TaintNodesByCondition",
})


def enabled_plugins(enable: list[str], disable: list[str]) -> tuple[frozenset, list[str]]:
    """The plugins to run for --enable/--disable-admission-plugins, and warnings for the
    upstream names we do not implement. ValueError for a name upstream does not know or
    one that is both enabled and disabled."""
    warnings = []
    for name in [*enable, *disable]:
        if name not in BY_NAME and name not in NOT_IMPLEMENTED:
            raise ValueError(f"admission-control plugin {name!r} not found; known: "
                             f"{', '.join(sorted(BY_NAME))}")
        if name in NOT_IMPLEMENTED:
            warnings.append(f"admission plugin {name} is not implemented by "
                            f"bootstrap-apiserver; ignored")
    both = sorted(set(enable) & set(disable))
    if both:
        raise ValueError(f"{', '.join(both)} in both enable-admission-plugins and "
                         f"disable-admission-plugins")
    return (DEFAULT_ENABLED | set(enable)) - set(disable), warnings


async def admit(op: str, resource: Resource, obj: dict | None, old: dict | None,
                user: UserInfo, store: Store, *, subresource: str = "",
                namespace: str | None = None, name: str | None = None,
                authorizer=None, enabled: frozenset | None = None, dry_run: bool = False,
                warnings: list | None = None, annotations: dict | None = None) -> dict | None:
    """Run the enabled plugins; returns the (possibly mutated) object or raises APIError.

    ``namespace``/``name`` default to the object's (or the old object's) metadata,
    which a DELETE or a subresource request may not carry. ``enabled`` None runs every
    plugin we implement. Mutating plugins work on copies, so a rejected request leaves
    the caller's object as it was.
    """
    enabled = frozenset(BY_NAME) if enabled is None else enabled
    meta = (obj or old or {}).get("metadata") or {}
    a = Attributes(op, resource, subresource, obj, old, user, store,
                   namespace if namespace is not None else meta.get("namespace", ""),
                   name if name is not None else meta.get("name", ""), authorizer,
                   dry_run, warnings, annotations)
    for plugin in PLUGINS:
        if plugin.mutate is not None and plugin.name in enabled:
            a = replace(a, obj=await plugin.mutate(a))
    for plugin in PLUGINS:
        if plugin.validate is not None and plugin.name in enabled:
            await plugin.validate(a)
    return a.obj


# DefaultTolerationSeconds -----------------------------------------------------------

# Pods that do not say how long they tolerate a failing node get 300 s, so taint-based
# eviction moves them after five minutes (upstream's --default-*-toleration-seconds).
DEFAULT_TOLERATION_SECONDS = 300
_NODE_FAILURE_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


def _default_toleration_seconds(pod: dict) -> None:
    tolerations = pod.setdefault("spec", {}).get("tolerations") or []
    for key in _NODE_FAILURE_TAINTS:
        if any(t.get("key") in (key, None, "") and t.get("effect") in ("NoExecute", None, "")
               for t in tolerations):
            continue
        tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                            "tolerationSeconds": DEFAULT_TOLERATION_SECONDS})
    if tolerations:
        pod["spec"]["tolerations"] = tolerations


# CertificateApproval / CertificateSigning ------------------------------------------

CSRS = ("certificates.k8s.io", "v1", "certificatesigningrequests")


async def _certificate_signer_permission(subresource: str, obj: dict | None,
                                         old: dict | None, user: UserInfo,
                                         authorizer) -> None:
    """Approving needs ``approve``, issuing a certificate ``sign``, on
    signers/<signerName> (or signers/<domain>/*), as upstream's admission plugins."""
    if subresource == "approval":
        verb, action = "approve", "approve"
    elif subresource == "status" and ((obj or {}).get("status") or {}).get(
            "certificate") != ((old or {}).get("status") or {}).get("certificate"):
        verb, action = "sign", "sign"
    else:
        return
    from bootstrap.agents.apiserver.auth.authz import Attributes
    signer = ((old or obj or {}).get("spec") or {}).get("signerName", "")
    names = [signer]
    if "/" in signer:
        names.append(signer.split("/", 1)[0] + "/*")
    for name in names:
        decision = await authorizer.authorize(Attributes(
            user=user, verb=verb, api_group="certificates.k8s.io", api_version="*",
            resource="signers", name=name))
        if decision.allowed:
            return
    raise errors.forbidden_message(
        "certificatesigningrequests", ((old or obj or {}).get("metadata") or {}).get("name", ""),
        f'user not permitted to {action} requests with signerName "{signer}"',
        "certificates.k8s.io")


# NamespaceLifecycle ----------------------------------------------------------------

async def _namespace_lifecycle(op: str, resource: Resource, namespace: str, name: str,
                               store: Store) -> None:
    if resource.gvr == ("", "v1", "namespaces"):
        if op == "DELETE" and name in IMMORTAL_NAMESPACES:
            raise errors.forbidden_message("namespaces", name,
                                           "this namespace may not be deleted")
        return
    if op != "CREATE" or not resource.namespaced or not namespace:
        return
    # Reviews and token requests are computed, not stored: upstream exempts them too.
    if not resource.stored:
        return
    ns = await store.get("namespaces", None, namespace)
    if ns is None:
        raise errors.not_found("namespaces", namespace)
    terminating = ns.get("metadata", {}).get("deletionTimestamp") or \
        (ns.get("status") or {}).get("phase") == "Terminating"
    if terminating:
        err = errors.forbidden_message(
            resource.plural, name,
            f"unable to create new content in namespace {namespace} because it is being "
            f"terminated", resource.group)
        err.details = {**(err.details or {}), "causes": [{
            "reason": "NamespaceTerminating",
            "message": f"namespace {namespace} is being terminated",
            "field": "metadata.namespace"}]}
        raise err


# Priority --------------------------------------------------------------------------

PRIORITY_CLASSES = ("scheduling.k8s.io", "v1", "priorityclasses")
DEFAULT_PREEMPTION_POLICY = "PreemptLowerPriority"


async def _default_priority_class(store: Store) -> dict | None:
    # Two defaults can exist after a race: the lowest value wins, as upstream.
    defaults = [pc for pc in await store.list("priorityclasses") if pc.get("globalDefault")]
    return min(defaults, key=lambda pc: pc.get("value", 0), default=None)


async def _priority_pod(pod: dict, name: str, store: Store) -> dict:
    """spec.priorityClassName -> spec.priority and spec.preemptionPolicy."""
    spec = pod.setdefault("spec", {})
    class_name = spec.get("priorityClassName") or ""
    if class_name:
        pc = await store.get("priorityclasses", None, class_name)
        if pc is None:
            raise errors.forbidden_message("pods", name,
                                           f"no PriorityClass with name {class_name} was found")
    else:
        pc = await _default_priority_class(store)
        if pc is not None:
            spec["priorityClassName"] = pc["metadata"]["name"]
    priority = pc.get("value", 0) if pc is not None else 0
    policy = (pc or {}).get("preemptionPolicy") or DEFAULT_PREEMPTION_POLICY
    if spec.get("priority") is not None and spec["priority"] != priority:
        raise errors.forbidden_message(
            "pods", name, f"the integer value of priority ({spec['priority']}) must not be "
            f"provided in pod spec; priority admission controller computed {priority} from "
            f"the given PriorityClass name")
    if spec.get("preemptionPolicy") and spec["preemptionPolicy"] != policy:
        raise errors.forbidden_message(
            "pods", name, f"the string value of PreemptionPolicy ({spec['preemptionPolicy']}) "
            f"must not be provided in pod spec; priority admission controller computed "
            f"{policy} from the given PriorityClass name")
    spec["priority"] = priority
    spec["preemptionPolicy"] = policy
    return pod


async def _priority_class(op: str, pc: dict | None, name: str, store: Store) -> None:
    if not (pc or {}).get("globalDefault"):
        return
    current = await _default_priority_class(store)
    if current is not None and (op == "CREATE" or current["metadata"]["name"] != name):
        raise errors.forbidden_message(
            "priorityclasses", name, f"PriorityClass {current['metadata']['name']} is already "
            f"marked as default. Only one default can exist", "scheduling.k8s.io")


# ServiceAccount ----------------------------------------------------------------------

async def _service_account(pod: dict, namespace: str, store: Store) -> dict:
    meta = pod.setdefault("metadata", {})
    spec = pod.setdefault("spec", {})
    if MIRROR_POD_ANNOTATION in (meta.get("annotations") or {}):
        return pod  # static pods mirrored by a kubelet never get API credentials
    sa_name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = sa_name
    spec["serviceAccount"] = sa_name
    sa = await store.get("serviceaccounts", namespace, sa_name)
    if sa is None:
        raise errors.forbidden_message(
            "pods", meta.get("name", ""),
            f'error looking up service account {namespace}/{sa_name}: '
            f'serviceaccount "{sa_name}" not found')
    if not spec.get("imagePullSecrets") and sa.get("imagePullSecrets"):
        spec["imagePullSecrets"] = [{"name": s.get("name", "")} for s in sa["imagePullSecrets"]]
    automount = spec.get("automountServiceAccountToken")
    if automount is None:
        automount = sa.get("automountServiceAccountToken", True)
    if not automount:
        return pod
    containers = (spec.get("initContainers") or []) + (spec.get("containers") or [])
    if any(m.get("mountPath") == SA_MOUNT_PATH
           for c in containers for m in c.get("volumeMounts") or []):
        return pod  # the user provided their own credentials at the well-known path
    volumes = spec.setdefault("volumes", [])
    existing = {v.get("name") for v in volumes}
    vol_name = _volume_name(existing)
    volumes.append({
        "name": vol_name,
        "projected": {
            "defaultMode": 0o644,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": PROJECTED_EXPIRATION_SECONDS,
                                         "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIGMAP,
                               "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                    "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    })
    for c in containers:
        c.setdefault("volumeMounts", []).append(
            {"name": vol_name, "readOnly": True, "mountPath": SA_MOUNT_PATH})
    return pod


def _volume_name(existing: set) -> str:
    while True:
        suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))
        name = f"kube-api-access-{suffix}"
        if name not in existing:
            return name


# NodeRestriction ---------------------------------------------------------------------

def _node_forbidden(resource: Resource, name: str, msg: str) -> errors.APIError:
    return errors.forbidden_message(resource.plural, name, msg, resource.group)


async def _node_restriction(op: str, resource: Resource, subresource: str, obj: dict | None,
                            old: dict | None, node: str, namespace: str, name: str,
                            store: Store) -> None:
    gvr = resource.gvr
    if gvr == ("", "v1", "nodes"):
        _check_node(op, resource, subresource, obj, old, node, name)
    elif gvr == ("", "v1", "pods"):
        await _check_pod(op, resource, subresource, obj, old, node, namespace, name, store)
    elif gvr == ("coordination.k8s.io", "v1", "leases") and namespace == "kube-node-lease":
        if name != node:
            raise _node_forbidden(resource, name,
                                  f'node "{node}" is not allowed to modify lease "{name}"')
    elif gvr == ("", "v1", "serviceaccounts") and subresource == "token":
        await _check_node_token_request(resource, obj, node, namespace, name, store)


def _check_node(op, resource, subresource, obj, old, node, name) -> None:
    target = name or ((obj or {}).get("metadata") or {}).get("name", "")
    if target != node:
        raise _node_forbidden(resource, target,
                              f'node "{node}" is not allowed to modify node "{target}"')
    if op == "DELETE":
        raise _node_forbidden(resource, target, f'node "{node}" is not allowed to delete nodes')
    if obj is None:
        return
    new_labels = (obj.get("metadata") or {}).get("labels") or {}
    old_labels = ((old or {}).get("metadata") or {}).get("labels") or {}
    changed = {k for k in set(new_labels) | set(old_labels)
               if new_labels.get(k) != old_labels.get(k)}
    bad = sorted(k for k in changed if _label_forbidden_for_kubelet(k))
    if bad:
        raise _node_forbidden(
            resource, target,
            f'node "{node}" is not allowed to modify labels: {", ".join(bad)}')
    if op == "UPDATE" and old is not None and not subresource:
        if (obj.get("spec") or {}).get("taints") != (old.get("spec") or {}).get("taints"):
            raise _node_forbidden(resource, target,
                                  f'node "{node}" is not allowed to modify taints')


def _label_forbidden_for_kubelet(key: str) -> bool:
    if key in _KUBELET_LABELS:
        return False
    prefix = key.split("/", 1)[0] if "/" in key else ""
    if key.startswith(NODE_RESTRICTION_PREFIX):
        return True
    for ns in _KUBELET_LABEL_NAMESPACES:
        if prefix == ns or prefix.endswith("." + ns):
            return False
    return prefix in ("kubernetes.io", "k8s.io") or prefix.endswith((".kubernetes.io", ".k8s.io"))


async def _check_pod(op, resource, subresource, obj, old, node, namespace, name, store) -> None:
    if subresource in ("status", "eviction") or (op == "DELETE" and not subresource):
        pod = old or await store.get("pods", namespace, name)
        bound = ((pod or {}).get("spec") or {}).get("nodeName")
        if pod is not None and bound != node:
            verb = "delete" if op == "DELETE" else ("evict" if subresource == "eviction"
                                                    else "update")
            raise _node_forbidden(resource, name,
                                  f'node "{node}" can only {verb} pods with spec.nodeName '
                                  f'set to itself')
        return
    if op == "CREATE" and not subresource:
        meta = (obj or {}).get("metadata") or {}
        spec = (obj or {}).get("spec") or {}
        if MIRROR_POD_ANNOTATION not in (meta.get("annotations") or {}):
            raise _node_forbidden(resource, name,
                                  f'pod does not have "{MIRROR_POD_ANNOTATION}" annotation, '
                                  f'node "{node}" can only create mirror pods')
        if spec.get("nodeName") != node:
            raise _node_forbidden(resource, name,
                                  f'node "{node}" can only create pods with spec.nodeName set '
                                  f'to itself')
        await _check_mirror_pod_owner(resource, meta, node, name, store)
        # A mirror pod may reference no other API object: it would hand the node a
        # credential or data it cannot otherwise read (upstream NodeRestriction).
        if spec.get("serviceAccountName") or spec.get("serviceAccount") or \
                podrefs.projects_service_account_token(obj):
            raise _node_forbidden(resource, name, f'node "{node}" can not create pods that '
                                  f'reference a service account')
        if podrefs.secret_names(obj):
            raise _node_forbidden(resource, name, f'node "{node}" can not create pods that '
                                  f'reference secrets')
        if podrefs.configmap_names(obj):
            raise _node_forbidden(resource, name, f'node "{node}" can not create pods that '
                                  f'reference configmaps')
        if podrefs.claims_volumes(obj):
            raise _node_forbidden(resource, name, f'node "{node}" can not create pods that '
                                  f'reference persistentvolumeclaims')
        if spec.get("resourceClaims"):
            raise _node_forbidden(resource, name, f'node "{node}" can not create pods that '
                                  f'reference resourceclaims')
        return
    if op == "UPDATE" and not subresource:
        raise _node_forbidden(resource, name, f'node "{node}" can only update pod status')


async def _check_mirror_pod_owner(resource, meta: dict, node: str, name: str, store) -> None:
    refs = meta.get("ownerReferences") or []
    if len(refs) > 1:
        raise _node_forbidden(resource, name, f'node "{node}" can only create pods with a '
                              f'single owner reference set to itself')
    if not refs:
        return
    ref = refs[0]
    if ref.get("apiVersion") != "v1" or ref.get("kind") != "Node" or ref.get("name") != node:
        raise _node_forbidden(resource, name, f'node "{node}" can only create pods with an '
                              f'owner reference set to itself')
    if not ref.get("controller"):
        raise _node_forbidden(resource, name, f'node "{node}" can only create pods with a '
                              f'controller owner reference set to itself')
    if ref.get("blockOwnerDeletion"):
        raise _node_forbidden(resource, name, f'node "{node}" must not set blockOwnerDeletion '
                              f'on an owner reference')
    node_obj = await store.get("nodes", None, node)
    if node_obj is None:
        raise errors.not_found("nodes", node)
    uid = node_obj["metadata"].get("uid", "")
    if ref.get("uid") != uid:
        raise _node_forbidden(resource, name, f'node {node} UID mismatch: expected {uid} '
                              f'got {ref.get("uid", "")}')


async def _check_node_token_request(resource, obj: dict | None, node: str, namespace: str,
                                    name: str, store) -> None:
    """A kubelet may only request tokens bound to a pod that runs on it; the API server
    then adds the node claim itself, so a kubelet can never mint a Node-bound token."""
    ref = ((obj or {}).get("spec") or {}).get("boundObjectRef") or None
    if not isinstance(ref, dict) or ref.get("kind") != "Pod":
        raise _node_forbidden(resource, name, 'node requested token not bound to a pod')
    if not ref.get("uid"):
        raise _node_forbidden(resource, name,
                              "node requested token with a pod binding without a uid")
    pod = await store.get("pods", namespace, ref.get("name", ""))
    if pod is None:
        raise errors.not_found("pods", ref.get("name", ""))
    if pod["metadata"].get("uid") != ref["uid"]:
        raise _node_forbidden(resource, name, f'the UID in the bound object reference '
                              f'({ref["uid"]}) does not match the UID in record. The object '
                              f'might have been deleted and then recreated')
    if (pod.get("spec") or {}).get("nodeName") != node:
        raise _node_forbidden(resource, name, "node requested token bound to a pod scheduled "
                              "on a different node")
