"""Pod spec in, CRI messages out: the kubelet's pure translation.

Upstream semantics (pkg/kubelet/kuberuntime/kuberuntime_sandbox.go,
kuberuntime_container.go, network/dns/dns.go, container/helpers.go): sandbox
hostname, DNS per dnsPolicy, port mappings for hostPort, cgroup parent by QoS
class, namespaces for hostNetwork/hostPID/hostIPC; container command/args/env
with $(VAR) expansion, resources as CFS shares/quota and memory limit, the
security context basics, mounts and the CRI log path. Nothing here does I/O:
what the pod references (configMaps, secrets, Services, volume host paths, the
pod IP) comes in through ``PodInputs``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from dataclasses import dataclass, field

from cri_api.v1 import api_pb2 as cri

from bootstrap.agents.kubelet import labels as L
from bootstrap.api.quantity import QuantityError, milli_value
from bootstrap.api.quantity import value as int_value

# Upstream's limits (pkg/apis/core/validation, dns.go).
MAX_DNS_NAMESERVERS = 3
MAX_DNS_SEARCH_PATHS = 32
MAX_DNS_SEARCH_LENGTH = 2048
CPU_PERIOD = 100_000          # quotaPeriod: 100 ms in µs
MIN_SHARES, MAX_SHARES = 2, 262_144
MIN_QUOTA = 1000
DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"
POD_LOG_ROOT = "/var/log/pods"


class ConfigError(Exception):
    """A container cannot be configured yet (a referenced key is missing): the pod
    shows waiting reason CreateContainerConfigError with this message, as upstream."""

    reason = "CreateContainerConfigError"


@dataclass(frozen=True)
class ResolvConf:
    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> ResolvConf:
        servers, searches, options = [], [], []
        for line in text.splitlines():
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            if fields[0] == "nameserver" and len(fields) > 1:
                servers.append(fields[1])
            elif fields[0] in ("search", "domain"):
                searches = fields[1:]  # the last one wins, as in resolv.conf(5)
            elif fields[0] == "options":
                options.extend(fields[1:])
        return cls(tuple(servers), tuple(searches), tuple(options))


@dataclass(frozen=True)
class NodeContext:
    """What the translation needs to know about the node and its configuration."""
    node_name: str
    node_ip: str = ""
    cluster_dns: tuple[str, ...] = ()
    cluster_domain: str = "cluster.local"
    host_dns: ResolvConf = ResolvConf()
    cgroup_driver: str = "cgroupfs"
    memory_capacity: int = 0
    milli_cpu_capacity: int = 0
    pod_log_root: str = POD_LOG_ROOT


@dataclass
class PodInputs:
    """What the pod references, fetched by the caller before translation."""
    configmaps: dict[str, dict | None] = field(default_factory=dict)  # name -> obj (None: 404)
    secrets: dict[str, dict | None] = field(default_factory=dict)
    service_env: dict[str, str] = field(default_factory=dict)
    mounts: dict[str, str] = field(default_factory=dict)   # volume name -> host path
    readonly_volumes: frozenset[str] = frozenset()          # configMap/secret/... volumes
    pod_ip: str = ""
    pod_ips: tuple[str, ...] = ()
    etc_hosts: str = ""                                      # host path of the managed file


# --- pod-level ---------------------------------------------------------------------

def pod_labels(pod: dict) -> dict[str, str]:
    """The pod's own labels plus the kubelet's identifying ones (newLabels)."""
    meta = pod["metadata"]
    out = dict(meta.get("labels") or {})
    out.update({L.POD_NAME: meta["name"], L.POD_NAMESPACE: meta.get("namespace", "default"),
                L.POD_UID: meta["uid"]})
    return out


def qos_class(pod: dict) -> str:
    """Guaranteed / Burstable / BestEffort (pkg/apis/core/v1/helper/qos)."""
    spec = pod.get("spec") or {}
    containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    requests_any = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        for name in ("cpu", "memory"):
            if name in req or name in lim:
                requests_any = True
            r, li = req.get(name, lim.get(name)), lim.get(name)
            if li is None or r is None or _units(name, r) != _units(name, li):
                guaranteed = False
    if not requests_any:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _units(name: str, value) -> int:
    return milli_value(value) if name == "cpu" else int_value(value)


def cgroup_parent(pod: dict, driver: str) -> str:
    """The pod cgroup under the QoS tiers (kubepods[/burstable|/besteffort]/pod<uid>)."""
    qos = qos_class(pod)
    uid = pod["metadata"]["uid"]
    if driver == "systemd":
        # systemd slices: the name encodes the path (kubepods-burstable-pod<uid>.slice).
        tier = "" if qos == "Guaranteed" else f"-{qos.lower()}"
        return f"kubepods{tier}-pod{uid.replace('-', '_')}.slice"
    tier = "" if qos == "Guaranteed" else "/" + qos.lower()
    return f"/kubepods{tier}/pod{uid}"


def pod_log_dir(pod: dict, root: str = POD_LOG_ROOT) -> str:
    meta = pod["metadata"]
    return f"{root}/{meta.get('namespace', 'default')}_{meta['name']}_{meta['uid']}"


def container_log_path(container_name: str, attempt: int) -> str:
    """Relative to the sandbox's log directory, as upstream (<container>/<restart>.log)."""
    return f"{container_name}/{attempt}.log"


