"""Typed cluster configuration.

Field names follow kubeadm's v1beta4 ClusterConfiguration (camelCase in YAML,
snake_case here). ``bootstrap.config.cluster`` loads, defaults and validates a
YAML file into these objects; everything else in the toolkit reads only these.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import timedelta

API_VERSION = "bootstrap.dev/v1alpha1"
KIND = "ClusterConfiguration"

ENCRYPTION_ALGORITHMS = ("RSA-2048", "RSA-3072", "RSA-4096", "ECDSA-P256")


@dataclass(frozen=True)
class Networking:
    pod_subnet: str = "10.244.0.0/16"
    service_subnet: str = "10.96.0.0/12"
    dns_domain: str = "cluster.local"

    # Subnets may be dual-stack ("10.96.0.0/12,fd00:10:96::/108", as kubeadm
    # allows); the first one is the primary family. Validated on load.
    @property
    def pod_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(c.strip()) for c in self.pod_subnet.split(","))

    @property
    def service_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(c.strip()) for c in self.service_subnet.split(","))

    @property
    def api_service_ip(self) -> str:
        """The ``kubernetes`` Service's ClusterIP: first address of the primary
        service subnet (kubeadm puts it in the apiserver certificate's SANs)."""
        return str(self.service_networks[0].network_address + 1)


@dataclass(frozen=True)
class LocalEtcd:
    data_dir: str = "/var/lib/etcd"
    extra_args: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExternalEtcd:
    endpoints: tuple[str, ...]
    ca_file: str
    cert_file: str
    key_file: str


@dataclass(frozen=True)
class Etcd:
    # Exactly one of these is set; ``local`` is the default (stacked etcd).
    local: LocalEtcd | None = field(default_factory=LocalEtcd)
    external: ExternalEtcd | None = None


@dataclass(frozen=True)
class APIServer:
    cert_sans: tuple[str, ...] = ()
    extra_args: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ControllerManager:
    # e.g. node-cidr-mask-size (kubespray's kube_network_node_prefix); the
    # controller manager's flags, kubeadm's controllerManager.extraArgs.
    extra_args: dict[str, str] = field(default_factory=dict)

    @property
    def node_cidr_mask_size(self) -> int | None:
        value = self.extra_args.get("node-cidr-mask-size")
        return int(value) if value is not None else None


@dataclass(frozen=True)
class ClusterConfig:
    cluster_name: str = "kubernetes"
    kubernetes_version: str = ""  # empty means "the version of this toolkit's agents"
    control_plane_endpoint: str = ""  # host[:port]; empty means the first control-plane node
    networking: Networking = field(default_factory=Networking)
    etcd: Etcd = field(default_factory=Etcd)
    api_server: APIServer = field(default_factory=APIServer)
    certificate_validity_period: timedelta = timedelta(days=365)
    ca_certificate_validity_period: timedelta = timedelta(days=3650)
    encryption_algorithm: str = "ECDSA-P256"
    controller_manager: ControllerManager = field(default_factory=ControllerManager)
    # kubeadm's certificatesDir: where the PKI lives on every host (kubespray's kube_cert_dir).
    certificates_dir: str = "/etc/kubernetes/pki"
    # The API server's secure port on each control-plane host (kubeadm's
    # InitConfiguration.localAPIEndpoint.bindPort, kubespray's kube_apiserver_port).
    bind_port: int = 6443
    # What the file set that bootstrap does not implement (kubeadm fields), one
    # line each; like ``source``, not part of the YAML nor of equality.
    warnings: tuple[str, ...] = field(default=(), compare=False)
    # Where the file came from, for error messages; not part of the YAML, and
    # not part of equality, so a dumped and re-read config compares equal.
    source: str = field(default="<defaults>", compare=False)
