"""The API objects a pod spec references, as upstream's podutil.VisitPod*Names.

NodeRestriction uses these to keep a kubelet from creating a mirror pod that would
give it a Secret, ConfigMap or claim it has no other way to read.
"""

from __future__ import annotations

from collections.abc import Iterator

# Volume sources that name a Secret through a nested reference, as upstream visits them.
_SECRET_REF_SOURCES = ("cephfs", "cinder", "flexVolume", "iscsi", "rbd", "scaleIO",
                       "storageos")


def _containers(spec: dict) -> Iterator[dict]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict):
                yield c


def _dicts(values) -> Iterator[dict]:
    for v in values or []:
        if isinstance(v, dict):
            yield v


def secret_names(pod: dict) -> list[str]:
    spec = pod.get("spec") or {}
    names = [s.get("name", "") for s in _dicts(spec.get("imagePullSecrets"))]
    for c in _containers(spec):
        for env in _dicts(c.get("env")):
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                names.append(ref.get("name", ""))
        for src in _dicts(c.get("envFrom")):
            if src.get("secretRef"):
                names.append(src["secretRef"].get("name", ""))
    for vol in _dicts(spec.get("volumes")):
        if vol.get("secret"):
            names.append(vol["secret"].get("secretName", ""))
        for src in _dicts((vol.get("projected") or {}).get("sources")):
            if src.get("secret"):
                names.append(src["secret"].get("name", ""))
        for key in _SECRET_REF_SOURCES:
            ref = (vol.get(key) or {}).get("secretRef")
            if ref:
                names.append(ref.get("name", ""))
        if vol.get("azureFile"):
            names.append(vol["azureFile"].get("secretName", ""))
        ref = (vol.get("csi") or {}).get("nodePublishSecretRef")
        if ref:
            names.append(ref.get("name", ""))
    return names


def configmap_names(pod: dict) -> list[str]:
    spec = pod.get("spec") or {}
    names = []
    for c in _containers(spec):
        for env in _dicts(c.get("env")):
            ref = (env.get("valueFrom") or {}).get("configMapKeyRef")
            if ref:
                names.append(ref.get("name", ""))
        for src in _dicts(c.get("envFrom")):
            if src.get("configMapRef"):
                names.append(src["configMapRef"].get("name", ""))
    for vol in _dicts(spec.get("volumes")):
        if vol.get("configMap"):
            names.append(vol["configMap"].get("name", ""))
        for src in _dicts((vol.get("projected") or {}).get("sources")):
            if src.get("configMap"):
                names.append(src["configMap"].get("name", ""))
    return names


def claims_volumes(pod: dict) -> bool:
    """True when a volume is a PersistentVolumeClaim or a generic ephemeral one."""
    return any(vol.get("persistentVolumeClaim") or vol.get("ephemeral")
               for vol in _dicts((pod.get("spec") or {}).get("volumes")))


def projects_service_account_token(pod: dict) -> bool:
    return any(src.get("serviceAccountToken")
               for vol in _dicts((pod.get("spec") or {}).get("volumes"))
               for src in _dicts((vol.get("projected") or {}).get("sources")))
