"""Defaulting of the fields users and controllers rely on (upstream's
pkg/apis/*/v1/defaults.go, the subset our agents and kubectl read)."""

from __future__ import annotations

import copy
from collections.abc import Callable

GVK = tuple[str, str, str]


def _image_pull_policy(image: str) -> str:
    # Tag is after the last ':' that follows the last '/'; digests pin the image.
    if "@" in image:
        return "IfNotPresent"
    name = image.rsplit("/", 1)[-1]
    tag = name.rsplit(":", 1)[1] if ":" in name else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _container(c: dict) -> None:
    if c.get("image") and not c.get("imagePullPolicy"):
        c["imagePullPolicy"] = _image_pull_policy(c["image"])
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for p in c.get("ports") or []:
        p.setdefault("protocol", "TCP")
    for env in c.get("env") or []:
        ref = (env.get("valueFrom") or {}).get("fieldRef")
        if ref is not None:
            ref.setdefault("apiVersion", "v1")
    for probe_key in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = c.get(probe_key)
        if probe:
            probe.setdefault("timeoutSeconds", 1)
            probe.setdefault("periodSeconds", 10)
            probe.setdefault("successThreshold", 1)
            probe.setdefault("failureThreshold", 3)
            http = probe.get("httpGet")
            if http is not None:
                http.setdefault("path", "/")
                http.setdefault("scheme", "HTTP")
    # Limits without requests: requests default to the limits.
    res = c["resources"]
    if res.get("limits"):
        req = res.setdefault("requests", {})
        for k, v in res["limits"].items():
            req.setdefault(k, v)


def pod_spec(spec: dict) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    if spec.get("serviceAccountName") and not spec.get("serviceAccount"):
        spec["serviceAccount"] = spec["serviceAccountName"]
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            _container(c)
    for v in spec.get("volumes") or []:
        if not isinstance(v, dict):
            continue
        # SetDefaults_Volume: a volume naming no source (absent or null, both nil in
        # Go) is an emptyDir; the nulls are dropped as Go's encoder omits nil sources.
        if all(v[k] is None for k in v if k != "name"):
            for k in [k for k in v if k != "name"]:
                del v[k]
            v["emptyDir"] = {}
        for kind in ("secret", "configMap", "projected", "downwardAPI"):
            if isinstance(v.get(kind), dict):
                v[kind].setdefault("defaultMode", 0o644)
        if isinstance(v.get("hostPath"), dict):
            v["hostPath"].setdefault("type", "")
    for t in spec.get("tolerations") or []:
        if t.get("key") and "operator" not in t:
            t["operator"] = "Equal"


