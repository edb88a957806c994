"""The catalogue of API resources the API server serves and the agents use.

One ``Resource`` per group/version/plural: enough to route REST paths, build
discovery documents, name etcd keys and pick schemas. Shared by the server
(routing, discovery), the model (validation, tables) and the client (URLs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
CREATE_ONLY = ("create",)


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    # Virtual resources (reviews) are computed per request and never stored.
    stored: bool = True
    list_kind: str = field(default="")
    # Custom resources are stored under /registry/<group>/<plural> as upstream's
    # apiextensions-apiserver; built-ins under /registry/<plural>.
    storage_prefix: str = ""
    # A served CustomResourceDefinition version: the CRD and version the custom
    # strategy reads its schema, subresources and columns from (None for built-ins).
    custom: object = field(default=None, compare=False, hash=False, repr=False)
    # The apiVersion objects are stored at when another served version of the same
    # kind is the storage version (autoscaling/v1 HPAs are stored as autoscaling/v2,
    # events.k8s.io/v1 Events as core v1); empty: stored at this version.
    stored_as: str = ""

    def __post_init__(self):
        if not self.list_kind:
            object.__setattr__(self, "list_kind", self.kind + "List")

    @property
    def gv(self) -> str:
        """apiVersion string: "v1" for core, "apps/v1" otherwise."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def gvk(self) -> tuple[str, str, str]:
        return (self.group, self.version, self.kind)

    @property
    def gvr(self) -> tuple[str, str, str]:
        return (self.group, self.version, self.plural)

    @property
    def storage_api_version(self) -> str:
        """The apiVersion this resource's objects have in etcd."""
        return self.stored_as or getattr(self.custom, "storage_api_version", "") or self.gv

    @property
    def etcd_prefix(self) -> str:
        return self.storage_prefix or f"/registry/{self.plural}"

    @property
    def qualified(self) -> str:
        """``plural[.group]`` as upstream error messages name a resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path_prefix(self) -> str:
        """URL prefix of the group-version: /api/v1 or /apis/<g>/<v>."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def url(self, namespace: str | None = None, name: str | None = None,
            subresource: str | None = None) -> str:
        parts = [self.path_prefix()]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{namespace}")
        parts.append(self.plural)
        if name:
            parts.append(name)
            if subresource:
                parts.append(subresource)
        return "/".join(parts)

    def key(self, namespace: str | None, name: str) -> str:
        """etcd key of one object."""
        if self.namespaced:
            return f"{self.etcd_prefix}/{namespace}/{name}"
        return f"{self.etcd_prefix}/{name}"


def _r(group, version, kind, plural, namespaced, short=(), sub=(), cats=(), singular=None,
       verbs=ALL_VERBS, stored=True, stored_as="", prefix="") -> Resource:
    return Resource(group=group, version=version, kind=kind, plural=plural,
                    singular=singular or kind.lower(), namespaced=namespaced,
                    short_names=tuple(short), verbs=tuple(verbs), subresources=tuple(sub),
                    categories=tuple(cats), stored=stored, stored_as=stored_as,
                    storage_prefix=prefix)


_ALL = ("all",)

