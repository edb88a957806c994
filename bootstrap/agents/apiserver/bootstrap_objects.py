"""Objects every cluster has, created at start when absent (idempotent, race-safe).

System namespaces, the default RBAC policy, and the ``default/kubernetes``
Service (its Endpoints and EndpointSlice are endpoints.py's), the system
PriorityClasses, and kube-system/extension-apiserver-authentication (authtrust.py,
kept in step with the flags). Creates that race
with another server end in AlreadyExists, which is the same outcome.
"""

from __future__ import annotations

import logging

from bootstrap.api import errors
from bootstrap.api.resources import by_gvr
from bootstrap.api.validation_kinds import SYSTEM_PRIORITY_CLASSES

from . import authtrust
from .auth.defaults import AUTOUPDATE, default_rbac_objects

log = logging.getLogger(__name__)

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


async def _create_absent(server, res, obj: dict) -> None:
    ns = obj["metadata"].get("namespace")
    if server.store.cache(res).get(res.key(ns, obj["metadata"]["name"])) is not None:
        return
    try:
        await server.registry.create(res, ns, obj, server.system_ctx())
    except errors.APIError as exc:
        if exc.code != 409:  # another API server created it first: same outcome
            raise


async def ensure(server) -> None:
    namespaces = by_gvr("", "v1", "namespaces")
    for name in SYSTEM_NAMESPACES:
        await _create_absent(server, namespaces, {"metadata": {"name": name}})
    for obj in default_rbac_objects():
        group, _, version = obj["apiVersion"].rpartition("/")
        plural = {"ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings",
                  "Role": "roles", "RoleBinding": "rolebindings"}[obj["kind"]]
        obj["metadata"].setdefault("annotations", {}).setdefault(AUTOUPDATE, "true")
        await _create_absent(server, by_gvr(group, version, plural), obj)
    await _kubernetes_service(server)
    priority_classes = by_gvr("scheduling.k8s.io", "v1", "priorityclasses")
    for pc in SYSTEM_PRIORITY_CLASSES:
        await _create_absent(server, priority_classes, {
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": pc["name"]}, "value": pc["value"],
            "globalDefault": pc["globalDefault"], "description": pc["description"]})
    await authtrust.publish(server)


async def _kubernetes_service(server) -> None:
    services = by_gvr("", "v1", "services")
    await _create_absent(server, services, {
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": server.allocator.kubernetes_ip,
                 "sessionAffinity": "None",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                            "targetPort": server.cfg.secure_port}]}})
