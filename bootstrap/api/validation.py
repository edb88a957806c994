"""Semantic validation the JSON schema cannot express: names, labels, per-kind
rules and immutable fields. Messages follow apimachinery's validation package
(field paths like ``spec.containers[0].image: Required value``)."""

from __future__ import annotations

import re
from collections.abc import Callable

from bootstrap.api.errors import (
    FieldError,
    duplicate,
    forbidden_field,
    invalid_value,
    not_supported,
    required,
    too_long,
)

GVK = tuple[str, str, str]

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
_LABEL_FMT = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN_FMT = _LABEL_FMT + r"(\." + _LABEL_FMT + r")*"
_DNS1035_FMT = r"[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_NAME_FMT = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT = "(" + _QUALIFIED_NAME_FMT + ")?"
_CONFIG_KEY_FMT = r"[-._a-zA-Z0-9]+"

_LABEL_RE = re.compile(f"^{_LABEL_FMT}$")
_SUBDOMAIN_RE = re.compile(f"^{_SUBDOMAIN_FMT}$")
_DNS1035_RE = re.compile(f"^{_DNS1035_FMT}$")
_QUALIFIED_RE = re.compile(f"^{_QUALIFIED_NAME_FMT}$")
_LABEL_VALUE_RE = re.compile(f"^{_LABEL_VALUE_FMT}$")
_CONFIG_KEY_RE = re.compile(f"^{_CONFIG_KEY_FMT}$")

TOTAL_ANNOTATION_SIZE = 256 * 1024


# ------------------------------------------------------------- string formats

