"""Columns for core, networking, RBAC and other kinds (upstream's printers.go);
workloads live in tables_workloads."""

from __future__ import annotations

from bootstrap.api.table_columns import Column, _doc, age_column, name_column, since
from bootstrap.api.tables_cluster import CLUSTER_COLUMNS
from bootstrap.api.tables_workloads import (
    _APPS,
    _CORE,
    NONE,
    WORKLOAD_COLUMNS,
    _spec,
    _status,
)


def _int(v) -> int:
    return int(v or 0)


# ------------------------------------------------------------ core services

def _service_external_ip(o: dict) -> str:
    spec = _spec(o)
    t = spec.get("type", "ClusterIP")
    ext = spec.get("externalIPs") or []
    if t in ("ClusterIP", "NodePort"):
        return ",".join(ext) if ext else NONE
    if t == "ExternalName":
        return spec.get("externalName", "")
    ingress = [i.get("ip") or i.get("hostname") for i in
               (_status(o).get("loadBalancer") or {}).get("ingress") or []]
    ips = [i for i in ingress + ext if i]
    return ",".join(ips) if ips else "<pending>"


def _service_ports(o: dict) -> str:
    out = []
    for p in _spec(o).get("ports") or []:
        proto = p.get("protocol", "TCP")
        if p.get("nodePort"):
            out.append(f"{p.get('port')}:{p['nodePort']}/{proto}")
        else:
            out.append(f"{p.get('port')}/{proto}")
    return ",".join(out) or NONE


def _service_columns() -> list[Column]:
    return [
        name_column(),
        Column("Type", lambda o, n: _spec(o).get("type", "ClusterIP"),
               description=_doc(_CORE + "ServiceSpec", "type")),
        Column("Cluster-IP", lambda o, n: _spec(o).get("clusterIP") or NONE,
               description=_doc(_CORE + "ServiceSpec", "clusterIP")),
        Column("External-IP", lambda o, n: _service_external_ip(o),
               description=_doc(_CORE + "ServiceSpec", "externalIPs")),
        Column("Port(s)", lambda o, n: _service_ports(o),
               description=_doc(_CORE + "ServiceSpec", "ports")),
        age_column(),
        Column("Selector", lambda o, n: ",".join(f"{k}={v}" for k, v in sorted((_spec(o).get("selector") or {}).items())) or NONE,
               priority=1, description=_doc(_CORE + "ServiceSpec", "selector")),
    ]


def _node_status(o: dict) -> str:
    conds = {c.get("type"): c.get("status") for c in _status(o).get("conditions") or []}
    ready = conds.get("Ready")
    out = ["Ready" if ready == "True" else "NotReady" if ready in ("False",) else "Unknown"]
    if _spec(o).get("unschedulable"):
        out.append("SchedulingDisabled")
    return ",".join(out)


def _node_roles(o: dict) -> str:
    roles = set()
    for k, v in ((o.get("metadata") or {}).get("labels") or {}).items():
        if k.startswith("node-role.kubernetes.io/"):
            role = k[len("node-role.kubernetes.io/"):]
            if role:
                roles.add(role)
        elif k == "kubernetes.io/role" and v:
            roles.add(v)
    return ",".join(sorted(roles)) or NONE


def _node_address(o: dict, kind: str) -> str:
    for a in _status(o).get("addresses") or []:
        if a.get("type") == kind:
            return a.get("address", "")
    return NONE


def _node_info(o: dict, key: str) -> str:
    return (_status(o).get("nodeInfo") or {}).get(key) or "<unknown>"


