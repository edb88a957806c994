"""What the control-plane, kubelet, kube-proxy and haproxy roles need, from the cluster config.

Pure functions (no connections), shared by the host-local ``init``/``join``
phases and by ``cluster up``, so the flags a unit gets and the endpoint a
node talks to are decided in one place:

* the API endpoint: an external load balancer from the inventory
  (kubespray's ``loadbalancer_apiserver: {address, port}``), else with several
  control-plane hosts kubespray's localhost load balancer (haproxy on every
  node that is not control plane, 127.0.0.1:``loadbalancer_apiserver_port``
  (6443 unless set), and the API servers' certificates name 127.0.0.1 and
  localhost), else the one control-plane host's address;
* the API servers' own port, the cluster config's ``bind_port`` (kubeadm's
  localAPIEndpoint.bindPort, kubespray's ``kube_apiserver_port``): what they
  listen on, what the balancers forward to, and the port of an endpoint that
  names none, as kubespray's ``loadbalancer_apiserver.port | default(kube_apiserver_port)``;
* the kube-dns Service IP: the tenth address of the service subnet, as kubeadm.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import sys
from dataclasses import dataclass

from bootstrap.config.model import APIServer, ClusterConfig, Etcd, ExternalEtcd
from bootstrap.errors import UserError
from bootstrap.flows import versions

# kube-apiserver's default secure port, and kubespray's loadbalancer_apiserver_port
# default; a cluster's API servers listen on its ClusterConfig.bind_port.
API_PORT = 6443
LOCAL_LB_ADDRESS = "127.0.0.1"
PKI = "/etc/kubernetes/pki"
LOCAL_ETCD = "https://127.0.0.1:2379"


def cluster_dns_ip(config: ClusterConfig) -> str:
    """kubeadm's DNS Service IP: the tenth address of the (primary) service subnet."""
    net = config.networking.service_networks[0]
    return str(net.network_address + 10)


@dataclass(frozen=True)
class Endpoint:
    """How nodes reach the API servers."""

    mode: str  # "external-lb" | "localhost-lb" | "single"
    host: str
    port: int

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.address}"


def api_endpoint(inventory, bind_port: int = API_PORT) -> Endpoint:
    """``bind_port``: the API servers' port (ClusterConfig.bind_port)."""
    lb = _inventory_var(inventory, "loadbalancer_apiserver")
    if lb:
        if not isinstance(lb, dict) or not lb.get("address"):
            raise UserError("loadbalancer_apiserver needs an address (and optionally a port)",
                            where=str(inventory.path),
                            hint="e.g. loadbalancer_apiserver: {address: 10.0.0.10, port: 6443}")
        try:
            port = int(lb.get("port") or bind_port)
        except (TypeError, ValueError):
            raise UserError(f"loadbalancer_apiserver.port {lb.get('port')!r} is not a number",
                            where=str(inventory.path)) from None
        return Endpoint("external-lb", str(lb["address"]), port)
    cps = list(inventory.control_plane)
    if not cps:
        raise UserError("no kube_control_plane hosts", where=str(inventory.path),
                        hint="put at least one host in the kube_control_plane group")
    if len(cps) > 1:
        # The balancer's own port, distinct from the API servers' (as kubespray).
        port = int(_inventory_var(inventory, "loadbalancer_apiserver_port") or API_PORT)
        return Endpoint("localhost-lb", LOCAL_LB_ADDRESS, port)
    return Endpoint("single", cps[0].node_ip, bind_port)


def _inventory_var(inventory, name: str):
    """A cluster-wide inventory variable (group_vars), as the first host sees it."""
    for host in inventory.hosts:
        value = inventory.vars_for(host).get(name)
        if value not in (None, ""):
            return value
    return None


