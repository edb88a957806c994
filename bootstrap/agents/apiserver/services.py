"""A Service reference resolved to one ready endpoint address, as the API server dials it.

Admission webhooks and aggregated APIServices name a Service; the API server
connects to a ready address of the Service's EndpointSlices (upstream's
endpoint-routing ServiceResolver), never to the ClusterIP, which only a node's
service proxy makes routable and the API server host need not run one. The TLS
name to verify is ``<service>.<namespace>.svc`` for both.
"""

from __future__ import annotations

from dataclasses import dataclass

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class ResolveError(Exception):
    """Why a Service reference has no endpoint to dial; ``reason`` is upstream's
    APIService condition reason for the same failure."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    server_name: str  # the name the serving certificate must carry

    def url(self, path: str = "/") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}{path}"


async def resolve(store, namespace: str, name: str, port: int) -> Endpoint:
    """The first ready address of ``namespace/name`` on the endpoint port named like
    the Service port ``port``; ResolveError with upstream's reason otherwise."""
    where = f'service/{name} in "{namespace}"'
    service = await store.get("services", namespace, name)
    if service is None:
        raise ResolveError("ServiceNotFound", f"{where} is not present")
    port_name = next((p.get("name", "") for p in (service.get("spec") or {}).get("ports") or []
                      if p.get("port") == port), None)
    if port_name is None:
        raise ResolveError("ServicePortError", f"{where} is not listening on port {port}")
    slices = [s for s in await store.list("endpointslices", namespace)
              if ((s.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL) == name]
    if not slices:
        raise ResolveError("EndpointsNotFound", f"cannot find endpointslices for {where}")
    for slice_ in slices:
        target = next((p.get("port") for p in slice_.get("ports") or []
                       if p.get("name", "") == port_name), None)
        if not target:
            continue
        for ep in slice_.get("endpoints") or []:
            if ep.get("addresses") and (ep.get("conditions") or {}).get("ready") is not False:
                return Endpoint(ep["addresses"][0], target, f"{name}.{namespace}.svc")
    raise ResolveError("MissingEndpoints", f"endpointslices for {where} have no addresses "
                                           f'with port name "{port_name}"')