def _pod(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    pod_spec(spec)
    status = obj.setdefault("status", {})
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", _qos_class(spec))


def _qos_class(spec: dict) -> str:
    containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        lim, req = res.get("limits") or {}, res.get("requests") or {}
        if lim or req:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in lim or req.get(r, lim.get(r)) != lim.get(r):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _template(spec: dict) -> None:
    template = spec.get("template")
    if isinstance(template, dict):
        template.setdefault("metadata", {})
        pod_spec(template.setdefault("spec", {}))


def _deployment(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        ru = strategy.setdefault("rollingUpdate", {})
        ru.setdefault("maxUnavailable", "25%")
        ru.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    _template(spec)


def _replicaset(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    _template(spec)


def _daemonset(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    us = spec.setdefault("updateStrategy", {})
    us.setdefault("type", "RollingUpdate")
    if us["type"] == "RollingUpdate":
        ru = us.setdefault("rollingUpdate", {})
        ru.setdefault("maxUnavailable", 1)
        ru.setdefault("maxSurge", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    _template(spec)


def _statefulset(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    us = spec.setdefault("updateStrategy", {})
    us.setdefault("type", "RollingUpdate")
    if us["type"] == "RollingUpdate":
        us.setdefault("rollingUpdate", {}).setdefault("partition", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("persistentVolumeClaimRetentionPolicy",
                    {"whenDeleted": "Retain", "whenScaled": "Retain"})
    _template(spec)


def _job(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    _template(spec)
    generate_job_selector(obj)


def generate_job_selector(obj: dict) -> None:
    """Jobs get a selector on their own uid unless manualSelector (upstream's
    generateSelector, run at create validation). Needs metadata.uid: a no-op before
    the uid is set, so the server calls it once the uid exists."""
    spec = obj.setdefault("spec", {})
    meta = obj.get("metadata") or {}
    uid, name = meta.get("uid"), meta.get("name")
    if spec.get("manualSelector") or spec.get("selector") or not uid:
        return
    spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    template = spec.get("template")
    if isinstance(template, dict):
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels.setdefault("batch.kubernetes.io/controller-uid", uid)
        labels.setdefault("controller-uid", uid)
        if name:
            labels.setdefault("batch.kubernetes.io/job-name", name)
            labels.setdefault("job-name", name)


def _cronjob(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    jt = spec.get("jobTemplate")
    # Upstream defaults only the pod template inside a job template, not the JobSpec.
    if isinstance(jt, dict) and isinstance(jt.get("spec"), dict):
        _template(jt["spec"])


def _service(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    if spec["type"] != "ExternalName":
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        # Single-stack cluster: the family follows the clusterIP when one is given.
        cip = spec.get("clusterIP")
        if cip and cip != "None" and not spec.get("clusterIPs"):
            spec["clusterIPs"] = [cip]
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        if not spec.get("ipFamilies"):
            spec["ipFamilies"] = ["IPv6" if cip and ":" in cip else "IPv4"]
    if spec["type"] in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    for p in spec.get("ports") or []:
        p.setdefault("protocol", "TCP")
        if "targetPort" not in p or p["targetPort"] in (0, ""):
            p["targetPort"] = p.get("port")
    obj.setdefault("status", {}).setdefault("loadBalancer", {})


def _namespace(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("finalizers", ["kubernetes"])
    obj.setdefault("status", {}).setdefault("phase", "Active")
    labels = obj.setdefault("metadata", {}).setdefault("labels", {})
    # Upstream stamps every namespace with its own name (NamespaceDefaultLabelName).
    name = obj["metadata"].get("name")
    if name:
        labels["kubernetes.io/metadata.name"] = name


def _secret(obj: dict) -> None:
    obj.setdefault("type", "Opaque")


def _serviceaccount(obj: dict) -> None:
    pass


def _endpointslice(obj: dict) -> None:
    for p in obj.get("ports") or []:
        p.setdefault("protocol", "TCP")


def _endpoints(obj: dict) -> None:
    for subset in obj.get("subsets") or []:
        for p in subset.get("ports") or []:
            p.setdefault("protocol", "TCP")


def _node(obj: dict) -> None:
    pass


def _csr(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    if not spec.get("usages"):
        spec["usages"] = ["digital signature", "key encipherment"]


def _pdb(obj: dict) -> None:
    pass


def _priorityclass(obj: dict) -> None:
    obj.setdefault("preemptionPolicy", "PreemptLowerPriority")


def _rbac_binding(obj: dict) -> None:
    for s in obj.get("subjects") or []:
        if s.get("kind") in ("User", "Group"):
            s.setdefault("apiGroup", "rbac.authorization.k8s.io")


def _replicationcontroller(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    template = spec.get("template") or {}
    # SetDefaults_ReplicationController: selector and labels from the template's labels.
    labels = (template.get("metadata") or {}).get("labels") or {}
    if labels and not spec.get("selector"):
        spec["selector"] = dict(labels)
    if labels and not (obj.setdefault("metadata", {}).get("labels")):
        obj["metadata"]["labels"] = dict(labels)
    if template:
        _template(spec)


def _persistentvolume(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
    spec.setdefault("volumeMode", "Filesystem")


def _storageclass(obj: dict) -> None:
    obj.setdefault("reclaimPolicy", "Delete")
    obj.setdefault("volumeBindingMode", "Immediate")


# autoscaling.DefaultCPUUtilization: what an HPA without metrics scales on.
DEFAULT_HPA_METRICS = ({"type": "Resource", "resource": {"name": "cpu", "target": {
    "type": "Utilization", "averageUtilization": 80}}},)


def _hpa(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("minReplicas", 1)
    # v2's SetDefaults; v1 keeps an absent target (it gets 80% when read as v2).
    if obj.get("apiVersion") == "autoscaling/v2" and not spec.get("metrics"):
        spec["metrics"] = copy.deepcopy(list(DEFAULT_HPA_METRICS))


def _limitrange(obj: dict) -> None:
    """SetDefaults_LimitRangeItem: a Container item's default limit falls back to its
    max, its default request to the default limit, then to its min."""
    for item in (obj.get("spec") or {}).get("limits") or []:
        if not isinstance(item, dict) or item.get("type") != "Container":
            continue
        default = item.setdefault("default", {})
        request = item.setdefault("defaultRequest", {})
        if not isinstance(default, dict) or not isinstance(request, dict):
            continue
        for source, target in ((item.get("max"), default), (default, request),
                               (item.get("min"), request)):
            for k, v in (source if isinstance(source, dict) else {}).items():
                target.setdefault(k, v)
        if not default:
            del item["default"]
        if not request:
            del item["defaultRequest"]


_BY_KIND: dict[str, Callable[[dict], None]] = {
    "LimitRange": _limitrange,
    "ReplicationController": _replicationcontroller,
    # SetDefaults_PodTemplate: the pod defaults on its top-level .template.
    "PodTemplate": _template,
    "PersistentVolume": _persistentvolume,
    "StorageClass": _storageclass,
    "HorizontalPodAutoscaler": _hpa,
    "Pod": _pod,
    "Deployment": _deployment,
    "ReplicaSet": _replicaset,
    "DaemonSet": _daemonset,
    "StatefulSet": _statefulset,
    "Job": _job,
    "CronJob": _cronjob,
    "Service": _service,
    "Namespace": _namespace,
    "Secret": _secret,
    "ServiceAccount": _serviceaccount,
    "EndpointSlice": _endpointslice,
    "Endpoints": _endpoints,
    "Node": _node,
    "CertificateSigningRequest": _csr,
    "PodDisruptionBudget": _pdb,
    "PriorityClass": _priorityclass,
    "RoleBinding": _rbac_binding,
    "ClusterRoleBinding": _rbac_binding,
}


def apply_defaults(obj: dict, gvk: GVK) -> dict:
    """Fill defaults in place (and return obj). Idempotent: re-defaulting changes nothing."""
    fn = _BY_KIND.get(gvk[2])
    if fn is not None:
        fn(obj)
    return obj
