"""Columns for networking, storage, autoscaling, admission and API registration kinds
(upstream's printers for ingresses, persistentvolumes, storageclasses, hpas, ...)."""

from __future__ import annotations

from bootstrap.api.table_columns import Column, _doc, age_column, name_column

NONE = "<none>"
_CORE = "io.k8s.api.core.v1."
_SHORT_MODES = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
                "ReadWriteOncePod": "RWOP"}


def _spec(o: dict) -> dict:
    return o.get("spec") or {}


def _status(o: dict) -> dict:
    return o.get("status") or {}


def _col(name: str, get, definition: str, field: str, **kw) -> Column:
    return Column(name, lambda o, n: get(o), description=_doc(definition, field), **kw)


def _rc_columns() -> list[Column]:
    d = _CORE + "ReplicationController"
    return [name_column(),
            _col("Desired", lambda o: _spec(o).get("replicas", 1), d + "Spec", "replicas",
                 type="integer"),
            _col("Current", lambda o: _status(o).get("replicas", 0), d + "Status", "replicas",
                 type="integer"),
            _col("Ready", lambda o: _status(o).get("readyReplicas", 0), d + "Status",
                 "readyReplicas", type="integer"),
            age_column()]


def _pv_columns() -> list[Column]:
    d = _CORE + "PersistentVolumeSpec"

    def claim(o):
        ref = _spec(o).get("claimRef") or {}
        return f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref else ""
    return [name_column(),
            _col("Capacity", lambda o: (_spec(o).get("capacity") or {}).get("storage", ""), d,
                 "capacity"),
            _col("Access Modes", lambda o: ",".join(_SHORT_MODES.get(m, m) for m in
                                                   _spec(o).get("accessModes") or []),
                 d, "accessModes"),
            _col("Reclaim Policy", lambda o: _spec(o).get("persistentVolumeReclaimPolicy", ""),
                 d, "persistentVolumeReclaimPolicy"),
            _col("Status", lambda o: _status(o).get("phase", ""), _CORE + "PersistentVolumeStatus",
                 "phase"),
            _col("Claim", claim, d, "claimRef"),
            _col("StorageClass", lambda o: _spec(o).get("storageClassName", ""), d,
                 "storageClassName"),
            _col("Reason", lambda o: _status(o).get("reason", ""),
                 _CORE + "PersistentVolumeStatus", "reason"),
            age_column()]


def _hpa_columns() -> list[Column]:
    d = "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler"

    def reference(o):
        ref = _spec(o).get("scaleTargetRef") or {}
        return f"{ref.get('kind', '')}/{ref.get('name', '')}"

    def targets(o):
        # formatHPAMetrics: "cpu: 30%/80%", the first two metrics, "+ N more...".
        metrics = _spec(o).get("metrics") or []
        statuses = _status(o).get("currentMetrics") or []
        if not metrics:
            return NONE
        shown = [_hpa_metric(m, statuses[i] if i < len(statuses) else {})
                 for i, m in enumerate(metrics)]
        more = f" + {len(shown) - 2} more..." if len(shown) > 2 else ""
        return ", ".join(shown[:2]) + more
    return [name_column(),
            _col("Reference", reference, d + "Spec", "scaleTargetRef"),
            _col("Targets", targets, d + "Spec", "metrics"),
            _col("MinPods", lambda o: _spec(o).get("minReplicas", 1), d + "Spec", "minReplicas",
                 type="integer"),
            _col("MaxPods", lambda o: _spec(o).get("maxReplicas", 0), d + "Spec", "maxReplicas",
                 type="integer"),
            _col("Replicas", lambda o: _status(o).get("currentReplicas", 0), d + "Status",
                 "currentReplicas", type="integer"),
            age_column()]


def _hpa_metric(spec: dict, status: dict) -> str:
    kind = spec.get("type")
    key = {"Resource": "resource", "ContainerResource": "containerResource", "Pods": "pods",
           "Object": "object", "External": "external"}.get(kind)
    if key is None:
        return "<unknown type>"
    source, current = spec.get(key) or {}, (status.get(key) or {}).get("current") or {}
    target = source.get("target") or {}
    if kind in ("Resource", "ContainerResource"):
        name = source.get("name", "")
        if target.get("averageValue") is not None:
            return f"{name}: {current.get('averageValue', '<unknown>')}/{target['averageValue']}"
        now = f"{current['averageUtilization']}%" if current.get(
            "averageUtilization") is not None else "<unknown>"
        want = f"{target['averageUtilization']}%" if target.get(
            "averageUtilization") is not None else "<auto>"
        return f"{name}: {now}/{want}"
    value = target.get("averageValue") if target.get("averageValue") is not None else \
        target.get("value")
    got = current.get("averageValue") if current.get("averageValue") is not None else \
        current.get("value")
    return f"{got if got is not None else '<unknown>'}/{value}"


