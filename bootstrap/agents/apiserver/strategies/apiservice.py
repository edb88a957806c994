"""apiregistration.k8s.io/v1 APIService: kube-aggregator's defaulting and validation."""

from __future__ import annotations

import base64
import binascii

from bootstrap.api import errors, schema
from bootstrap.api.errors import FieldError, invalid_value, not_supported, required
from bootstrap.api.validation import dns1035_label, dns1123_subdomain, path_segment_name

from .kinds import StatusOwned

_CONDITION_STATUSES = ["True", "False", "Unknown"]


def apiservice_errors(obj: dict) -> list[FieldError]:
    """upstream's ValidateAPIService (k8s.io/kube-aggregator .../validation)."""
    spec = obj.get("spec") or {}
    group, version = spec.get("group") or "", spec.get("version") or ""
    name = (obj.get("metadata") or {}).get("name") or ""
    wanted = f"{version}.{group}"
    out: list[FieldError] = []
    if name:
        msgs = path_segment_name(name) or (
            [] if name == wanted else [f'must be `spec.version+"."+spec.group`: "{wanted}"'])
        out.extend(invalid_value("metadata.name", name, m) for m in msgs)
    if not group and version != "v1":
        out.append(required("spec.group",
                            "only v1 may have an empty group and it better be legacy kube"))
    if group:
        out.extend(invalid_value("spec.group", group, m) for m in dns1123_subdomain(group))
    out.extend(invalid_value("spec.version", version, m) for m in dns1035_label(version))
    gpm, vp = spec.get("groupPriorityMinimum") or 0, spec.get("versionPriority") or 0
    if not 0 < gpm <= 20000:
        out.append(invalid_value("spec.groupPriorityMinimum", gpm,
                                 "must be positive and less than 20000"))
    if not 0 < vp <= 1000:
        out.append(invalid_value("spec.versionPriority", vp, "must be positive and less than 1000"))
    ca = spec.get("caBundle") or ""
    insecure = bool(spec.get("insecureSkipTLSVerify"))
    service = spec.get("service")
    if service is None:
        if ca:
            out.append(invalid_value("spec.caBundle", f"{_bundle_size(ca)} bytes",
                                     "local APIServices may not have a caBundle"))
        if insecure:
            out.append(invalid_value("spec.insecureSkipTLSVerify", insecure,
                                     "local APIServices may not have insecureSkipTLSVerify"))
        return out
    if not service.get("namespace"):
        out.append(required("spec.service.namespace"))
    if not service.get("name"):
        out.append(required("spec.service.name"))
    port = service.get("port")
    if port is not None and not 1 <= port <= 65535:
        out.append(invalid_value("spec.service.port", port,
                                 "must be between 1 and 65535, inclusive"))
    if insecure and ca:
        out.append(invalid_value("spec.insecureSkipTLSVerify", insecure,
                                 "may not be true if caBundle is present"))
    return out


def _bundle_size(ca: str) -> int:
    try:
        return len(base64.b64decode(ca, validate=True))
    except (binascii.Error, ValueError):
        return len(ca)


def status_errors(obj: dict) -> list[FieldError]:
    out: list[FieldError] = []
    for i, c in enumerate((obj.get("status") or {}).get("conditions") or []):
        if c.get("status") not in _CONDITION_STATUSES:
            out.append(not_supported(f"status.conditions[{i}].status", c.get("status"),
                                     _CONDITION_STATUSES))
    return out


class APIServiceStrategy(StatusOwned):
    def apply_defaults(self, obj: dict) -> None:
        super().apply_defaults(obj)
        service = (obj.get("spec") or {}).get("service")
        if isinstance(service, dict) and service.get("port") is None:
            service["port"] = 443  # SetDefaults_ServiceReference

    def _check(self, obj: dict, causes: list[FieldError]) -> None:
        if causes:
            raise errors.invalid(self.res.kind, (obj.get("metadata") or {}).get("name", ""),
                                 causes, self.res.group)

    def validate(self, obj: dict) -> None:
        schema.validate_object(obj, self.res.gvk)
        self._check(obj, apiservice_errors(obj) + status_errors(obj))

    def validate_update(self, new: dict, old: dict) -> None:
        super().validate_update(new, old)
        self._check(new, apiservice_errors(new) + status_errors(new))