CATALOGUE: list[Resource] = [
    # core/v1
    _r("", "v1", "Namespace", "namespaces", False, ("ns",), ("status", "finalize"),
       verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    _r("", "v1", "Node", "nodes", False, ("no",), ("status", "proxy")),
    _r("", "v1", "Pod", "pods", True, ("po",),
       ("status", "binding", "log", "eviction", "exec", "attach", "portforward"), _ALL),
    _r("", "v1", "Binding", "bindings", True, verbs=CREATE_ONLY, stored=False),
    _r("", "v1", "Service", "services", True, ("svc",), ("status",), _ALL),
    _r("", "v1", "Endpoints", "endpoints", True, ("ep",), singular="endpoints"),
    _r("", "v1", "ConfigMap", "configmaps", True, ("cm",)),
    _r("", "v1", "Secret", "secrets", True),
    _r("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",), ("token",)),
    _r("", "v1", "Event", "events", True, ("ev",)),
    _r("", "v1", "ResourceQuota", "resourcequotas", True, ("quota",), ("status",)),
    _r("", "v1", "LimitRange", "limitranges", True, ("limits",)),
    _r("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, ("pvc",),
       ("status",)),
    # apps/v1
    _r("apps", "v1", "Deployment", "deployments", True, ("deploy",), ("status", "scale"),
       _ALL),
    _r("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), ("status", "scale"), _ALL),
    _r("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",), ("status",), _ALL),
    _r("apps", "v1", "StatefulSet", "statefulsets", True, ("sts",), ("status", "scale"),
       _ALL),
    _r("apps", "v1", "ControllerRevision", "controllerrevisions", True),
    # batch/v1
    _r("batch", "v1", "Job", "jobs", True, (), ("status",), _ALL),
    _r("batch", "v1", "CronJob", "cronjobs", True, ("cj",), ("status",), _ALL),
    # coordination.k8s.io/v1
    _r("coordination.k8s.io", "v1", "Lease", "leases", True),
    # discovery.k8s.io/v1
    _r("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True),
    # certificates.k8s.io/v1
    _r("certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests",
       False, ("csr",), ("approval", "status")),
    # rbac.authorization.k8s.io/v1
    _r("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    _r("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    _r("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    _r("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    # authorization.k8s.io/v1 (virtual)
    _r("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews",
       False, verbs=CREATE_ONLY, stored=False),
    _r("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", False,
       verbs=CREATE_ONLY, stored=False),
    _r("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews",
       True, verbs=CREATE_ONLY, stored=False),
    _r("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews",
       False, verbs=CREATE_ONLY, stored=False),
    # authentication.k8s.io/v1 (virtual)
    _r("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", False,
       verbs=CREATE_ONLY, stored=False),
    _r("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", False,
       verbs=CREATE_ONLY, stored=False),
    # policy/v1
    _r("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True, ("pdb",),
       ("status",)),
    # core/v1, continued
    _r("", "v1", "ReplicationController", "replicationcontrollers", True, ("rc",),
       ("status", "scale"), _ALL),
    _r("", "v1", "PodTemplate", "podtemplates", True),
    _r("", "v1", "PersistentVolume", "persistentvolumes", False, ("pv",), ("status",)),
    # autoscaling/v2
    _r("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True,
       ("hpa",), ("status",), _ALL),
    # autoscaling/v1: the same objects, converted (bootstrap.api.conversion)
    _r("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True,
       ("hpa",), ("status",), _ALL, stored_as="autoscaling/v2"),
    # events.k8s.io/v1: core Events under another field layout, same etcd keys
    _r("events.k8s.io", "v1", "Event", "events", True, ("ev",), stored_as="v1",
       prefix="/registry/events"),
    # networking.k8s.io/v1
    _r("networking.k8s.io", "v1", "Ingress", "ingresses", True, ("ing",), ("status",)),
    _r("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False),
    _r("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, ("netpol",)),
    # node.k8s.io/v1
    _r("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", False),
    # storage.k8s.io/v1
    _r("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, ("sc",)),
    _r("storage.k8s.io", "v1", "CSIDriver", "csidrivers", False),
    _r("storage.k8s.io", "v1", "CSINode", "csinodes", False),
    _r("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments", False, (),
       ("status",)),
    # admissionregistration.k8s.io/v1
    _r("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration",
       "mutatingwebhookconfigurations", False, cats=("api-extensions",)),
    _r("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration",
       "validatingwebhookconfigurations", False, cats=("api-extensions",)),
    _r("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy",
       "validatingadmissionpolicies", False, (), ("status",), ("api-extensions",)),
    _r("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding",
       "validatingadmissionpolicybindings", False, cats=("api-extensions",)),
    # apiregistration.k8s.io/v1
    _r("apiregistration.k8s.io", "v1", "APIService", "apiservices", False, (), ("status",),
       ("api-extensions",)),
    # flowcontrol.apiserver.k8s.io/v1
    _r("flowcontrol.apiserver.k8s.io", "v1", "FlowSchema", "flowschemas", False, (),
       ("status",)),
    _r("flowcontrol.apiserver.k8s.io", "v1", "PriorityLevelConfiguration",
       "prioritylevelconfigurations", False, (), ("status",)),
    # scheduling.k8s.io/v1
    _r("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False, ("pc",)),
    # apiextensions.k8s.io/v1
    _r("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions",
       False, ("crd", "crds"), ("status",), ("api-extensions",)),
]

_BY_GVR = {r.gvr: r for r in CATALOGUE}
_BY_GVK = {r.gvk: r for r in CATALOGUE}
_BUILTIN = frozenset(_BY_GVR)
# Bumped on every change, so derived documents (OpenAPI) know when to rebuild.
_generation = 0


def register(res: Resource) -> None:
    """Serve ``res`` (a custom resource version) from now on, or replace the entry with
    the same group/version/plural: routing, discovery, OpenAPI and storage all read
    the catalogue live, so static kinds and CRD-defined ones go the same way."""
    global _generation
    if res.gvr in _BUILTIN:
        raise ValueError(f"{res.plural}.{res.group}/{res.version} is a built-in resource")
    old = _BY_GVR.get(res.gvr)
    if old is not None:
        CATALOGUE[CATALOGUE.index(old)] = res
        _BY_GVK.pop(old.gvk, None)
    else:
        CATALOGUE.append(res)
    _BY_GVR[res.gvr] = res
    _BY_GVK[res.gvk] = res
    _generation += 1


def unregister(group: str, version: str, plural: str) -> Resource | None:
    """Stop serving a registered custom resource version; built-ins stay."""
    global _generation
    if (group, version, plural) in _BUILTIN:
        return None
    old = _BY_GVR.pop((group, version, plural), None)
    if old is not None:
        CATALOGUE.remove(old)
        if _BY_GVK.get(old.gvk) is old:
            del _BY_GVK[old.gvk]
        _generation += 1
    return old


def generation() -> int:
    return _generation


def custom_resources() -> list[Resource]:
    return [r for r in CATALOGUE if r.custom is not None]


def by_gvr(group: str, version: str, plural: str) -> Resource | None:
    return _BY_GVR.get((group, version, plural))


def by_gvk(group: str, version: str, kind: str) -> Resource | None:
    return _BY_GVK.get((group, version, kind))


def by_api_version(api_version: str, kind: str) -> Resource | None:
    group, _, version = api_version.rpartition("/")
    return by_gvk(group, version, kind)


def groups() -> dict[str, list[str]]:
    """group -> versions served, in catalogue order ("" is the legacy core group)."""
    out: dict[str, list[str]] = {}
    for r in CATALOGUE:
        versions = out.setdefault(r.group, [])
        if r.version not in versions:
            versions.append(r.version)
    return out


def in_group_version(group: str, version: str) -> list[Resource]:
    return [r for r in CATALOGUE if r.group == group and r.version == version]