def _ingress_columns() -> list[Column]:
    d = "io.k8s.api.networking.v1.Ingress"

    def hosts(o):
        found = [r.get("host") for r in _spec(o).get("rules") or [] if r.get("host")]
        return ",".join(found) or "*"

    def address(o):
        lb = (_status(o).get("loadBalancer") or {}).get("ingress") or []
        return ",".join(i.get("ip") or i.get("hostname", "") for i in lb)

    def ports(o):
        return "80, 443" if _spec(o).get("tls") else "80"
    return [name_column(),
            _col("Class", lambda o: _spec(o).get("ingressClassName") or NONE, d + "Spec",
                 "ingressClassName"),
            _col("Hosts", hosts, d + "Spec", "rules"),
            _col("Address", address, d + "Status", "loadBalancer"),
            _col("Ports", ports, d + "Spec", "tls"),
            age_column()]


def _ingressclass_columns() -> list[Column]:
    d = "io.k8s.api.networking.v1.IngressClassSpec"

    def params(o):
        p = _spec(o).get("parameters")
        return f"{p.get('kind', '')}/{p.get('name', '')}" if p else NONE
    return [name_column(),
            _col("Controller", lambda o: _spec(o).get("controller", ""), d, "controller"),
            _col("Parameters", params, d, "parameters"),
            age_column()]


def _networkpolicy_columns() -> list[Column]:
    d = "io.k8s.api.networking.v1.NetworkPolicySpec"

    def selector(o):
        sel = (_spec(o).get("podSelector") or {}).get("matchLabels") or {}
        return ",".join(f"{k}={v}" for k, v in sorted(sel.items())) or NONE
    return [name_column(), _col("Pod-Selector", selector, d, "podSelector"), age_column()]


def _runtimeclass_columns() -> list[Column]:
    return [name_column(),
            _col("Handler", lambda o: o.get("handler", ""), "io.k8s.api.node.v1.RuntimeClass",
                 "handler"),
            age_column()]


def _storageclass_columns() -> list[Column]:
    d = "io.k8s.api.storage.v1.StorageClass"
    return [name_column(),
            _col("Provisioner", lambda o: o.get("provisioner", ""), d, "provisioner"),
            _col("ReclaimPolicy", lambda o: o.get("reclaimPolicy", "Delete"), d,
                 "reclaimPolicy"),
            _col("VolumeBindingMode", lambda o: o.get("volumeBindingMode", "Immediate"), d,
                 "volumeBindingMode"),
            _col("AllowVolumeExpansion", lambda o: bool(o.get("allowVolumeExpansion")), d,
                 "allowVolumeExpansion", type="boolean"),
            age_column()]


def _webhook_columns() -> list[Column]:
    d = "io.k8s.api.admissionregistration.v1.ValidatingWebhookConfiguration"
    return [name_column(),
            _col("Webhooks", lambda o: len(o.get("webhooks") or []), d, "webhooks",
                 type="integer"),
            age_column()]


def _apiservice_columns() -> list[Column]:
    d = "io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIService"

    def service(o):
        svc = _spec(o).get("service")
        return f"{svc.get('namespace', '')}/{svc.get('name', '')}" if svc else "Local"

    def available(o):
        for c in _status(o).get("conditions") or []:
            if c.get("type") == "Available":
                return c.get("status", "Unknown") if c.get("status") == "True" else \
                    f"{c.get('status', 'Unknown')} ({c.get('reason', '')})"
        return "Unknown"
    return [name_column(),
            _col("Service", service, d + "Spec", "service"),
            _col("Available", available, d + "Status", "conditions"),
            age_column()]


CLUSTER_COLUMNS = {
    "replicationcontrollers": _rc_columns,
    "persistentvolumes": _pv_columns,
    "horizontalpodautoscalers": _hpa_columns,
    "ingresses": _ingress_columns,
    "ingressclasses": _ingressclass_columns,
    "networkpolicies": _networkpolicy_columns,
    "runtimeclasses": _runtimeclass_columns,
    "storageclasses": _storageclass_columns,
    "mutatingwebhookconfigurations": _webhook_columns,
    "validatingwebhookconfigurations": _webhook_columns,
    "apiservices": _apiservice_columns,
}