def dns1123_label(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_LABEL_MAX:
        errs.append(f"must be no more than {DNS1123_LABEL_MAX} characters")
    if not _LABEL_RE.match(value):
        errs.append("a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                    "or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  "
                    f"or '123-abc', regex used for validation is '{_LABEL_FMT}')")
    return errs


def dns1123_subdomain(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(f"must be no more than {DNS1123_SUBDOMAIN_MAX} characters")
    if not _SUBDOMAIN_RE.match(value):
        errs.append("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                    "characters, '-' or '.', and must start and end with an alphanumeric character "
                    f"(e.g. 'example.com', regex used for validation is '{_SUBDOMAIN_FMT}')")
    return errs


def dns1035_label(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_LABEL_MAX:
        errs.append(f"must be no more than {DNS1123_LABEL_MAX} characters")
    if not _DNS1035_RE.match(value):
        errs.append("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                    "start with an alphabetic character, and end with an alphanumeric character "
                    f"(e.g. 'my-name',  or 'abc-123', regex used for validation is '{_DNS1035_FMT}')")
    return errs


def path_segment_name(value: str) -> list[str]:
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    for bad in ("/", "%"):
        if bad in value:
            return [f"may not contain '{bad}'"]
    return []


def no_name_check(value: str) -> list[str]:
    return []


def qualified_name(value: str) -> list[str]:
    """Label/annotation key: optional DNS subdomain prefix + '/' + name (<= 63)."""
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
        errs = []
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs = ["prefix part must be non-empty"]
        else:
            errs = ["prefix part " + e for e in dns1123_subdomain(prefix)]
    else:
        return ["a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must "
                "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
                f"'123-abc', regex used for validation is '{_QUALIFIED_NAME_FMT}') with an optional "
                "DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    if name and not _QUALIFIED_RE.match(name):
        errs.append("name part must consist of alphanumeric characters, '-', '_' or '.', and must "
                    "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
                    f"'123-abc', regex used for validation is '{_QUALIFIED_NAME_FMT}')")
    return errs


def label_value(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _LABEL_VALUE_RE.match(value):
        errs.append("a valid label must be an empty string or consist of alphanumeric characters, "
                    "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
                    f"'MyValue',  or 'my_value',  or '12345', regex used for validation is '{_LABEL_VALUE_FMT}')")
    return errs


def config_map_key(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(f"must be no more than {DNS1123_SUBDOMAIN_MAX} characters")
    if not _CONFIG_KEY_RE.match(value):
        errs.append("a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
                    f"(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '{_CONFIG_KEY_FMT}')")
    if value in (".", ".."):
        errs.append(f"must not be '{value}'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def validate_labels(labels: dict | None, path: str) -> list[FieldError]:
    out: list[FieldError] = []
    for k, v in (labels or {}).items():
        for msg in qualified_name(k):
            out.append(invalid_value(path, k, msg))
        if not isinstance(v, str):
            out.append(invalid_value(path, v, "label values must be strings"))
            continue
        for msg in label_value(v):
            out.append(invalid_value(f"{path}", v, msg))
    return out


def validate_annotations(ann: dict | None, path: str) -> list[FieldError]:
    out: list[FieldError] = []
    total = 0
    for k, v in (ann or {}).items():
        for msg in qualified_name(k.lower()):
            out.append(invalid_value(path, k, msg))
        total += len(k) + len(v or "")
    if total > TOTAL_ANNOTATION_SIZE:
        out.append(too_long(path, TOTAL_ANNOTATION_SIZE))
    return out


# ---------------------------------------------------------------- object meta

# Name rule per kind, as upstream registers them (most kinds: DNS-1123 subdomain).
_NAME_RULES: dict[str, Callable[[str], list[str]]] = {
    "Namespace": dns1123_label,
    "Service": dns1035_label,
    "Role": path_segment_name,
    "RoleBinding": path_segment_name,
    "ClusterRole": path_segment_name,
    "ClusterRoleBinding": path_segment_name,
    # Kubelet CSR names carry base64url hashes; upstream accepts any name here.
    "CertificateSigningRequest": no_name_check,
    # <version>.<group>, and "v1." for the core group (kube-aggregator's rule).
    "APIService": path_segment_name,
}

# Kinds whose requests are never stored and carry no meaningful metadata.
VIRTUAL_KINDS = frozenset({
    "SelfSubjectAccessReview", "SubjectAccessReview", "LocalSubjectAccessReview",
    "SelfSubjectRulesReview", "TokenReview", "SelfSubjectReview", "TokenRequest", "Binding",
    "Eviction", "Scale", "DeleteOptions",
})


def validate_meta(obj: dict, kind: str) -> list[FieldError]:
    meta = obj.get("metadata") or {}
    out: list[FieldError] = []
    name = meta.get("name")
    gen = meta.get("generateName")
    rule = _NAME_RULES.get(kind, dns1123_subdomain)
    if not name and not gen:
        out.append(required("metadata.name", "name or generateName is required"))
    elif name:
        out.extend(invalid_value("metadata.name", name, m) for m in rule(name))
    elif gen:
        # generateName is checked as a prefix: a trailing '-' is fine.
        trimmed = gen.rstrip("-") or "a"
        msgs = rule(trimmed) if rule is not dns1123_label else dns1123_label(trimmed[:63])
        out.extend(invalid_value("metadata.generateName", gen, m) for m in msgs)
    ns = meta.get("namespace")
    if ns:
        out.extend(invalid_value("metadata.namespace", ns, m) for m in dns1123_label(ns))
    out.extend(validate_labels(meta.get("labels"), "metadata.labels"))
    out.extend(validate_annotations(meta.get("annotations"), "metadata.annotations"))
    controllers = 0
    for i, ref in enumerate(meta.get("ownerReferences") or []):
        p = f"metadata.ownerReferences[{i}]"
        for key in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(key):
                out.append(required(f"{p}.{key}", f"{key} must not be empty"))
        if ref.get("controller"):
            controllers += 1
    if controllers > 1:
        out.append(invalid_value("metadata.ownerReferences", meta["ownerReferences"],
                                 "Only one reference can have Controller set to true"))
    for i, f in enumerate(meta.get("finalizers") or []):
        if "/" not in f and f not in ("kubernetes", "orphan", "foregroundDeletion",
                                      "customresourcecleanup.apiextensions.k8s.io"):
            out.append(invalid_value(f"metadata.finalizers[{i}]", f,
                                     "name is neither a standard finalizer name nor is it fully qualified"))
        else:
            out.extend(invalid_value(f"metadata.finalizers[{i}]", f, m) for m in qualified_name(f))
    return out


__all__ = [
    "FieldError", "config_map_key", "dns1035_label", "dns1123_label", "dns1123_subdomain",
    "duplicate", "forbidden_field", "label_value", "not_supported", "qualified_name",
    "validate_labels", "validate_meta",
]
