"""This DNS server as an endpoint of the selector-less kube-dns Service
(docs/adr/0006-cluster-dns-packaging.md).

Each instance owns one EndpointSlice, ``<service>-<node>``, labelled
``endpointslice.kubernetes.io/managed-by: bootstrap-dns`` so the endpointslice
controller leaves it alone; kube-proxy reads it like any other slice and DNATs
the Service IP to every ready instance. The endpoint is ready only once the
informers have synced, and the slice is deleted on a clean stop.
"""

from __future__ import annotations

from bootstrap.api.errors import APIError

SERVICES = ("", "v1", "services")
SLICES = ("discovery.k8s.io", "v1", "endpointslices")
FIELD_MANAGER = "bootstrap-dns"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"


def service_ports(dns_port: int = 53, metrics_port: int = 9153) -> list[dict]:
    return [{"name": "dns", "port": dns_port, "protocol": "UDP"},
            {"name": "dns-tcp", "port": dns_port, "protocol": "TCP"},
            {"name": "metrics", "port": metrics_port, "protocol": "TCP"}]


def kube_dns_service(namespace: str, name: str, cluster_ip: str) -> dict:
    """kubeadm's kube-dns Service, minus the selector (no pods back it here)."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"k8s-app": "kube-dns",
                                    "kubernetes.io/cluster-service": "true",
                                    "kubernetes.io/name": "CoreDNS"}},
            "spec": {"clusterIP": cluster_ip,
                     "ports": [{**p, "targetPort": 53 if p["name"] != "metrics" else 9153}
                               for p in service_ports()]}}


def endpoint_slice(namespace: str, service: str, node: str, ip: str, ready: bool,
                   dns_port: int = 53, metrics_port: int = 9153) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": slice_name(service, node), "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": service,
                                    MANAGED_BY: FIELD_MANAGER}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "nodeName": node,
                           "conditions": {"ready": ready, "serving": ready,
                                          "terminating": False}}],
            "ports": service_ports(dns_port, metrics_port)}


def slice_name(service: str, node: str) -> str:
    return f"{service}-{node}"[:253]


class Registration:
    def __init__(self, client, namespace: str, service: str, node: str, ip: str, *,
                 cluster_ip: str = "", dns_port: int = 53, metrics_port: int = 9153):
        self.client = client
        self.namespace, self.service, self.node, self.ip = namespace, service, node, ip
        self.cluster_ip = cluster_ip
        self.dns_port, self.metrics_port = dns_port, metrics_port

    async def ensure_service(self) -> None:
        if not self.cluster_ip:
            return
        await self.client.patch(SERVICES, self.service,
                                kube_dns_service(self.namespace, self.service, self.cluster_ip),
                                self.namespace, patch_type="apply",
                                field_manager=FIELD_MANAGER, force=True)

    async def publish(self, ready: bool) -> None:
        body = endpoint_slice(self.namespace, self.service, self.node, self.ip, ready,
                              self.dns_port, self.metrics_port)
        await self.client.patch(SLICES, body["metadata"]["name"], body, self.namespace,
                                patch_type="apply", field_manager=FIELD_MANAGER, force=True)

    async def withdraw(self) -> None:
        try:
            await self.client.delete(SLICES, slice_name(self.service, self.node), self.namespace)
        except APIError as exc:
            if exc.code != 404:
                raise