def _node_columns() -> list[Column]:
    return [
        name_column(),
        Column("Status", lambda o, n: _node_status(o), description="The status of the node"),
        Column("Roles", lambda o, n: _node_roles(o), description="The roles of the node"),
        age_column(),
        Column("Version", lambda o, n: (_status(o).get("nodeInfo") or {}).get("kubeletVersion", ""),
               description=_doc(_CORE + "NodeSystemInfo", "kubeletVersion")),
        Column("Internal-IP", lambda o, n: _node_address(o, "InternalIP"), priority=1,
               description=_doc(_CORE + "NodeStatus", "addresses")),
        Column("External-IP", lambda o, n: _node_address(o, "ExternalIP"), priority=1,
               description=_doc(_CORE + "NodeStatus", "addresses")),
        Column("OS-Image", lambda o, n: _node_info(o, "osImage"), priority=1,
               description=_doc(_CORE + "NodeSystemInfo", "osImage")),
        Column("Kernel-Version", lambda o, n: _node_info(o, "kernelVersion"), priority=1,
               description=_doc(_CORE + "NodeSystemInfo", "kernelVersion")),
        Column("Container-Runtime", lambda o, n: _node_info(o, "containerRuntimeVersion"), priority=1,
               description=_doc(_CORE + "NodeSystemInfo", "containerRuntimeVersion")),
    ]


def _namespace_columns() -> list[Column]:
    return [name_column(),
            Column("Status", lambda o, n: _status(o).get("phase", ""),
                   description="The status of the namespace"),
            age_column()]


def _endpoints_str(o: dict) -> str:
    addrs = []
    for s in o.get("subsets") or []:
        ports = s.get("ports") or [{}]
        for a in s.get("addresses") or []:
            for p in ports:
                addrs.append(f"{a.get('ip')}:{p['port']}" if "port" in p else a.get("ip", ""))
    if not addrs:
        return NONE
    if len(addrs) > 3:
        return ",".join(addrs[:3]) + f" + {len(addrs) - 3} more..."
    return ",".join(addrs)


def _endpoints_columns() -> list[Column]:
    return [name_column(),
            Column("Endpoints", lambda o, n: _endpoints_str(o), description=_doc(_CORE + "Endpoints", "subsets")),
            age_column()]


def _endpointslice_columns() -> list[Column]:
    def ports(o):
        ps = [str(p.get("port")) for p in o.get("ports") or [] if p.get("port") is not None]
        return ",".join(ps) or NONE

    def eps(o):
        addrs = [a for e in o.get("endpoints") or [] for a in e.get("addresses") or []]
        if not addrs:
            return NONE
        return ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")

    return [name_column(),
            Column("AddressType", lambda o, n: o.get("addressType", ""), description="Type of address"),
            Column("Ports", lambda o, n: ports(o), description="Ports"),
            Column("Endpoints", lambda o, n: eps(o), description="Endpoints"),
            age_column()]


def _configmap_columns() -> list[Column]:
    return [name_column(),
            Column("Data", lambda o, n: len(o.get("data") or {}) + len(o.get("binaryData") or {}),
                   type="integer", description=_doc(_CORE + "ConfigMap", "data")),
            age_column()]


def _secret_columns() -> list[Column]:
    return [name_column(),
            Column("Type", lambda o, n: o.get("type", ""), description=_doc(_CORE + "Secret", "type")),
            Column("Data", lambda o, n: len(o.get("data") or {}), type="integer",
                   description=_doc(_CORE + "Secret", "data")),
            age_column()]


def _serviceaccount_columns() -> list[Column]:
    return [name_column(),
            Column("Secrets", lambda o, n: len(o.get("secrets") or []), type="integer",
                   description=_doc(_CORE + "ServiceAccount", "secrets")),
            age_column()]


def _event_columns() -> list[Column]:
    def last_seen(o, n):
        ts = o.get("lastTimestamp") or o.get("eventTime") or (o.get("series") or {}).get("lastObservedTime")
        return since(ts, n) if ts else since((o.get("metadata") or {}).get("creationTimestamp"), n)

    def obj(o):
        io = o.get("involvedObject") or {}
        return f"{(io.get('kind') or '').lower()}/{io.get('name', '')}"

    def source(o):
        s = o.get("source") or {}
        comp = s.get("component") or o.get("reportingComponent") or ""
        return f"{comp}, {s['host']}" if s.get("host") else comp

    return [
        Column("Last Seen", last_seen, description="Time of the last occurrence"),
        Column("Type", lambda o, n: o.get("type", ""), description=_doc(_CORE + "Event", "type")),
        Column("Reason", lambda o, n: o.get("reason", ""), description=_doc(_CORE + "Event", "reason")),
        Column("Object", lambda o, n: obj(o), description=_doc(_CORE + "Event", "involvedObject")),
        Column("Subobject", lambda o, n: (o.get("involvedObject") or {}).get("fieldPath", ""), priority=1,
               description=_doc(_CORE + "ObjectReference", "fieldPath")),
        Column("Source", lambda o, n: source(o), priority=1, description=_doc(_CORE + "Event", "source")),
        Column("Message", lambda o, n: (o.get("message") or "").strip(),
               description=_doc(_CORE + "Event", "message")),
        Column("First Seen", lambda o, n: since(o.get("firstTimestamp") or o.get("eventTime"), n), priority=1,
               description=_doc(_CORE + "Event", "firstTimestamp")),
        Column("Count", lambda o, n: o.get("count") or 1, type="integer", priority=1,
               description=_doc(_CORE + "Event", "count")),
        Column("Name", lambda o, n: (o.get("metadata") or {}).get("name", ""), priority=1,
               format="name", description="Name of the event"),
    ]


