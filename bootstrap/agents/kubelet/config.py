"""Kubelet flags and the KubeletConfiguration file (kubelet.config.k8s.io/v1beta1).

Field names, defaults and flag names are upstream's. Flags given on the command
line override the file, as upstream's deprecated flag overrides do. Anything
wrong raises UserError: one line naming the flag or field and how to fix it.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bootstrap.api.agent import add_version_flag
from bootstrap.config.duration import parse_duration
from bootstrap.errors import UserError

API_VERSION = "kubelet.config.k8s.io/v1beta1"
KIND = "KubeletConfiguration"
DEFAULT_ENDPOINT = "unix:///run/containerd/containerd.sock"


@dataclass
class KubeletConfig:
    # flags
    kubeconfig: str = "/etc/kubernetes/kubelet.conf"
    bootstrap_kubeconfig: str = ""
    config_file: str = ""
    runtime_endpoint: str = DEFAULT_ENDPOINT
    node_ip: str = ""
    hostname_override: str = ""
    root_dir: str = "/var/lib/kubelet"
    cert_dir: str = "/var/lib/kubelet/pki"
    verbosity: int = 0
    # KubeletConfiguration
    cluster_dns: list[str] = field(default_factory=list)
    cluster_domain: str = "cluster.local"
    static_pod_path: str = ""
    cgroup_driver: str = "cgroupfs"
    client_ca_file: str = ""
    webhook_authn: bool = True
    anonymous_auth: bool = False
    authorization_mode: str = "Webhook"
    rotate_certificates: bool = True
    server_tls_bootstrap: bool = False
    max_pods: int = 110
    pod_cidr: str = ""
    eviction_hard: dict[str, str] = field(default_factory=lambda: {
        "memory.available": "100Mi", "nodefs.available": "10%", "imagefs.available": "15%",
        "nodefs.inodesFree": "5%"})
    sync_frequency: float = 60.0
    node_status_update_frequency: float = 10.0
    node_status_report_frequency: float = 300.0
    node_lease_duration_seconds: int = 40
    file_check_frequency: float = 20.0
    address: str = "0.0.0.0"
    port: int = 10250
    read_only_port: int = 0
    healthz_port: int = 10248
    healthz_bind_address: str = "127.0.0.1"
    tls_cert_file: str = ""
    tls_private_key_file: str = ""
    resolv_conf: str = "/etc/resolv.conf"
    cni_conf_dir: str = "/etc/cni/net.d"
    pod_log_root: str = "/var/log/pods"
    register_node: bool = True
    node_labels: dict[str, str] = field(default_factory=dict)

    @property
    def node_name(self) -> str:
        return (self.hostname_override or socket.gethostname()).lower()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bootstrap-kubelet",
        description="The node agent: runs the pods bound to this node through the CRI.")
    add_version_flag(p)
    a = p.add_argument
    a("--kubeconfig", help="kubeconfig of the kubelet's API identity "
                           "(written by TLS bootstrap when missing)")
    a("--bootstrap-kubeconfig", help="kubeconfig with a bootstrap token, for TLS bootstrap")
    a("--config", dest="config_file", help="KubeletConfiguration file")
    a("--container-runtime-endpoint", dest="runtime_endpoint")
    a("--node-ip", help="the IP the node advertises (InternalIP)")
    a("--hostname-override", help="the node name (default: the hostname)")
    a("--root-dir", help="kubelet state directory (default /var/lib/kubelet)")
    a("--cert-dir", help="where TLS bootstrap keeps its certificates "
                         "(default <root-dir>/pki)")
    a("--pod-cidr", help="pod CIDR when the controller manager does not allocate one")
    a("--node-labels", help="labels to register the node with (k=v,k2=v2)")
    a("-v", "--v", dest="verbosity", type=int, help="log verbosity")
    return p


def _where(path: str, key: str) -> str:
    return f"{path}: {key}"


def _duration(path: str, key: str, value) -> float:
    try:
        return parse_duration(str(value)).total_seconds()
    except ValueError as exc:
        raise UserError(f"invalid duration {value!r}: {exc}", where=_where(path, key),
                        hint="use Go syntax such as 10s, 1m0s") from None


def _bool(path: str, key: str, value) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"expected true or false, got {value!r}", where=_where(path, key))
    return value


def _int(path: str, key: str, value, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"expected an integer >= {minimum}, got {value!r}",
                        where=_where(path, key))
    return value


def _apply_file(cfg: KubeletConfig, path: str) -> None:
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise UserError(f"cannot read the kubelet config file: {exc.strerror}",
                        where=f"--config {path}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"not valid YAML: {str(exc).splitlines()[0]}",
                        where=f"--config {path}") from None
    if not isinstance(doc, dict):
        raise UserError("expected a KubeletConfiguration mapping", where=f"--config {path}")
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != KIND:
        raise UserError(f"expected apiVersion {API_VERSION} and kind {KIND}, got "
                        f"{doc.get('apiVersion')!r} {doc.get('kind')!r}", where=path)
    known = set(_FIELDS) | {"apiVersion", "kind", "authentication", "authorization",
                            "evictionHard"}
    for key in doc:
        if key not in known:
            raise UserError(f'unknown field "{key}"', where=path,
                            hint="see docs/kubelet.md for the supported fields")
    for key, (attr, conv) in _FIELDS.items():
        if key in doc and doc[key] is not None:
            setattr(cfg, attr, conv(path, key, doc[key]))
    authn = doc.get("authentication") or {}
    if authn:
        x509 = authn.get("x509") or {}
        if x509.get("clientCAFile"):
            cfg.client_ca_file = str(x509["clientCAFile"])
        if "enabled" in (authn.get("webhook") or {}):
            cfg.webhook_authn = _bool(path, "authentication.webhook.enabled",
                                      authn["webhook"]["enabled"])
        if "enabled" in (authn.get("anonymous") or {}):
            cfg.anonymous_auth = _bool(path, "authentication.anonymous.enabled",
                                       authn["anonymous"]["enabled"])
    authz = doc.get("authorization") or {}
    if "mode" in authz:
        if authz["mode"] not in ("Webhook", "AlwaysAllow"):
            raise UserError(f"authorization.mode must be Webhook or AlwaysAllow, got "
                            f"{authz['mode']!r}", where=path)
        cfg.authorization_mode = authz["mode"]
    if "evictionHard" in doc:
        eh = doc["evictionHard"]
        if not isinstance(eh, dict) or not all(isinstance(v, str) for v in eh.values()):
            raise UserError("evictionHard must map signals to quantities or percentages",
                            where=_where(path, "evictionHard"))
        unknown = set(eh) - set(EVICTION_SIGNALS)
        if unknown:
            raise UserError(f"unsupported eviction signal(s) {', '.join(sorted(unknown))}",
                            where=_where(path, "evictionHard"),
                            hint="supported: " + ", ".join(EVICTION_SIGNALS))
        cfg.eviction_hard = dict(eh)


EVICTION_SIGNALS = ("memory.available", "nodefs.available", "imagefs.available",
                    "nodefs.inodesFree", "pid.available")


def _str(path, key, value) -> str:
    if not isinstance(value, str):
        raise UserError(f"expected a string, got {value!r}", where=_where(path, key))
    return value


def _ips(path, key, value) -> list[str]:
    if not isinstance(value, list):
        raise UserError("expected a list of IP addresses", where=_where(path, key))
    for v in value:
        try:
            ipaddress.ip_address(str(v))
        except ValueError:
            raise UserError(f"{v!r} is not an IP address", where=_where(path, key)) from None
    return [str(v) for v in value]


def _driver(path, key, value) -> str:
    if value not in ("cgroupfs", "systemd"):
        raise UserError(f"cgroupDriver must be cgroupfs or systemd, got {value!r}",
                        where=_where(path, key))
    return value


def _cidr(path, key, value) -> str:
    try:
        return str(ipaddress.ip_network(str(value), strict=True))
    except ValueError as exc:
        raise UserError(f"invalid CIDR {value!r}: {exc}", where=_where(path, key)) from None


def _port(path, key, value) -> int:
    v = _int(path, key, value)
    if v > 65535:
        raise UserError(f"port out of range: {v}", where=_where(path, key))
    return v


# file key -> (attribute, converter)
_FIELDS = {
    "clusterDNS": ("cluster_dns", _ips),
    "clusterDomain": ("cluster_domain", _str),
    "staticPodPath": ("static_pod_path", _str),
    "cgroupDriver": ("cgroup_driver", _driver),
    "rotateCertificates": ("rotate_certificates", _bool),
    "serverTLSBootstrap": ("server_tls_bootstrap", _bool),
    "maxPods": ("max_pods", lambda p, k, v: _int(p, k, v, 1)),
    "podCIDR": ("pod_cidr", _cidr),
    "syncFrequency": ("sync_frequency", _duration),
    "nodeStatusUpdateFrequency": ("node_status_update_frequency", _duration),
    "nodeStatusReportFrequency": ("node_status_report_frequency", _duration),
    "nodeLeaseDurationSeconds": ("node_lease_duration_seconds",
                                 lambda p, k, v: _int(p, k, v, 1)),
    "fileCheckFrequency": ("file_check_frequency", _duration),
    "address": ("address", _str),
    "port": ("port", _port),
    "readOnlyPort": ("read_only_port", _port),
    "healthzPort": ("healthz_port", _port),
    "healthzBindAddress": ("healthz_bind_address", _str),
    "tlsCertFile": ("tls_cert_file", _str),
    "tlsPrivateKeyFile": ("tls_private_key_file", _str),
    "resolvConf": ("resolv_conf", _str),
    "containerRuntimeEndpoint": ("runtime_endpoint", _str),
    "podLogsDir": ("pod_log_root", _str),
    "registerNode": ("register_node", _bool),
}


def load(argv: list[str] | None = None) -> KubeletConfig:
    args = parser().parse_args(argv)
    cfg = KubeletConfig()
    if args.config_file:
        cfg.config_file = args.config_file
        _apply_file(cfg, args.config_file)
    for attr in ("kubeconfig", "bootstrap_kubeconfig", "runtime_endpoint", "node_ip",
                 "hostname_override", "root_dir", "cert_dir", "verbosity"):
        value = getattr(args, attr)
        if value is not None:
            setattr(cfg, attr, value)
    if args.cert_dir is None:
        cfg.cert_dir = str(Path(cfg.root_dir) / "pki")
    if args.pod_cidr:
        cfg.pod_cidr = _cidr("--pod-cidr", "", args.pod_cidr)
    if args.node_labels:
        for item in args.node_labels.split(","):
            k, sep, v = item.partition("=")
            if not sep or not k:
                raise UserError(f"expected key=value, got {item!r}", where="--node-labels")
            cfg.node_labels[k.strip()] = v.strip()
    if cfg.node_ip:
        try:
            ipaddress.ip_address(cfg.node_ip)
        except ValueError:
            raise UserError(f"{cfg.node_ip!r} is not an IP address", where="--node-ip",
                            hint="give the address other nodes reach this one at") from None
    if not cfg.runtime_endpoint.startswith(("unix://", "/")):
        raise UserError(f"unsupported endpoint {cfg.runtime_endpoint!r}",
                        where="--container-runtime-endpoint",
                        hint="use unix:///run/containerd/containerd.sock")
    if cfg.authorization_mode == "Webhook" and not cfg.client_ca_file and \
            not cfg.webhook_authn:
        raise UserError("authorization mode Webhook needs an authenticator",
                        where=cfg.config_file or "config",
                        hint="set authentication.x509.clientCAFile or webhook.enabled")
    if cfg.read_only_port:
        raise UserError(f"readOnlyPort {cfg.read_only_port} is not supported (an "
                        "unauthenticated port)", where=cfg.config_file or "config",
                        hint="set readOnlyPort: 0 and read through :10250")
    if bool(cfg.tls_cert_file) != bool(cfg.tls_private_key_file):
        raise UserError("tlsCertFile and tlsPrivateKeyFile go together",
                        where=cfg.config_file or "config")
    return cfg
