"""kubeadm's certificate catalogue: names, files, subjects, usages and SANs.

Checked against kubeadm's certlist.go / pki_helpers.go (v1.29+): the
apiserver-kubelet-client is in ``kubeadm:cluster-admins`` (not system:masters),
the etcd client certificates carry no organization, etcd server and peer use
the node name as CN and serve both serverAuth and clientAuth (etcd needs it).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from bootstrap.config.model import ClusterConfig
from bootstrap.errors import UserError
from bootstrap.pki.certs import CLIENT_AUTH, IP, SERVER_AUTH, CertSpec

CLUSTER_ADMINS_GROUP = "kubeadm:cluster-admins"
MASTERS_GROUP = "system:masters"
NODES_GROUP = "system:nodes"


@dataclass(frozen=True)
class Node:
    """The host a per-node certificate is for."""

    name: str
    advertise_address: str

    def ip(self) -> IP:
        try:
            return ipaddress.ip_address(self.advertise_address)
        except ValueError:
            raise UserError(
                f"advertise address {self.advertise_address!r} is not an IP address",
                hint="give the host's IP: --advertise-address, or ip= in the inventory",
            ) from None


@dataclass(frozen=True)
class CertDef:
    name: str           # kubeadm's phase / renew name
    base: str           # file base name under the cert dir
    ca: str | None      # name of the signing CA; None for a CA
    help: str
    etcd: bool = False  # only with local (stacked or bootstrap-managed) etcd
    per_node: bool = False

    @property
    def crt(self) -> str:
        return f"{self.base}.crt"

    @property
    def key(self) -> str:
        return f"{self.base}.key"


CAS: dict[str, CertDef] = {
    d.name: d for d in (
        CertDef("ca", "ca", None, "self-signed Kubernetes CA to provision identities for other Kubernetes components"),
        CertDef("front-proxy-ca", "front-proxy-ca", None, "self-signed CA to provision identities for front proxy"),
        CertDef("etcd-ca", "etcd/ca", None, "self-signed CA to provision identities for etcd", etcd=True),
    )
}

LEAVES: dict[str, CertDef] = {
    d.name: d for d in (
        CertDef("apiserver", "apiserver", "ca", "certificate for serving the Kubernetes API", per_node=True),
        CertDef("apiserver-kubelet-client", "apiserver-kubelet-client", "ca",
                "certificate for the API server to connect to kubelet"),
        CertDef("front-proxy-client", "front-proxy-client", "front-proxy-ca",
                "certificate for the front proxy client"),
        CertDef("etcd-server", "etcd/server", "etcd-ca", "certificate for serving etcd",
                etcd=True, per_node=True),
        CertDef("etcd-peer", "etcd/peer", "etcd-ca",
                "certificate for etcd nodes to communicate with each other", etcd=True, per_node=True),
        CertDef("etcd-healthcheck-client", "etcd/healthcheck-client", "etcd-ca",
                "certificate for liveness probes to healthcheck etcd", etcd=True),
        CertDef("apiserver-etcd-client", "apiserver-etcd-client", "etcd-ca",
                "certificate the apiserver uses to access etcd", etcd=True),
    )
}

ALL: dict[str, CertDef] = {**CAS, **LEAVES}

# kubeadm's order in `init phase certs all`: each CA right before its leaves.
ORDER = ("ca", "apiserver", "apiserver-kubelet-client", "front-proxy-ca", "front-proxy-client",
         "etcd-ca", "etcd-server", "etcd-peer", "etcd-healthcheck-client", "apiserver-etcd-client")

SA_KEY, SA_PUB = "sa.key", "sa.pub"


def cert_def(name: str) -> CertDef:
    try:
        return ALL[name]
    except KeyError:
        raise UserError(
            f"unknown certificate {name!r}", hint="known: " + ", ".join(ORDER)
        ) from None


def ca_spec(name: str) -> CertSpec:
    cn = {"ca": "kubernetes", "front-proxy-ca": "front-proxy-ca", "etcd-ca": "etcd-ca"}[name]
    return CertSpec(common_name=cn, is_ca=True)


def leaf_spec(name: str, config: ClusterConfig, node: Node | None) -> CertSpec:
    """The exact spec kubeadm would use for leaf ``name`` on ``node``."""
    if LEAVES[name].per_node and node is None:
        raise ValueError(f"{name} is a per-node certificate; a node is required")
    if name == "apiserver":
        dns, ips = apiserver_sans(config, node)
        return CertSpec("kube-apiserver", usages=(SERVER_AUTH,), dns_names=dns, ips=ips)
    if name == "apiserver-kubelet-client":
        return CertSpec("kube-apiserver-kubelet-client", organizations=(CLUSTER_ADMINS_GROUP,),
                        usages=(CLIENT_AUTH,))
    if name == "front-proxy-client":
        return CertSpec("front-proxy-client", usages=(CLIENT_AUTH,))
    if name in ("etcd-server", "etcd-peer"):
        dns, ips = etcd_sans(node)
        return CertSpec(node.name, usages=(SERVER_AUTH, CLIENT_AUTH), dns_names=dns, ips=ips)
    if name == "etcd-healthcheck-client":
        return CertSpec("kube-etcd-healthcheck-client", usages=(CLIENT_AUTH,))
    if name == "apiserver-etcd-client":
        return CertSpec("kube-apiserver-etcd-client", usages=(CLIENT_AUTH,))
    raise KeyError(name)


def first_service_ip(service_subnet: str) -> IP:
    # Dual-stack subnets are "v4,v6"; the first one is the primary family.
    primary = service_subnet.split(",")[0].strip()
    try:
        net = ipaddress.ip_network(primary, strict=False)
    except ValueError:
        raise UserError(f"networking.serviceSubnet {service_subnet!r} is not a CIDR") from None
    return net.network_address + 1


def split_host_port(endpoint: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address."""
    if endpoint.startswith("["):
        host, _, rest = endpoint[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif endpoint.count(":") == 1:
        host, port = endpoint.split(":")
    else:
        host, port = endpoint, ""
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise UserError(f"controlPlaneEndpoint {endpoint!r} has an invalid port")
    if not host:
        raise UserError(f"controlPlaneEndpoint {endpoint!r} has no host")
    return host, int(port) if port else None


def _split_names(names) -> tuple[list[str], list[IP]]:
    dns, ips = [], []
    for n in names:
        try:
            ips.append(ipaddress.ip_address(n))
        except ValueError:
            dns.append(n)
    return dns, ips


def apiserver_sans(config: ClusterConfig, node: Node) -> tuple[tuple[str, ...], tuple[IP, ...]]:
    dns = [node.name, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
           f"kubernetes.default.svc.{config.networking.dns_domain}"]
    ips = [first_service_ip(config.networking.service_subnet), node.ip()]
    extra = list(config.api_server.cert_sans)
    if config.control_plane_endpoint:
        extra.insert(0, split_host_port(config.control_plane_endpoint)[0])
    more_dns, more_ips = _split_names(extra)
    return tuple(dict.fromkeys(dns + more_dns)), tuple(dict.fromkeys(ips + more_ips))


def etcd_sans(node: Node) -> tuple[tuple[str, ...], tuple[IP, ...]]:
    ips = [node.ip(), ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    return (node.name, "localhost"), tuple(dict.fromkeys(ips))


def wants_local_etcd(config: ClusterConfig) -> bool:
    return config.etcd.external is None