def _lease_columns() -> list[Column]:
    return [name_column(),
            Column("Holder", lambda o, n: _spec(o).get("holderIdentity", ""),
                   description=_doc("io.k8s.api.coordination.v1.LeaseSpec", "holderIdentity")),
            age_column()]


def _csr_condition(o: dict) -> str:
    conds = [c.get("type") for c in _status(o).get("conditions") or []]
    if not conds:
        return "Pending"
    out = [c for c in ("Approved", "Denied", "Failed") if c in conds]
    if _status(o).get("certificate") and "Approved" in out:
        out.append("Issued")
    return ",".join(out) or "Pending"


def _csr_columns() -> list[Column]:
    def duration(o):
        s = _spec(o).get("expirationSeconds")
        if not s:
            return NONE
        from bootstrap.api.table_columns import human_duration
        return human_duration(s)

    return [name_column(),
            age_column(),
            Column("SignerName", lambda o, n: _spec(o).get("signerName", ""),
                   description="The signer name"),
            Column("Requestor", lambda o, n: _spec(o).get("username", ""),
                   description="Name of the requestor"),
            Column("RequestedDuration", lambda o, n: duration(o),
                   description="The requested duration"),
            Column("Condition", lambda o, n: _csr_condition(o),
                   description="Condition of the request")]


def _role_columns() -> list[Column]:
    return [name_column(),
            Column("Created At", lambda o, n: (o.get("metadata") or {}).get("creationTimestamp", ""),
                   type="date", description="Time when the role was created")]


def _binding_columns() -> list[Column]:
    def subjects(o, kind):
        out = []
        for s in o.get("subjects") or []:
            if s.get("kind") == kind:
                out.append(f"{s.get('namespace', '')}/{s.get('name', '')}" if kind == "ServiceAccount"
                           else s.get("name", ""))
        return ", ".join(out)

    return [name_column(),
            Column("Role", lambda o, n: f"{(o.get('roleRef') or {}).get('kind', '')}/{(o.get('roleRef') or {}).get('name', '')}",
                   description="Role referenced by the binding"),
            age_column(),
            Column("Users", lambda o, n: subjects(o, "User"), priority=1, description="Users in the binding"),
            Column("Groups", lambda o, n: subjects(o, "Group"), priority=1, description="Groups in the binding"),
            Column("ServiceAccounts", lambda o, n: subjects(o, "ServiceAccount"), priority=1,
                   description="ServiceAccounts in the binding")]


def _pdb_columns() -> list[Column]:
    def val(o, k):
        v = _spec(o).get(k)
        return "N/A" if v is None else str(v)

    return [name_column(),
            Column("Min Available", lambda o, n: val(o, "minAvailable"),
                   description="The minimum number of pods that must be available"),
            Column("Max Unavailable", lambda o, n: val(o, "maxUnavailable"),
                   description="The maximum number of pods that may be unavailable"),
            Column("Allowed Disruptions", lambda o, n: _int(_status(o).get("disruptionsAllowed")),
                   type="integer", description="Calculated number of pods that may be disrupted at this time"),
            age_column()]


