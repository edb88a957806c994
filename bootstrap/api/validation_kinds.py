"""Per-kind semantic checks on create and update (the parts of upstream's
pkg/apis/*/validation that users hit in practice)."""

from __future__ import annotations

import ipaddress

from bootstrap.api import validation_quota
from bootstrap.api.errors import (
    FieldError,
    duplicate,
    forbidden_field,
    invalid_value,
    not_supported,
    required,
)
from bootstrap.api.validation import (
    GVK,
    VIRTUAL_KINDS,
    config_map_key,
    dns1035_label,
    dns1123_label,
    validate_labels,
    validate_meta,
)

_IMMUTABLE = "field is immutable"


def _port(path: str, value, out: list[FieldError], allow_zero: bool = False) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        return  # the schema already reported the type
    lo = 0 if allow_zero else 1
    if not lo <= value <= 65535:
        out.append(invalid_value(path, value, f"must be between {lo} and 65535, inclusive"))


def _resources(res: dict, path: str, out: list[FieldError]) -> None:
    """ValidateResourceRequirements: quantities are not negative and requests do not
    exceed limits. (Their syntax was checked when the body was decoded.)"""
    from bootstrap.api import quantity

    parsed: dict[str, dict] = {}
    for kind in ("limits", "requests"):
        for name, value in (res.get(kind) or {}).items():
            try:
                q = quantity.parse(value)
            except quantity.QuantityError:
                continue
            parsed.setdefault(kind, {})[name] = (q, value)
            if q < 0:
                out.append(invalid_value(f"{path}.{kind}[{name}]", str(value),
                                         "must be greater than or equal to 0"))
    for name, (q, value) in (parsed.get("requests") or {}).items():
        limit = (parsed.get("limits") or {}).get(name)
        if limit is not None and q > limit[0] >= 0:
            out.append(invalid_value(f"{path}.requests[{name}]", str(value),
                                     f"must be less than or equal to {name} limit of "
                                     f"{limit[1]}"))


def _containers(spec: dict, key: str, base: str, out: list[FieldError], need_one: bool) -> set[str]:
    names: set[str] = set()
    items = spec.get(key) or []
    if need_one and not items:
        out.append(required(f"{base}.{key}"))
    for i, c in enumerate(items):
        p = f"{base}.{key}[{i}]"
        name = c.get("name")
        if not name:
            out.append(required(f"{p}.name"))
        else:
            out.extend(invalid_value(f"{p}.name", name, m) for m in dns1123_label(name))
            if name in names:
                out.append(duplicate(f"{p}.name", name))
            names.add(name)
        if not c.get("image"):
            out.append(required(f"{p}.image"))
        pull = c.get("imagePullPolicy")
        if pull and pull not in ("Always", "IfNotPresent", "Never"):
            out.append(not_supported(f"{p}.imagePullPolicy", pull, ["Always", "IfNotPresent", "Never"]))
        _resources(c.get("resources") or {}, f"{p}.resources", out)
        port_names: set[str] = set()
        for j, port in enumerate(c.get("ports") or []):
            pp = f"{p}.ports[{j}]"
            if "containerPort" not in port:
                out.append(required(f"{pp}.containerPort"))
            else:
                _port(f"{pp}.containerPort", port["containerPort"], out)
            if "hostPort" in port:
                _port(f"{pp}.hostPort", port["hostPort"], out)
            proto = port.get("protocol")
            if proto and proto not in ("TCP", "UDP", "SCTP"):
                out.append(not_supported(f"{pp}.protocol", proto, ["SCTP", "TCP", "UDP"]))
            pname = port.get("name")
            if pname:
                if pname in port_names:
                    out.append(duplicate(f"{pp}.name", pname))
                port_names.add(pname)
        for j, env in enumerate(c.get("env") or []):
            if not env.get("name"):
                out.append(required(f"{p}.env[{j}].name"))
    return names