def pod_hostname(pod: dict, node: NodeContext) -> str:
    spec = pod.get("spec") or {}
    if spec.get("hostNetwork"):
        return node.node_name
    name = spec.get("hostname") or pod["metadata"]["name"]
    # A hostname is one DNS label: truncated to 63 and no trailing '-' or '.' (upstream).
    return name[:63].rstrip("-.")


def dns_config(pod: dict, node: NodeContext) -> cri.DNSConfig | None:
    """DNS per dnsPolicy (dns.go GetPodDNS); None leaves the runtime's default (host)."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    host_net = bool(spec.get("hostNetwork"))
    if policy == "ClusterFirst" and host_net:
        policy = "Default"  # ClusterFirst on the host network means the host's resolver
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and not node.cluster_dns:
        policy = "Default"  # upstream falls back (and warns) when clusterDNS is empty
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        ns = pod["metadata"].get("namespace", "default")
        domain = node.cluster_domain.strip(".")
        servers = list(node.cluster_dns)
        searches = [f"{ns}.svc.{domain}", f"svc.{domain}", domain, *node.host_dns.searches]
        options = ["ndots:5"]
    elif policy == "Default":
        servers = list(node.host_dns.servers)
        searches = list(node.host_dns.searches)
        options = list(node.host_dns.options)
    pod_dns = spec.get("dnsConfig") or {}
    servers += [s for s in pod_dns.get("nameservers") or [] if s not in servers]
    searches += [s for s in pod_dns.get("searches") or [] if s not in searches]
    options = _merge_options(options, pod_dns.get("options") or [])
    return cri.DNSConfig(servers=servers[:MAX_DNS_NAMESERVERS],
                         searches=_limit_searches(searches), options=options)


def _merge_options(base: list[str], pod_opts: list[dict]) -> list[str]:
    """Pod dnsConfig options override same-named ones (mergeDNSOptions)."""
    merged: dict[str, str] = {}
    for opt in base:
        name, _, value = opt.partition(":")
        merged[name] = opt
    for opt in pod_opts:
        name = opt.get("name", "")
        if name:
            merged[name] = f"{name}:{opt['value']}" if opt.get("value") is not None else name
    return list(merged.values())


def _limit_searches(searches: list[str]) -> list[str]:
    out: list[str] = []
    length = 0
    for s in searches:
        s = s.rstrip(".")
        if not s or s in out:
            continue
        if len(out) >= MAX_DNS_SEARCH_PATHS or length + len(s) + len(out) > MAX_DNS_SEARCH_LENGTH:
            break
        out.append(s)
        length += len(s)
    return out


_PROTOCOLS = {"TCP": cri.TCP, "UDP": cri.UDP, "SCTP": cri.SCTP}


def port_mappings(pod: dict) -> list[cri.PortMapping]:
    out = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if not p.get("hostPort"):
                continue
            out.append(cri.PortMapping(protocol=_PROTOCOLS.get(p.get("protocol") or "TCP", cri.TCP),
                                       container_port=int(p["containerPort"]),
                                       host_port=int(p["hostPort"]),
                                       host_ip=p.get("hostIP") or ""))
    return out


def _namespace_options(spec: dict) -> cri.NamespaceOption:
    return cri.NamespaceOption(
        network=cri.NODE if spec.get("hostNetwork") else cri.POD,
        pid=cri.NODE if spec.get("hostPID") else (
            cri.POD if spec.get("shareProcessNamespace") else cri.CONTAINER),
        ipc=cri.NODE if spec.get("hostIPC") else cri.POD)


def sandbox_config(pod: dict, node: NodeContext, attempt: int = 0) -> cri.PodSandboxConfig:
    meta = pod["metadata"]
    spec = pod.get("spec") or {}
    psc = spec.get("securityContext") or {}
    sec = cri.LinuxSandboxSecurityContext(namespace_options=_namespace_options(spec))
    if psc.get("runAsUser") is not None:
        sec.run_as_user.value = int(psc["runAsUser"])
    if psc.get("runAsGroup") is not None:
        sec.run_as_group.value = int(psc["runAsGroup"])
    sec.supplemental_groups.extend(int(g) for g in psc.get("supplementalGroups") or [])
    if psc.get("fsGroup") is not None:
        sec.supplemental_groups.append(int(psc["fsGroup"]))
    sysctls = {s["name"]: s.get("value", "") for s in psc.get("sysctls") or []}
    annotations = dict(meta.get("annotations") or {})
    return cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=meta["name"], uid=meta["uid"],
                                        namespace=meta.get("namespace", "default"),
                                        attempt=attempt),
        hostname=pod_hostname(pod, node),
        log_directory=pod_log_dir(pod, node.pod_log_root),
        dns_config=dns_config(pod, node),
        port_mappings=port_mappings(pod),
        labels=pod_labels(pod),
        annotations=annotations,
        linux=cri.LinuxPodSandboxConfig(cgroup_parent=cgroup_parent(pod, node.cgroup_driver),
                                        security_context=sec, sysctls=sysctls))


# --- environment ---------------------------------------------------------------------

_VAR = re.compile(r"\$\$|\$\(([^)]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """$(VAR) from ``env``; $$ is a literal $; an undefined $(VAR) stays as written
    (third_party/forked/golang/expansion)."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)
    return _VAR.sub(sub, text)


