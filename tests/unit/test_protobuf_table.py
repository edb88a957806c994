"""The generated protobuf table (ADR 0001): it covers every served built-in kind, and
the decoder honours what the table derives from upstream's Go struct tags (JSON
names, inline embedding, pointer zeros, named-slice wrappers, packed scalars)."""

from __future__ import annotations

import pytest

from bootstrap.agents.apiserver.handlers import protobuf
from bootstrap.api import resources
from bootstrap.api.errors import APIError


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _f(num: int, payload: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _v(num: int, value: int) -> bytes:
    return _varint(num << 3) + _varint(value & (1 << 64) - 1)


def _body(api_version: str, kind: str, raw: bytes) -> bytes:
    return protobuf.MAGIC + _f(1, _f(1, api_version.encode()) + _f(2, kind.encode())) + _f(2, raw)


# Served through other repositories' protos (kube-aggregator, apiextensions-apiserver):
# kubectl sends them as JSON, so they are not in the table.
_NOT_IN_K8S_API = {"apiregistration.k8s.io", "apiextensions.k8s.io"}


def test_every_served_builtin_kind_is_in_the_table():
    kinds = protobuf.table()["kinds"]
    missing = [f"{r.group}/{r.version}/{r.kind}" for r in resources.CATALOGUE
               if r.custom is None and r.group not in _NOT_IN_K8S_API
               and f"{r.group + '/' if r.group else ''}{r.version}/{r.kind}" not in kinds]
    assert not missing, f"regenerate with tools/gen_protobuf_table.py: {missing}"
    messages = protobuf.table()["messages"]
    for name in kinds.values():
        assert name in messages


def test_inline_volume_source_and_pointer_empty_message():
    # Volume{name=1, volumeSource=2 (json inline) {emptyDir=2 {}}}; hostNetwork false
    volume = _f(1, b"scratch") + _f(2, _f(2, b""))
    spec = _f(1, volume) + _f(2, _f(1, b"c") + _f(2, b"busybox")) + _v(11, 0) + _v(25, 0)
    pod = protobuf.decode(_body("v1", "Pod", _f(1, _f(1, b"p")) + _f(2, spec)))
    assert pod["spec"]["volumes"] == [{"name": "scratch", "emptyDir": {}}]
    assert "hostNetwork" not in pod["spec"]  # plain bool, omitempty: false means unset
    assert pod["spec"]["priority"] == 0  # *int32: zero set on purpose


def test_json_names_from_struct_tags_and_negative_ints():
    # BoundObjectReference's proto field is "uID", its JSON name "uid".
    ref = _f(1, b"Pod") + _f(3, b"p") + _f(4, b"1234")
    req = protobuf.decode(_body("authentication.k8s.io/v1", "TokenRequest",
                                _f(2, _f(1, b"api") + _v(4, 600) + _f(3, ref))))
    assert req["spec"] == {"audiences": ["api"], "expirationSeconds": 600,
                           "boundObjectRef": {"kind": "Pod", "name": "p", "uid": "1234"}}
    pc = protobuf.decode(_body("scheduling.k8s.io/v1", "PriorityClass",
                               _f(1, _f(1, b"low")) + _v(2, -5)))
    assert pc["value"] == -5


def test_extra_value_wrapper_and_packed_exit_codes():
    extra = _f(1, b"scopes") + _f(2, _f(1, b"a") + _f(1, b"b"))
    sar = protobuf.decode(_body("authorization.k8s.io/v1", "SubjectAccessReview",
                                _f(2, _f(3, b"alice") + _f(5, extra))))
    assert sar["spec"] == {"user": "alice", "extra": {"scopes": ["a", "b"]}}
    # PodFailurePolicy{rules=1 {action=1, onExitCodes=2 {operator=2, values=3 packed}}}
    codes = _f(2, b"In") + _f(3, _varint(1) + _varint(42))
    job_spec = _f(11, _f(1, _f(1, b"FailJob") + _f(2, codes)))
    job = protobuf.decode(_body("batch/v1", "Job", _f(2, job_spec)))
    assert job["spec"]["podFailurePolicy"]["rules"] == [
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1, 42]}}]


def test_times_quantities_and_durations():
    meta = _f(1, b"q") + _f(8, _v(1, 1700000000))
    quota = protobuf.decode(_body("v1", "ResourceQuota", _f(1, meta) + _f(
        2, _f(1, _f(1, b"pods") + _f(2, _f(1, b"10"))))))
    assert quota["metadata"]["creationTimestamp"] == "2023-11-14T22:13:20Z"
    assert quota["spec"]["hard"] == {"pods": "10"}
    assert protobuf._go_duration(90 * 10**9) == "1m30s"
    assert protobuf._go_duration(3600 * 10**9 + 500_000_000) == "1h0m0.5s"


@pytest.mark.parametrize("body", [
    _body("v1", "ConfigMap", b"\x0a\x40\x0a"),  # length runs past the end
    _body("v1", "ConfigMap", b"\x0b"),  # wire type 3 (groups) is not used by Kubernetes
    _body("v1", "ConfigMap", b"\x12\x02\xff\xfe"),  # data entry that is not valid UTF-8
])
def test_malformed_bodies_are_400(body):
    with pytest.raises(APIError) as exc:
        protobuf.decode(body)
    assert exc.value.code == 400


def test_unknown_kind_is_415():
    with pytest.raises(APIError) as exc:
        protobuf.decode(_body("example.com/v1", "Widget", b""))
    assert exc.value.code == 415