def pod_spec(spec: dict | None, base: str) -> list[FieldError]:
    out: list[FieldError] = []
    if spec is None:
        return [required(base)]
    names = _containers(spec, "containers", base, out, need_one=True)
    init_names = _containers(spec, "initContainers", base, out, need_one=False)
    for n in sorted(names & init_names):
        out.append(duplicate(f"{base}.initContainers", n))
    rp = spec.get("restartPolicy")
    if rp and rp not in ("Always", "OnFailure", "Never"):
        out.append(not_supported(f"{base}.restartPolicy", rp, ["Always", "OnFailure", "Never"]))
    dp = spec.get("dnsPolicy")
    allowed_dns = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"]
    if dp and dp not in allowed_dns:
        out.append(not_supported(f"{base}.dnsPolicy", dp, allowed_dns))
    vol_names: set[str] = set()
    for i, v in enumerate(spec.get("volumes") or []):
        n = v.get("name")
        if not n:
            out.append(required(f"{base}.volumes[{i}].name"))
        elif n in vol_names:
            out.append(duplicate(f"{base}.volumes[{i}].name", n))
        else:
            out.extend(invalid_value(f"{base}.volumes[{i}].name", n, m) for m in dns1123_label(n))
        vol_names.add(n)
    for key in ("containers", "initContainers"):
        for i, c in enumerate(spec.get(key) or []):
            for j, m in enumerate(c.get("volumeMounts") or []):
                if m.get("name") and m["name"] not in vol_names:
                    out.append(FieldError("FieldValueNotFound", f"{base}.{key}[{i}].volumeMounts[{j}].name",
                                          f'Not found: "{m["name"]}"'))
    grace = spec.get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and grace < 0:
        out.append(invalid_value(f"{base}.terminationGracePeriodSeconds", grace,
                                 "must be greater than or equal to 0"))
    return out


def _pod(obj: dict) -> list[FieldError]:
    return pod_spec(obj.get("spec"), "spec")


def _selector_matches_template(obj: dict, out: list[FieldError], *, required_selector: bool) -> None:
    from bootstrap.api.selectors import label_selector_from_dict

    spec = obj.get("spec") or {}
    sel = spec.get("selector")
    if sel is None:
        if required_selector:
            out.append(required("spec.selector"))
        return
    if not sel.get("matchLabels") and not sel.get("matchExpressions"):
        out.append(invalid_value("spec.selector", sel, "empty selector is invalid for deployment"))
        return
    out.extend(validate_labels(sel.get("matchLabels"), "spec.selector.matchLabels"))
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    try:
        ok = label_selector_from_dict(sel).matches(labels)
    except Exception as e:  # noqa: BLE001 - a malformed expression is a field error
        out.append(invalid_value("spec.selector", sel, str(e)))
        return
    if not ok:
        out.append(invalid_value("spec.template.metadata.labels", labels,
                                 "`selector` does not match template `labels`"))


def _workload(obj: dict, *, template_required: bool = True) -> list[FieldError]:
    out: list[FieldError] = []
    spec = obj.get("spec")
    if spec is None:
        return [required("spec")]
    _selector_matches_template(obj, out, required_selector=True)
    for key in ("replicas", "minReadySeconds", "revisionHistoryLimit"):
        v = spec.get(key)
        if isinstance(v, int) and v < 0:
            out.append(invalid_value(f"spec.{key}", v, "must be greater than or equal to 0"))
    template = spec.get("template")
    if template is None and template_required:
        out.append(required("spec.template"))
    elif template is not None:
        out.extend(validate_labels((template.get("metadata") or {}).get("labels"),
                                   "spec.template.metadata.labels"))
        out.extend(pod_spec(template.get("spec"), "spec.template.spec"))
        rp = (template.get("spec") or {}).get("restartPolicy")
        if rp and rp != "Always" and obj.get("kind") != "Job":
            out.append(not_supported("spec.template.spec.restartPolicy", rp, ["Always"]))
    return out


def _deployment(obj: dict) -> list[FieldError]:
    out = _workload(obj)
    strategy = (obj.get("spec") or {}).get("strategy") or {}
    st = strategy.get("type")
    if st and st not in ("Recreate", "RollingUpdate"):
        out.append(not_supported("spec.strategy.type", st, ["Recreate", "RollingUpdate"]))
    if st == "Recreate" and strategy.get("rollingUpdate"):
        out.append(forbidden_field("spec.strategy.rollingUpdate",
                                   "may not be specified when strategy `type` is 'Recreate'"))
    return out