def field_ref(pod: dict, path: str, inputs: PodInputs, node: NodeContext) -> str:
    meta = pod["metadata"]
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", "default"),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName") or node.node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName") or "",
        "status.hostIP": node.node_ip,
        "status.hostIPs": node.node_ip,
        "status.podIP": inputs.pod_ip,
        "status.podIPs": ",".join(inputs.pod_ips or ((inputs.pod_ip,) if inputs.pod_ip else ())),
    }
    if path in simple:
        return simple[path]
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']*)'\]", path)
    if m:
        return (meta.get(m.group(1)) or {}).get(m.group(2), "")
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{_escape(v)}"' for k, v in sorted(items.items()))
    raise ConfigError(f"unsupported fieldRef fieldPath {path!r}")


def _escape(value: str) -> str:
    # downwardAPI's FormatMap quoting (strconv.Quote without the outer quotes).
    return json.dumps(value)[1:-1]


def resource_field(pod: dict, container: dict | None, ref: dict, node: NodeContext) -> str:
    """resourceFieldRef value: limits fall back to node allocatable (upstream), divisor."""
    name = ref.get("containerName") or (container or {}).get("name")
    target = next((c for c in (pod.get("spec") or {}).get("containers") or []
                   if c.get("name") == name), container) or {}
    resource = ref.get("resource", "")
    kind, _, res = resource.partition(".")
    rl = ((target.get("resources") or {}).get(kind) or {})
    divisor = ref.get("divisor") or ("1" if res != "cpu" else "1")
    if res == "cpu":
        milli = milli_value(rl[res]) if res in rl else (
            node.milli_cpu_capacity if kind == "limits" else 0)
        # ceil(value / divisor), as upstream's ExtractContainerResourceValue.
        return str(math.ceil(milli / milli_value(divisor)))
    if res in ("memory", "ephemeral-storage"):
        value = int_value(rl[res]) if res in rl else (
            node.memory_capacity if kind == "limits" and res == "memory" else 0)
        return str(math.ceil(value / int_value(divisor)))
    raise ConfigError(f"unsupported container resource {resource!r}")