def host_config(config: ClusterConfig, inventory, endpoint: Endpoint) -> ClusterConfig:
    """The cluster config ``bootstrap init``/``join`` get on the hosts.

    controlPlaneEndpoint is the endpoint; the load balancer's names are in the
    API server certificates' SANs. Unless every control-plane host runs a member
    and the members are exactly those hosts (stacked: each API server uses its
    own at 127.0.0.1), the API servers use the whole member list as kubeadm's
    external etcd (the certificates cluster up copied): etcd on its own hosts,
    or mixed (members on some control-plane hosts and on workers, as in
    kubespray's inventory example), where cluster up's etcd stage runs them all.
    """
    sans = list(config.api_server.cert_sans)
    if endpoint.mode == "localhost-lb":
        sans += [LOCAL_LB_ADDRESS, "localhost"]
    elif endpoint.mode == "external-lb":
        sans.append(endpoint.host)
    out = dataclasses.replace(
        config, control_plane_endpoint=endpoint.address,
        api_server=APIServer(cert_sans=tuple(dict.fromkeys(sans)),
                             extra_args=dict(config.api_server.extra_args)))
    if config.etcd.local is not None and inventory.topology != "stacked":
        from bootstrap.flows.plan import etcd_nodes

        out = dataclasses.replace(out, etcd=Etcd(local=None, external=ExternalEtcd(
            endpoints=tuple(n.client_url for n in etcd_nodes(inventory)),
            ca_file=f"{PKI}/etcd/ca.crt", cert_file=f"{PKI}/apiserver-etcd-client.crt",
            key_file=f"{PKI}/apiserver-etcd-client.key")))
    return out


def running_agents_bin(prefix: str | None = None) -> str:
    """The agents' bin dir of the install this toolkit runs from, when it runs from
    one (/opt/bootstrap/<version>, also through /opt/bootstrap/current): units name
    their install, so an upgrade moves them one at a time and a later init/join
    from the same install rewrites nothing. Elsewhere (a checkout): current."""
    real = os.path.realpath(prefix or sys.prefix)
    if os.path.dirname(real) == versions.PREFIX and os.path.basename(real) != "current":
        return f"{real}/bin"
    return f"{versions.PREFIX}/current/bin"


def control_plane_vars(config: ClusterConfig, advertise_address: str) -> dict:
    """Vars of roles/control-plane for one host."""
    net = config.networking
    out = {
        "agents_bin": running_agents_bin(),
        "cluster_name": config.cluster_name,
        "apiserver_advertise_address": advertise_address,
        "service_subnet": net.service_subnet,
        "pod_subnet": net.pod_subnet,
        "dns_domain": net.dns_domain,
        "apiserver_service_account_issuer": f"https://kubernetes.default.svc.{net.dns_domain}",
        "apiserver_extra_args": dict(config.api_server.extra_args),
        "apiserver_port": config.bind_port,
    }
    cm = getattr(config, "controller_manager", None)
    if cm is not None:
        args = dict(cm.extra_args)
        # A flag the unit already sets from its own variable, not twice.
        if "node-cidr-mask-size" in args:
            out["node_cidr_mask_size"] = int(args.pop("node-cidr-mask-size"))
        out["controller_manager_extra_args"] = args
    ext = config.etcd.external
    if ext is not None:
        out.update(apiserver_etcd_servers=list(ext.endpoints), apiserver_etcd_cafile=ext.ca_file,
                   apiserver_etcd_certfile=ext.cert_file, apiserver_etcd_keyfile=ext.key_file)
    else:
        out["apiserver_etcd_servers"] = [LOCAL_ETCD]
    return out


def node_vars(config: ClusterConfig, node_name: str, node_ip: str) -> dict:
    """Vars of roles/kubelet and roles/kube-proxy for one host."""
    net = config.networking
    return {
        "agents_bin": running_agents_bin(),
        "cluster_name": config.cluster_name,
        "kubelet_hostname": node_name,
        "kube_proxy_hostname": node_name,
        "kubelet_node_ip": node_ip,
        "cluster_dns": cluster_dns_ip(config),
        "dns_domain": net.dns_domain,
        "pod_subnet": net.pod_subnet,
    }


def lb_servers(inventory, bind_port: int = API_PORT) -> list[dict]:
    """The balancers' backends: every API server on its bind port."""
    return [{"name": h.name, "address": h.node_ip, "port": bind_port}
            for h in inventory.control_plane]


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