def _job(obj: dict) -> list[FieldError]:
    out: list[FieldError] = []
    spec = obj.get("spec")
    if spec is None:
        return [required("spec")]
    template = spec.get("template")
    if template is None:
        return [required("spec.template")]
    out.extend(pod_spec(template.get("spec"), "spec.template.spec"))
    rp = (template.get("spec") or {}).get("restartPolicy")
    if rp not in (None, "OnFailure", "Never"):
        out.append(not_supported("spec.template.spec.restartPolicy", rp, ["OnFailure", "Never"]))
    for key in ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds"):
        v = spec.get(key)
        if isinstance(v, int) and v < 0:
            out.append(invalid_value(f"spec.{key}", v, "must be greater than or equal to 0"))
    return out


_SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]


def _service(obj: dict) -> list[FieldError]:
    out: list[FieldError] = []
    spec = obj.get("spec") or {}
    stype = spec.get("type", "ClusterIP")
    if stype not in _SERVICE_TYPES:
        out.append(not_supported("spec.type", stype, _SERVICE_TYPES))
    ports = spec.get("ports") or []
    headless = spec.get("clusterIP") == "None"
    if not ports and stype != "ExternalName" and not headless:
        out.append(required("spec.ports"))
    seen_names: set[str] = set()
    seen_keys: set[tuple] = set()
    for i, p in enumerate(ports):
        pp = f"spec.ports[{i}]"
        name = p.get("name")
        if len(ports) > 1 and not name:
            out.append(required(f"{pp}.name"))
        if name:
            out.extend(invalid_value(f"{pp}.name", name, m) for m in dns1123_label(name))
            if name in seen_names:
                out.append(duplicate(f"{pp}.name", name))
            seen_names.add(name)
        if "port" in p:
            _port(f"{pp}.port", p["port"], out)
        key = (p.get("port"), p.get("protocol", "TCP"))
        if key in seen_keys:
            out.append(duplicate(pp, {"port": key[0], "protocol": key[1]}))
        seen_keys.add(key)
        tp = p.get("targetPort")
        if isinstance(tp, int):
            _port(f"{pp}.targetPort", tp, out)
        elif isinstance(tp, str) and tp:
            msgs = dns1035_label(tp) if not tp.isdigit() else []
            out.extend(invalid_value(f"{pp}.targetPort", tp, m) for m in msgs)
        if "nodePort" in p:
            if stype not in ("NodePort", "LoadBalancer") and p["nodePort"]:
                out.append(forbidden_field(f"{pp}.nodePort",
                                           "may not be used when `type` is 'ClusterIP'"))
            _port(f"{pp}.nodePort", p["nodePort"], out, allow_zero=True)
        proto = p.get("protocol")
        if proto and proto not in ("TCP", "UDP", "SCTP"):
            out.append(not_supported(f"{pp}.protocol", proto, ["SCTP", "TCP", "UDP"]))
    cip = spec.get("clusterIP")
    if cip and cip != "None":
        try:
            ipaddress.ip_address(cip)
        except ValueError:
            out.append(invalid_value("spec.clusterIP", cip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
    out.extend(validate_labels(spec.get("selector"), "spec.selector"))
    return out


def _data_keys(obj: dict, fields: tuple[str, ...]) -> list[FieldError]:
    out: list[FieldError] = []
    seen: set[str] = set()
    for f in fields:
        for k in obj.get(f) or {}:
            out.extend(invalid_value(f"{f}[{k}]", k, m) for m in config_map_key(k))
            if k in seen:
                out.append(invalid_value(f"{f}[{k}]", k, "duplicate of key present in " + fields[0]))
            seen.add(k)
    return out


def _configmap(obj: dict) -> list[FieldError]:
    return _data_keys(obj, ("data", "binaryData"))


def _secret(obj: dict) -> list[FieldError]:
    return _data_keys(obj, ("data", "stringData"))


def _namespace(obj: dict) -> list[FieldError]:
    return []


def _rbac_role(obj: dict) -> list[FieldError]:
    out: list[FieldError] = []
    for i, rule in enumerate(obj.get("rules") or []):
        if not rule.get("verbs"):
            out.append(required(f"rules[{i}].verbs", "verbs must contain at least one value"))
        if rule.get("nonResourceURLs") and obj.get("kind") == "Role":
            out.append(invalid_value(f"rules[{i}].nonResourceURLs", rule["nonResourceURLs"],
                                     "namespaced rules cannot apply to non-resource URLs"))
        if not rule.get("nonResourceURLs") and not rule.get("resources"):
            out.append(required(f"rules[{i}].resources", "resource rules must supply at least one resource"))
    return out


def _rbac_binding(obj: dict) -> list[FieldError]:
    out: list[FieldError] = []
    ref = obj.get("roleRef") or {}
    kinds = ["Role", "ClusterRole"] if obj.get("kind") == "RoleBinding" else ["ClusterRole"]
    if ref.get("kind") not in kinds:
        out.append(not_supported("roleRef.kind", ref.get("kind", ""), kinds))
    if ref.get("apiGroup") != "rbac.authorization.k8s.io":
        out.append(not_supported("roleRef.apiGroup", ref.get("apiGroup", ""), ["rbac.authorization.k8s.io"]))
    if not ref.get("name"):
        out.append(required("roleRef.name"))
    for i, s in enumerate(obj.get("subjects") or []):
        k = s.get("kind")
        if k not in ("User", "Group", "ServiceAccount"):
            out.append(not_supported(f"subjects[{i}].kind", k or "", ["Group", "ServiceAccount", "User"]))
        if not s.get("name"):
            out.append(required(f"subjects[{i}].name"))
        if k == "ServiceAccount" and not s.get("namespace") and obj.get("kind") == "ClusterRoleBinding":
            out.append(required(f"subjects[{i}].namespace"))
    return out


def _lease(obj: dict) -> list[FieldError]:
    spec = obj.get("spec") or {}
    v = spec.get("leaseDurationSeconds")
    if isinstance(v, int) and v <= 0:
        return [invalid_value("spec.leaseDurationSeconds", v, "must be greater than 0")]
    return []


# The system PriorityClasses every cluster has (upstream scheduling.SystemPriorityClasses):
# only these may use the "system-" prefix and values above the user maximum.
SYSTEM_PRIORITY_CLASSES = (
    {"name": "system-node-critical", "value": 2000001000, "globalDefault": False,
     "description": "Used for system critical pods that must not be moved from their current node."},
    {"name": "system-cluster-critical", "value": 2000000000, "globalDefault": False,
     "description": "Used for system critical pods that must run in the cluster, but can be "
                    "moved to another node if necessary."},
)
HIGHEST_USER_DEFINABLE_PRIORITY = 1000000000


def _priorityclass(obj: dict) -> list[FieldError]:
    name = (obj.get("metadata") or {}).get("name", "")
    value = obj.get("value", 0)
    out: list[FieldError] = []
    if name.startswith("system-"):
        known = next((s for s in SYSTEM_PRIORITY_CLASSES if s["name"] == name), None)
        if known is None:
            why = f"{name} is not a known system priority class"
        elif known["value"] != value:
            why = f"value of {name} PriorityClass must be {known['value']}"
        elif known["globalDefault"] != bool(obj.get("globalDefault")):
            why = f"globalDefault of {name} PriorityClass must be {str(known['globalDefault']).lower()}"
        else:
            why = ""
        if why:
            out.append(forbidden_field("metadata.name", "priority class names with 'system-' "
                                       f"prefix are reserved for system use only. error: {why}"))
    elif isinstance(value, int) and value > HIGHEST_USER_DEFINABLE_PRIORITY:
        out.append(forbidden_field("value", "maximum allowed value of a user defined priority "
                                   f"is {HIGHEST_USER_DEFINABLE_PRIORITY}"))
    policy = obj.get("preemptionPolicy")
    if policy is not None and policy not in ("Never", "PreemptLowerPriority"):
        out.append(not_supported("preemptionPolicy", policy, ["Never", "PreemptLowerPriority"]))
    return out


CREATE_CHECKS = {
    "Pod": _pod,
    "Deployment": _deployment,
    "ReplicaSet": _workload,
    "DaemonSet": _workload,
    "StatefulSet": _workload,
    "Job": _job,
    "Service": _service,
    "ConfigMap": _configmap,
    "Secret": _secret,
    "Namespace": _namespace,
    "Role": _rbac_role,
    "ClusterRole": _rbac_role,
    "RoleBinding": _rbac_binding,
    "ClusterRoleBinding": _rbac_binding,
    "Lease": _lease,
    "PriorityClass": _priorityclass,
    "ResourceQuota": validation_quota.resource_quota,
    "LimitRange": validation_quota.limit_range,
}


# ------------------------------------------------------------- update checks

def _immutable(new, old, path: str, out: list[FieldError]) -> None:
    if new != old:
        out.append(invalid_value(path, new, _IMMUTABLE))


def _get(obj: dict, *path):
    cur = obj
    for p in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(p)
    return cur


def _selector_immutable(new: dict, old: dict) -> list[FieldError]:
    out: list[FieldError] = []
    _immutable(_get(new, "spec", "selector"), _get(old, "spec", "selector"), "spec.selector", out)
    return out


def _service_update(new: dict, old: dict) -> list[FieldError]:
    out: list[FieldError] = []
    old_ip = _get(old, "spec", "clusterIP")
    new_ip = _get(new, "spec", "clusterIP")
    # Switching to ExternalName releases the IP; otherwise a set clusterIP sticks. An
    # omitted clusterIP is filled from the old object by the server (upstream
    # patchAllocatedValues), so only an explicit different value is an error.
    if old_ip and new_ip and _get(new, "spec", "type") != "ExternalName" and new_ip != old_ip:
        out.append(invalid_value("spec.clusterIPs[0]", new_ip or "", "may not change once set"))
    return out


def _job_update(new: dict, old: dict) -> list[FieldError]:
    out = _selector_immutable(new, old)
    _immutable(_get(new, "spec", "template"), _get(old, "spec", "template"), "spec.template", out)
    _immutable(_get(new, "spec", "completions"), _get(old, "spec", "completions"), "spec.completions", out)
    return out


def _immutable_data(new: dict, old: dict) -> list[FieldError]:
    out: list[FieldError] = []
    if old.get("immutable"):
        if not new.get("immutable"):
            out.append(forbidden_field("immutable", "field is immutable when `immutable` is set"))
        for f in ("data", "binaryData", "stringData"):
            if new.get(f) != old.get(f) and not (f == "stringData"):
                out.append(forbidden_field(f, "field is immutable when `immutable` is set"))
    if old.get("kind") == "Secret" and old.get("type") and new.get("type") != old.get("type"):
        out.append(invalid_value("type", new.get("type"), _IMMUTABLE))
    return out


_POD_MUTABLE = ("containers[*].image, initContainers[*].image, activeDeadlineSeconds, "
                "tolerations (only additions to existing tolerations), terminationGracePeriodSeconds "
                "(allow it to be set to 1 if it was previously negative)")


def _strip_mutable_pod_spec(spec: dict) -> dict:
    spec = dict(spec or {})
    for key in ("containers", "initContainers"):
        spec[key] = [{k: v for k, v in c.items() if k != "image"} for c in spec.get(key) or []]
    for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds",
                "schedulingGates"):
        spec.pop(key, None)
    # nodeName is set once through the binding subresource.
    spec.pop("nodeName", None)
    return spec


def _pod_update(new: dict, old: dict) -> list[FieldError]:
    out: list[FieldError] = []
    if _strip_mutable_pod_spec(new.get("spec")) != _strip_mutable_pod_spec(old.get("spec")):
        out.append(forbidden_field("spec", "pod updates may not change fields other than "
                                   f"`spec.{_POD_MUTABLE.replace(', ', '`,`spec.')}`"))
    old_node = _get(old, "spec", "nodeName")
    if old_node and _get(new, "spec", "nodeName") != old_node:
        out.append(invalid_value("spec.nodeName", _get(new, "spec", "nodeName"), _IMMUTABLE))
    return out


def _statefulset_update(new: dict, old: dict) -> list[FieldError]:
    out: list[FieldError] = []
    allowed = ("replicas", "template", "updateStrategy", "minReadySeconds",
               "persistentVolumeClaimRetentionPolicy", "ordinals", "revisionHistoryLimit")
    ns = {k: v for k, v in (new.get("spec") or {}).items() if k not in allowed}
    os_ = {k: v for k, v in (old.get("spec") or {}).items() if k not in allowed}
    if ns != os_:
        out.append(forbidden_field("spec", "updates to statefulset spec for fields other than "
                                   "'replicas', 'ordinals', 'template', 'updateStrategy', "
                                   "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' "
                                   "are forbidden"))
    return out


def _node_update(new: dict, old: dict) -> list[FieldError]:
    out: list[FieldError] = []
    old_cidr = _get(old, "spec", "podCIDR")
    if old_cidr and _get(new, "spec", "podCIDR") != old_cidr:
        out.append(forbidden_field("spec.podCIDRs", "node updates may not change podCIDR except from \"\" to valid"))
    return out


def _rbac_binding_update(new: dict, old: dict) -> list[FieldError]:
    out: list[FieldError] = []
    if new.get("roleRef") != old.get("roleRef"):
        out.append(invalid_value("roleRef", new.get("roleRef"), "cannot change roleRef"))
    return out


def _csr_update(new: dict, old: dict) -> list[FieldError]:
    out: list[FieldError] = []
    _immutable(_get(new, "spec", "request"), _get(old, "spec", "request"), "spec.request", out)
    _immutable(_get(new, "spec", "signerName"), _get(old, "spec", "signerName"), "spec.signerName", out)
    return out


def _priorityclass_update(new: dict, old: dict) -> list[FieldError]:
    out: list[FieldError] = []
    if new.get("value") != old.get("value"):
        out.append(forbidden_field("value", "may not be changed in an update."))
    _immutable(new.get("preemptionPolicy"), old.get("preemptionPolicy"), "preemptionPolicy", out)
    return out


UPDATE_CHECKS = {
    "Pod": _pod_update,
    "Deployment": _selector_immutable,
    "ReplicaSet": _selector_immutable,
    "DaemonSet": _selector_immutable,
    "StatefulSet": _statefulset_update,  # selector is among the forbidden spec fields
    "Job": _job_update,
    "Service": _service_update,
    "ConfigMap": _immutable_data,
    "Secret": _immutable_data,
    "Node": _node_update,
    "RoleBinding": _rbac_binding_update,
    "ClusterRoleBinding": _rbac_binding_update,
    "CertificateSigningRequest": _csr_update,
    "PriorityClass": _priorityclass_update,
}


# Dispatch (what schema.validate_object calls) ------------------------------------

def validate_object(obj: dict, gvk: GVK) -> list[FieldError]:
    kind = gvk[2]
    if kind in VIRTUAL_KINDS:
        return []
    out = validate_meta(obj, kind)
    check = CREATE_CHECKS.get(kind)
    if check:
        out.extend(check(obj))
    return out


def validate_update(new: dict, old: dict, gvk: GVK) -> list[FieldError]:
    nm, om = new.get("metadata") or {}, old.get("metadata") or {}
    out: list[FieldError] = []
    for key in ("name", "namespace", "uid", "creationTimestamp"):
        if om.get(key) and nm.get(key) != om.get(key):
            out.append(invalid_value(f"metadata.{key}", nm.get(key), "field is immutable"))
    if om.get("deletionTimestamp") and nm.get("deletionTimestamp") != om.get("deletionTimestamp"):
        out.append(invalid_value("metadata.deletionTimestamp", nm.get("deletionTimestamp"),
                                 "field is immutable; may only be changed via deletion"))
    if gvk[2] in VIRTUAL_KINDS:
        return out
    out.extend(validate_object(new, gvk))
    check = UPDATE_CHECKS.get(gvk[2])
    if check:
        out.extend(check(new, old))
    return out