def _controllerrevision_columns() -> list[Column]:
    def controller(o):
        for r in (o.get("metadata") or {}).get("ownerReferences") or []:
            if r.get("controller"):
                group = r.get("apiVersion", "").split("/")[0] if "/" in r.get("apiVersion", "") else ""
                kind = r.get("kind", "").lower() + (f".{group}" if group else "")
                return f"{kind}/{r.get('name', '')}"
        return NONE

    return [name_column(),
            Column("Controller", lambda o, n: controller(o), description="Controller of the object"),
            Column("Revision", lambda o, n: o.get("revision", 0), type="integer",
                   description=_doc(_APPS + "ControllerRevision", "revision")),
            age_column()]


def _resourcequota_columns() -> list[Column]:
    def usage(o, prefix):
        hard = _status(o).get("hard") or _spec(o).get("hard") or {}
        used = _status(o).get("used") or {}
        keys = sorted(k for k in hard if (k.startswith(prefix) if prefix == "limits." else not k.startswith("limits.")))
        return ", ".join(f"{k}: {used.get(k, '0')}/{hard[k]}" for k in keys)

    return [name_column(), age_column(),
            Column("Request", lambda o, n: usage(o, ""), description="Request represents a minimum amount of cpu/memory that a container may consume."),
            Column("Limit", lambda o, n: usage(o, "limits."), description="Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.")]


def _pvc_columns() -> list[Column]:
    def capacity(o):
        return (_status(o).get("capacity") or {}).get("storage", "")

    def modes(o):
        short = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}
        return ",".join(short.get(m, m) for m in _status(o).get("accessModes") or [])

    return [name_column(),
            Column("Status", lambda o, n: _status(o).get("phase", ""), description=_doc(_CORE + "PersistentVolumeClaimStatus", "phase")),
            Column("Volume", lambda o, n: _spec(o).get("volumeName", ""), description=_doc(_CORE + "PersistentVolumeClaimSpec", "volumeName")),
            Column("Capacity", lambda o, n: capacity(o), description=_doc(_CORE + "PersistentVolumeClaimStatus", "capacity")),
            Column("Access Modes", lambda o, n: modes(o), description=_doc(_CORE + "PersistentVolumeClaimStatus", "accessModes")),
            Column("StorageClass", lambda o, n: _spec(o).get("storageClassName") or "<unset>", description=_doc(_CORE + "PersistentVolumeClaimSpec", "storageClassName")),
            Column("VolumeAttributesClass", lambda o, n: _spec(o).get("volumeAttributesClassName") or "<unset>", description=_doc(_CORE + "PersistentVolumeClaimSpec", "volumeAttributesClassName")),
            age_column(),
            Column("VolumeMode", lambda o, n: _spec(o).get("volumeMode", ""), priority=1, description=_doc(_CORE + "PersistentVolumeClaimSpec", "volumeMode"))]


def _priorityclass_columns() -> list[Column]:
    pc = "io.k8s.api.scheduling.v1.PriorityClass"
    return [name_column(),
            Column("Value", lambda o, n: o.get("value", 0), type="integer",
                   description=_doc(pc, "value")),
            Column("Global-Default", lambda o, n: bool(o.get("globalDefault")), type="boolean",
                   description=_doc(pc, "globalDefault")),
            age_column(),
            Column("PreemptionPolicy", lambda o, n: o.get("preemptionPolicy", ""),
                   description=_doc(pc, "preemptionPolicy"))]


COLUMNS = {
    **WORKLOAD_COLUMNS,
    **CLUSTER_COLUMNS,
    "services": _service_columns,
    "nodes": _node_columns,
    "namespaces": _namespace_columns,
    "endpoints": _endpoints_columns,
    "endpointslices": _endpointslice_columns,
    "configmaps": _configmap_columns,
    "secrets": _secret_columns,
    "serviceaccounts": _serviceaccount_columns,
    "events": _event_columns,
    "leases": _lease_columns,
    "certificatesigningrequests": _csr_columns,
    "roles": _role_columns,
    "clusterroles": _role_columns,
    "rolebindings": _binding_columns,
    "clusterrolebindings": _binding_columns,
    "poddisruptionbudgets": _pdb_columns,
    "controllerrevisions": _controllerrevision_columns,
    "resourcequotas": _resourcequota_columns,
    "persistentvolumeclaims": _pvc_columns,
    "priorityclasses": _priorityclass_columns,
}
