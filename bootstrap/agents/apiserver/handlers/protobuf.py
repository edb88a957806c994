"""Decoding of the protobuf request bodies kubectl's typed clients send.

kubectl sends ``application/vnd.kubernetes.protobuf`` (and accepts JSON back)
for a few commands built on typed clients: ``create namespace|configmap|secret|
serviceaccount|token|role|rolebinding|clusterrole|clusterrolebinding`` and
``auth can-i|whoami``, ``certificate approve|deny``, ``drain`` (Eviction) and
``create deployment|service|job``. Bodies are the ``k8s\\0`` magic plus a runtime.Unknown
envelope around the typed message. We decode just the messages those commands
send, by upstream's field numbers (the ``protobuf:"..."`` tags in k8s.io/api);
anything else is a 415 so the client reports it plainly.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from bootstrap.api import errors

from . import protobuf_workloads as workloads

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

_TIME = {"seconds": (1, "int"), "nanos": (2, "int")}
_OWNER_REF = {"kind": (1, "string"), "name": (3, "string"), "uid": (4, "string"),
              "apiVersion": (5, "string"), "controller": (6, "bool"),
              "blockOwnerDeletion": (7, "bool")}
_OBJECT_META = {
    "name": (1, "string"), "generateName": (2, "string"), "namespace": (3, "string"),
    "uid": (5, "string"), "resourceVersion": (6, "string"), "generation": (7, "int"),
    "creationTimestamp": (8, ("time", _TIME)), "labels": (11, "stringmap"),
    "annotations": (12, "stringmap"), "ownerReferences": (13, ("repeated", _OWNER_REF)),
    "finalizers": (14, "strings"),
}
_RESOURCE_ATTRS = {"namespace": (1, "string"), "verb": (2, "string"), "group": (3, "string"),
                   "version": (4, "string"), "resource": (5, "string"),
                   "subresource": (6, "string"), "name": (7, "string")}
_NON_RESOURCE_ATTRS = {"path": (1, "string"), "verb": (2, "string")}

_POLICY_RULE = {"verbs": (1, "strings"), "apiGroups": (2, "strings"),
                "resources": (3, "strings"), "resourceNames": (4, "strings"),
                "nonResourceURLs": (5, "strings")}
_SUBJECT = {"kind": (1, "string"), "apiGroup": (2, "string"), "name": (3, "string"),
            "namespace": (4, "string")}
_ROLE_REF = {"apiGroup": (1, "string"), "kind": (2, "string"), "name": (3, "string")}
_LABEL_SELECTOR = workloads.LABEL_SELECTOR
_ROLE = {"metadata": (1, _OBJECT_META), "rules": (2, ("repeated", _POLICY_RULE))}
_BINDING = {"metadata": (1, _OBJECT_META), "subjects": (2, ("repeated", _SUBJECT)),
            "roleRef": (3, _ROLE_REF)}
_RBAC = "rbac.authorization.k8s.io/v1"
_CSR_CONDITION = {"type": (1, "string"), "reason": (2, "string"), "message": (3, "string"),
                  "lastUpdateTime": (4, ("time", _TIME)),
                  "lastTransitionTime": (5, ("time", _TIME)), "status": (6, "string")}

MESSAGES: dict[tuple[str, str], dict] = {
    (_RBAC, "Role"): _ROLE,
    (_RBAC, "ClusterRole"): {**_ROLE, "aggregationRule": (3, {
        "clusterRoleSelectors": (1, ("repeated", _LABEL_SELECTOR))})},
    (_RBAC, "RoleBinding"): _BINDING,
    (_RBAC, "ClusterRoleBinding"): _BINDING,
    ("certificates.k8s.io/v1", "CertificateSigningRequest"): {
        "metadata": (1, _OBJECT_META),
        "spec": (2, {"request": (1, "bytes"), "username": (2, "string"), "uid": (3, "string"),
                     "groups": (4, "strings"), "usages": (5, "strings"),
                     "signerName": (7, "string"), "expirationSeconds": (8, "int")}),
        "status": (3, {"conditions": (1, ("repeated", _CSR_CONDITION)),
                       "certificate": (2, "bytes")})},
    ("policy/v1", "Eviction"): {
        "metadata": (1, _OBJECT_META),
        "deleteOptions": (2, {"gracePeriodSeconds": (1, "optint"),
                              "preconditions": (2, {"uid": (1, "string"),
                                                    "resourceVersion": (2, "string")}),
                              "propagationPolicy": (4, "string"), "dryRun": (5, "strings")})},
    ("authentication.k8s.io/v1", "SelfSubjectReview"): {"metadata": (1, _OBJECT_META)},
    ("scheduling.k8s.io/v1", "PriorityClass"): {
        "metadata": (1, _OBJECT_META), "value": (2, "optint"), "globalDefault": (3, "bool"),
        "description": (4, "string"), "preemptionPolicy": (5, "string")},
    ("apps/v1", "Deployment"): workloads.deployment(_OBJECT_META),
    ("batch/v1", "Job"): workloads.job(_OBJECT_META),
    ("v1", "Service"): workloads.service(_OBJECT_META),
    ("v1", "ServiceAccount"): {"metadata": (1, _OBJECT_META),
                               "automountServiceAccountToken": (4, "bool")},
    ("authentication.k8s.io/v1", "TokenRequest"): {
        "metadata": (1, _OBJECT_META),
        "spec": (2, {"audiences": (1, "strings"), "expirationSeconds": (4, "int"),
                     "boundObjectRef": (3, {"kind": (1, "string"), "apiVersion": (2, "string"),
                                            "name": (3, "string"), "uid": (4, "string")})})},
    ("v1", "Namespace"): {"metadata": (1, _OBJECT_META),
                          "spec": (2, {"finalizers": (1, "strings")})},
    ("v1", "ConfigMap"): {"metadata": (1, _OBJECT_META), "data": (2, "stringmap"),
                          "binaryData": (3, "bytesmap"), "immutable": (4, "bool")},
    ("v1", "Secret"): {"metadata": (1, _OBJECT_META), "data": (2, "bytesmap"),
                       "type": (3, "string"), "stringData": (4, "stringmap"),
                       "immutable": (5, "bool")},
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): {
        "metadata": (1, _OBJECT_META),
        "spec": (2, {"resourceAttributes": (1, _RESOURCE_ATTRS),
                     "nonResourceAttributes": (2, _NON_RESOURCE_ATTRS)})},
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): {
        "metadata": (1, _OBJECT_META), "spec": (2, {"namespace": (1, "string")})},
}


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes):
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
        elif wt == 2:
            n, i = _varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
        yield num, v


_ABSENT = object()


def _int(raw: int) -> int:
    return raw - (1 << 64) if raw >= 1 << 63 else raw


def _int_or_string(raw: bytes, keep_zero: bool):
    f = dict(_fields(raw))
    if f.get(1, 0) == 1:
        return f.get(3, b"").decode()
    v = _int(f.get(2, 0))
    return v if v or keep_zero else _ABSENT


def _value(kind, raw):
    """One field's JSON value, or _ABSENT where JSON would omit it."""
    # Go writes zero values of plain fields too; JSON would have omitted them (omitempty).
    if kind == "string":
        return raw.decode() if raw else _ABSENT
    if kind == "int":
        return _int(raw) if raw else _ABSENT
    if kind == "optint":  # a Go pointer, written only when set: 0 is meaningful
        return _int(raw)
    if kind == "bool":
        return True if raw else _ABSENT
    if kind == "optbool":
        return bool(raw)
    if kind == "bytes":
        return base64.b64encode(raw).decode() if raw else _ABSENT
    if kind == "quantity":  # resource.Quantity {string = 1}
        return dict(_fields(raw)).get(1, b"").decode()
    if kind in ("intorstr", "optintorstr"):
        return _int_or_string(raw, kind == "optintorstr")
    if isinstance(kind, dict):
        return _decode(raw, kind)
    if isinstance(kind, tuple) and kind[0] == "time":
        t = _decode(raw, kind[1])
        if not t.get("seconds"):
            return _ABSENT
        return datetime.fromtimestamp(t["seconds"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    raise ValueError(f"no decoding for field kind {kind!r}")


def _decode(buf: bytes, schema: dict) -> dict:
    by_num = {num: (name, kind) for name, (num, kind) in schema.items()}
    out: dict = {}
    for num, raw in _fields(buf):
        if num not in by_num:
            continue  # fields we do not model are skipped, as proto skips unknown ones
        name, kind = by_num[num]
        if kind == "strings":
            out.setdefault(name, []).append(raw.decode())
        elif kind in ("stringmap", "bytesmap") or (isinstance(kind, tuple)
                                                   and kind[0] == "map"):
            entry = dict(_fields(raw))
            value_kind = ("string" if kind == "stringmap" else "bytes" if kind == "bytesmap"
                          else kind[1])
            value = _value(value_kind, entry.get(2, b""))
            # A map entry always carries its value, empty ones included.
            out.setdefault(name, {})[entry.get(1, b"").decode()] = (
                "" if value is _ABSENT else value)
        elif isinstance(kind, tuple) and kind[0] == "repeated":
            out.setdefault(name, []).append(_value(kind[1], raw))
        else:
            value = _value(kind, raw)
            if value is not _ABSENT:
                out[name] = value
    return out


def decode(body: bytes) -> dict:
    """A protobuf request body as the equivalent JSON object."""
    if not body.startswith(MAGIC):
        raise errors.bad_request("the protobuf body does not start with the k8s magic number")
    try:
        env = dict(_fields(body[len(MAGIC):]))
        type_meta = dict(_fields(env.get(1, b"")))
        api_version, kind = type_meta.get(1, b"").decode(), type_meta.get(2, b"").decode()
        schema = MESSAGES.get((api_version, kind))
        if schema is None:
            raise errors.unsupported_media_type(CONTENT_TYPE, ["application/json",
                                                               "application/yaml"])
        obj = _decode(env.get(2, b""), schema)
    except (ValueError, IndexError, UnicodeDecodeError) as exc:
        raise errors.bad_request(f"cannot decode protobuf body: {exc}") from None
    obj["apiVersion"], obj["kind"] = api_version, kind
    return obj