def _key_ref(kind: str, objs: dict[str, dict | None], ref: dict) -> str | None:
    name, key = ref.get("name", ""), ref.get("key", "")
    optional = bool(ref.get("optional"))
    obj = objs.get(name)
    if obj is None:
        if optional:
            return None
        raise ConfigError(f'{kind} "{name}" not found')
    data = _string_data(kind, obj)
    if key not in data:
        if optional:
            return None
        raise ConfigError(f"couldn't find key {key} in {_Kind[kind]} {obj['metadata'].get('namespace', '')}/{name}")
    return data[key]


_Kind = {"configmap": "ConfigMap", "secret": "Secret"}


def _string_data(kind: str, obj: dict) -> dict[str, str]:
    if kind == "secret":
        return {k: base64.b64decode(v).decode(errors="replace")
                for k, v in (obj.get("data") or {}).items()}
    return dict(obj.get("data") or {})


def container_env(pod: dict, container: dict, node: NodeContext, inputs: PodInputs
                  ) -> list[tuple[str, str]]:
    """The container's environment in upstream's order: service links, envFrom, env
    (later entries override earlier ones; env values expand earlier variables)."""
    env: dict[str, str] = {}
    if (pod.get("spec") or {}).get("enableServiceLinks", True) is not False:
        env.update(inputs.service_env)
    else:
        env.update({k: v for k, v in inputs.service_env.items() if k.startswith("KUBERNETES_")})
    for src in container.get("envFrom") or []:
        prefix = src.get("prefix") or ""
        for kind, ref_key in (("configmap", "configMapRef"), ("secret", "secretRef")):
            ref = src.get(ref_key)
            if not ref:
                continue
            objs = inputs.configmaps if kind == "configmap" else inputs.secrets
            obj = objs.get(ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{kind} "{ref.get("name", "")}" not found')
            for k, v in _string_data(kind, obj).items():
                env[prefix + k] = v
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(var.get("value") or "", env)
            continue
        vf = var["valueFrom"] or {}
        value: str | None
        if vf.get("fieldRef"):
            value = field_ref(pod, vf["fieldRef"].get("fieldPath", ""), inputs, node)
        elif vf.get("resourceFieldRef"):
            value = resource_field(pod, container, vf["resourceFieldRef"], node)
        elif vf.get("configMapKeyRef"):
            value = _key_ref("configmap", inputs.configmaps, vf["configMapKeyRef"])
        elif vf.get("secretKeyRef"):
            value = _key_ref("secret", inputs.secrets, vf["secretKeyRef"])
        else:
            value = ""
        if value is not None:
            env[name] = value
    return list(env.items())


def service_env(services: list[dict], namespace: str, master_namespace: str = "default"
                ) -> dict[str, str]:
    """Docker-link style variables for the namespace's Services plus the master
    ``kubernetes`` Service (getServiceEnvVarMap)."""
    chosen: dict[str, dict] = {}
    for svc in services:
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        ip = spec.get("clusterIP")
        if not ip or ip == "None":
            continue
        ns, name = meta.get("namespace"), meta.get("name", "")
        if ns == namespace or (ns == master_namespace and name == "kubernetes"):
            chosen.setdefault(name, svc)
    env: dict[str, str] = {}
    for name, svc in sorted(chosen.items()):
        spec = svc["spec"]
        prefix = name.upper().replace("-", "_")
        ports = spec.get("ports") or []
        ip = spec["clusterIP"]
        env[f"{prefix}_SERVICE_HOST"] = ip
        if not ports:
            continue
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for p in ports:
            if p.get("name"):
                env[f"{prefix}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(p["port"])
        first = ports[0]
        proto = (first.get("protocol") or "TCP").lower()
        env[f"{prefix}_PORT"] = f"{proto}://{ip}:{first['port']}"
        for p in ports:
            proto = (p.get("protocol") or "TCP")
            base = f"{prefix}_PORT_{p['port']}_{proto.upper()}"
            env[base] = f"{proto.lower()}://{ip}:{p['port']}"
            env[base + "_PROTO"] = proto.lower()
            env[base + "_PORT"] = str(p["port"])
            env[base + "_ADDR"] = ip
    return env


# --- resources and security ----------------------------------------------------------------

def linux_resources(pod: dict, container: dict, node: NodeContext) -> cri.LinuxContainerResources:
    res = container.get("resources") or {}
    req, lim = res.get("requests") or {}, res.get("limits") or {}
    out = cri.LinuxContainerResources()
    try:
        cpu_req = req.get("cpu", lim.get("cpu"))
        shares = MIN_SHARES
        if cpu_req is not None:
            shares = max(MIN_SHARES, min(MAX_SHARES, milli_value(cpu_req) * 1024 // 1000))
        out.cpu_shares = shares
        if "cpu" in lim:
            out.cpu_period = CPU_PERIOD
            out.cpu_quota = max(MIN_QUOTA, milli_value(lim["cpu"]) * CPU_PERIOD // 1000)
        if "memory" in lim:
            out.memory_limit_in_bytes = int_value(lim["memory"])
        out.oom_score_adj = oom_score_adj(pod, container, node)
    except QuantityError as exc:
        raise ConfigError(str(exc)) from exc
    return out


def oom_score_adj(pod: dict, container: dict, node: NodeContext) -> int:
    """The QoS policy's OOM score (pkg/kubelet/qos/policy.go)."""
    qos = qos_class(pod)
    if qos == "Guaranteed":
        return -997
    if qos == "BestEffort":
        return 1000
    mem = (container.get("resources") or {}).get("requests", {}).get("memory")
    if mem is None or not node.memory_capacity:
        return 999
    adj = 1000 - (1000 * int_value(mem)) // node.memory_capacity
    return max(2, min(999, adj))


def security_context(pod: dict, container: dict) -> cri.LinuxContainerSecurityContext:
    psc = (pod.get("spec") or {}).get("securityContext") or {}
    csc = container.get("securityContext") or {}
    out = cri.LinuxContainerSecurityContext(
        privileged=bool(csc.get("privileged")),
        readonly_rootfs=bool(csc.get("readOnlyRootFilesystem")),
        namespace_options=_namespace_options(pod.get("spec") or {}))
    user = csc.get("runAsUser", psc.get("runAsUser"))
    group = csc.get("runAsGroup", psc.get("runAsGroup"))
    if user is not None:
        out.run_as_user.value = int(user)
    if group is not None:
        out.run_as_group.value = int(group)
    if psc.get("supplementalGroups"):
        out.supplemental_groups.extend(int(g) for g in psc["supplementalGroups"])
    if psc.get("fsGroup") is not None:
        out.supplemental_groups.append(int(psc["fsGroup"]))
    caps = csc.get("capabilities") or {}
    if caps:
        # The API drops the CAP_ prefix; the runtime wants the bare names as well.
        out.capabilities.add_capabilities.extend(caps.get("add") or [])
        out.capabilities.drop_capabilities.extend(caps.get("drop") or [])
    if csc.get("allowPrivilegeEscalation") is False:
        out.no_new_privs = True
    return out


# --- containers -----------------------------------------------------------------------------

def container_hash(container: dict) -> str:
    """Changes when the container's spec changes, so a changed container is restarted."""
    return hashlib.sha256(json.dumps(container, sort_keys=True).encode()).hexdigest()[:16]


def container_mounts(container: dict, inputs: PodInputs) -> list[cri.Mount]:
    mounts = []
    has_hosts = False
    for vm in container.get("volumeMounts") or []:
        host = inputs.mounts.get(vm.get("name", ""))
        if host is None:
            raise ConfigError(f"cannot find volume {vm.get('name')!r} to mount into container "
                              f"{container.get('name')!r}")
        if vm.get("subPath"):
            host = host.rstrip("/") + "/" + vm["subPath"].lstrip("/")
        path = vm["mountPath"]
        has_hosts = has_hosts or path == "/etc/hosts"
        prop = {"HostToContainer": cri.PROPAGATION_HOST_TO_CONTAINER,
                "Bidirectional": cri.PROPAGATION_BIDIRECTIONAL}.get(
                    vm.get("mountPropagation") or "", cri.PROPAGATION_PRIVATE)
        mounts.append(cri.Mount(container_path=path, host_path=host,
                                readonly=bool(vm.get("readOnly"))
                                or vm.get("name") in inputs.readonly_volumes,
                                propagation=prop))
    if inputs.etc_hosts and not has_hosts:
        mounts.append(cri.Mount(container_path="/etc/hosts", host_path=inputs.etc_hosts))
    return mounts


def container_config(pod: dict, container: dict, attempt: int, node: NodeContext,
                     inputs: PodInputs, image_ref: str = "") -> cri.ContainerConfig:
    env_list = container_env(pod, container, node, inputs)
    env = dict(env_list)
    command = [expand(c, env) for c in container.get("command") or []]
    args = [expand(a, env) for a in container.get("args") or []]
    meta = pod["metadata"]
    grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
    annotations = {
        L.CONTAINER_HASH: container_hash(container),
        L.RESTART_COUNT: str(attempt),
        L.TERMINATION_MESSAGE_PATH: container.get("terminationMessagePath")
        or DEFAULT_TERMINATION_MESSAGE_PATH,
        L.TERMINATION_GRACE: str(grace),
    }
    return cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name=container["name"], attempt=attempt),
        image=cri.ImageSpec(image=image_ref or container["image"],
                            user_specified_image=container["image"]),
        command=command, args=args, working_dir=container.get("workingDir") or "",
        envs=[cri.KeyValue(key=k, value=v) for k, v in env_list],
        mounts=container_mounts(container, inputs),
        labels={L.POD_NAME: meta["name"], L.POD_NAMESPACE: meta.get("namespace", "default"),
                L.POD_UID: meta["uid"], L.CONTAINER_NAME: container["name"]},
        annotations=annotations,
        log_path=container_log_path(container["name"], attempt),
        stdin=bool(container.get("stdin")), stdin_once=bool(container.get("stdinOnce")),
        tty=bool(container.get("tty")),
        linux=cri.LinuxContainerConfig(resources=linux_resources(pod, container, node),
                                       security_context=security_context(pod, container)))


def etc_hosts(pod: dict, node: NodeContext, pod_ips: tuple[str, ...]) -> str:
    """The kubelet-managed /etc/hosts of a pod (managedHostsFileContent)."""
    spec = pod.get("spec") or {}
    lines = ["# Kubernetes-managed hosts file.", "127.0.0.1\tlocalhost",
             "::1\tlocalhost ip6-localhost ip6-loopback", "fe00::0\tip6-localnet",
             "fe00::0\tip6-mcastprefix", "fe00::1\tip6-allnodes", "fe00::2\tip6-allrouters"]
    hostname = pod_hostname(pod, node)
    sub = spec.get("subdomain")
    names = hostname
    if sub:
        ns = pod["metadata"].get("namespace", "default")
        names = f"{hostname}.{sub}.{ns}.svc.{node.cluster_domain}\t{hostname}"
    for ip in pod_ips:
        lines.append(f"{ip}\t{names}")
    for alias in spec.get("hostAliases") or []:
        lines.append("\n# Entries added by HostAliases.")
        lines.append(f"{alias.get('ip')}\t" + "\t".join(alias.get("hostnames") or []))
    return "\n".join(lines) + "\n"
