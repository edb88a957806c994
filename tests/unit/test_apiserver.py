"""Pure logic of the API server: request parsing, codecs, encryption, watch cache window,
discovery, flags. The integration tests drive the same code over real etcd."""

from __future__ import annotations

import asyncio
import base64
import json
import os

import orjson
import pytest

from bootstrap.agents.apiserver import flags, requestinfo
from bootstrap.agents.apiserver.handlers import discovery, protobuf
from bootstrap.agents.apiserver.metrics import Metrics
from bootstrap.agents.apiserver.storage import encryption
from bootstrap.agents.apiserver.storage.cache import WatchCache
from bootstrap.agents.apiserver.storage.etcd import WatchEvent, prefix_end
from bootstrap.agents.apiserver.storage.store import decode_continue, encode_continue
from bootstrap.agents.apiserver.strategies import Table
from bootstrap.api.errors import APIError
from bootstrap.api.resources import CATALOGUE, by_gvr


@pytest.mark.parametrize("method,path,query,expect", [
    ("GET", "/api/v1/namespaces/ns1/pods", {}, ("list", "ns1", "pods", "", "")),
    ("GET", "/api/v1/namespaces/ns1/pods", {"watch": "true"}, ("watch", "ns1", "pods", "", "")),
    ("GET", "/api/v1/pods", {}, ("list", "", "pods", "", "")),
    ("GET", "/api/v1/namespaces/ns1", {}, ("get", "ns1", "namespaces", "ns1", "")),
    ("PUT", "/api/v1/namespaces/ns1/finalize", {}, ("update", "ns1", "namespaces", "ns1",
                                                     "finalize")),
    ("POST", "/api/v1/namespaces/a/pods/p/binding", {}, ("create", "a", "pods", "p", "binding")),
    ("DELETE", "/apis/apps/v1/namespaces/a/deployments", {},
     ("deletecollection", "a", "deployments", "", "")),
    ("PATCH", "/apis/apps/v1/namespaces/a/deployments/d/scale", {},
     ("patch", "a", "deployments", "d", "scale")),
    ("GET", "/api/v1/watch/namespaces/a/configmaps", {}, ("watch", "a", "configmaps", "", "")),
])
def test_request_info(method, path, query, expect):
    info = requestinfo.parse(method, path, query)
    assert info.resource_request
    assert (info.verb, info.namespace, info.plural, info.name, info.subresource) == expect


def test_non_resource_request():
    info = requestinfo.parse("GET", "/healthz", {})
    assert not info.resource_request and info.verb == "get"
    assert not requestinfo.parse("GET", "/apis/apps", {}).resource_request


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num: int, payload: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _field(1, api_version.encode()) + _field(2, kind.encode())
    return protobuf.MAGIC + _field(1, type_meta) + _field(2, raw)


def test_protobuf_namespace_and_review():
    meta = _field(1, b"team") + _field(11, _field(1, b"env") + _field(2, b"prod")) + \
        _field(2, b"")  # an empty generateName, as Go writes it
    body = protobuf.decode(_envelope("v1", "Namespace", _field(1, meta)))
    assert body == {"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "team", "labels": {"env": "prod"}}}
    attrs = _field(1, b"ns") + _field(2, b"list") + _field(5, b"pods")
    review = protobuf.decode(_envelope("authorization.k8s.io/v1", "SelfSubjectAccessReview",
                                       _field(2, _field(1, attrs))))
    assert review["spec"] == {"resourceAttributes": {"namespace": "ns", "verb": "list",
                                                     "resource": "pods"}}


def test_protobuf_secret_bytes_and_unknown_kind():
    secret = protobuf.decode(_envelope("v1", "Secret", _field(1, _field(1, b"s")) + _field(
        2, _field(1, b"k") + _field(2, b"\x00\x01"))))
    assert secret["data"] == {"k": base64.b64encode(b"\x00\x01").decode()}
    with pytest.raises(APIError) as exc:
        protobuf.decode(_envelope("apps/v1", "NotAKind", b""))
    assert exc.value.code == 415
    with pytest.raises(APIError) as exc:
        protobuf.decode(b"not-protobuf")
    assert exc.value.code == 400


def _enc_config(tmp_path, providers: str):
    p = tmp_path / "enc.yaml"
    p.write_text("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"
                 "resources:\n  - resources: [secrets]\n    providers:\n" + providers)
    return encryption.load(str(p))


def _key(n: int = 32) -> str:
    return base64.b64encode(os.urandom(n)).decode()


@pytest.mark.parametrize("kind", ["aesgcm", "aescbc", "secretbox"])
def test_encryption_roundtrip(tmp_path, kind):
    table = _enc_config(tmp_path, f"      - {kind}:\n          keys:\n            - name: k1\n"
                                  f"              secret: {_key()}\n")
    tr = encryption.for_resource(table, "secrets", "")
    data = b'{"kind":"Secret"}'
    sealed = tr.encrypt(data, "/registry/secrets/a/b")
    assert sealed.startswith(f"k8s:enc:{kind}:v1:k1:".encode()) and data not in sealed
    assert tr.decrypt(sealed, "/registry/secrets/a/b") == data
    assert encryption.for_resource(table, "configmaps", "") is encryption.IDENTITY


def test_encryption_rotation_reads_old_key(tmp_path):
    old, new = _key(), _key()
    before = _enc_config(tmp_path, f"      - aescbc:\n          keys:\n            - name: old\n"
                                   f"              secret: {old}\n      - identity: {{}}\n")
    sealed = encryption.for_resource(before, "secrets", "").encrypt(b"x", "k")
    after = _enc_config(tmp_path, f"      - aescbc:\n          keys:\n            - name: new\n"
                                  f"              secret: {new}\n            - name: old\n"
                                  f"              secret: {old}\n")
    tr = encryption.for_resource(after, "secrets", "")
    assert tr.decrypt(sealed, "k") == b"x"
    assert tr.encrypt(b"x", "k").startswith(b"k8s:enc:aescbc:v1:new:")
    # Plain values written before encryption need identity among the providers.
    with pytest.raises(APIError):
        tr.decrypt(b'{"plain":1}', "k")
    assert encryption.for_resource(before, "secrets", "").decrypt(b'{"plain":1}', "k") == \
        b'{"plain":1}'


def test_encryption_config_errors(tmp_path):
    with pytest.raises(encryption.ConfigError):
        _enc_config(tmp_path, f"      - aesgcm:\n          keys:\n            - name: k\n"
                              f"              secret: {_key(7)}\n")
    with pytest.raises(encryption.ConfigError):
        _enc_config(tmp_path, "      - kms: {}\n")


def test_continue_token_roundtrip_and_garbage():
    token = encode_continue(42, "/registry/pods/a/b\0", "/registry/pods/")
    assert decode_continue(token, "/registry/pods/") == (42, "/registry/pods/a/b\0")
    # The key is relative: the same token continues inside whatever prefix is asked for.
    assert decode_continue(token, "/registry/pods/a/") == (42, "/registry/pods/a/a/b\0")
    with pytest.raises(APIError) as exc:
        decode_continue("%%%", "/registry/pods/")
    assert exc.value.code == 400


def _forged(**fields) -> str:
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")


@pytest.mark.parametrize("fields", [
    {"v": "meta.k8s.io/v1", "rv": 5, "start": "/../../secrets/"},
    {"v": "meta.k8s.io/v1", "rv": 5, "start": "//registry/secrets/"},
    {"v": "meta.k8s.io/v1", "rv": 5, "start": "/a/../../b"},
    {"v": "meta.k8s.io/v1", "rv": 5, "start": "registry/secrets/"},
    {"v": "meta.k8s.io/v1", "rv": 5, "start": ""},
    {"v": "meta.k8s.io/v1", "rv": 0, "start": "/a"},
    {"v": "meta.k8s.io/v1", "rv": -3, "start": "/a"},
    {"v": "meta.k8s.io/v1", "rv": "7", "start": "/a"},
    {"v": "meta.k8s.io/v2", "rv": 5, "start": "/a"},
    {"rv": 5, "start": "/a"},
])
def test_forged_continue_tokens_are_400(fields):
    with pytest.raises(APIError) as exc:
        decode_continue(_forged(**fields), "/registry/secrets/a/")
    assert exc.value.code == 400
    assert "continue key is not valid" in exc.value.message


def test_prefix_end():
    assert prefix_end(b"/registry/pods/") == b"/registry/pods0"
    assert prefix_end(b"a\xff") == b"b"


def _cache() -> WatchCache:
    res = by_gvr("", "v1", "configmaps")

    def decode(key, value, rev):
        obj = orjson.loads(value)
        obj["metadata"]["resourceVersion"] = str(rev)
        return obj
    c = WatchCache(res, etcd=None, decode=decode)
    c.rev = c.oldest = c.applied = 10
    return c


def _put(name: str, rev: int, labels=None) -> WatchEvent:
    obj = {"metadata": {"name": name, "namespace": "d", "labels": labels or {}}}
    return WatchEvent("PUT", f"/registry/configmaps/d/{name}", orjson.dumps(obj), rev, rev)


async def test_watch_cache_replays_window_and_expires():
    c = _cache()
    c._apply([_put("a", 11)])
    c._apply([_put("a", 12, {"x": "1"})])
    c._apply([WatchEvent("DELETE", "/registry/configmaps/d/a", b"", 13, 11)])
    w = c.watch(11, lambda o: True)
    # The replayed window is walked from the cache, not queued.
    got = list(w.initial)
    assert [(e.type, e.rv) for e in got] == [("MODIFIED", 12), ("DELETED", 13)]
    assert got[1].obj["metadata"]["resourceVersion"] == "13"
    assert c.rev == 13 and c.get("/registry/configmaps/d/a") is None
    with pytest.raises(APIError) as exc:
        c.watch(9, lambda o: True)
    assert exc.value.code == 410 and exc.value.reason == "Expired"
    # A live event reaches a registered watcher.
    c._apply([_put("b", 14)])
    assert w.queue.get_nowait().type == "ADDED"
    w.close()
    assert w not in c.watchers


async def test_watcher_drops_events_at_or_below_its_start():
    """A progress notification may run ahead of events (old etcd); late ones are dropped."""
    c = _cache()
    c._advance(20)  # progress says 20, but events 11..20 have not arrived yet
    w = c.watch(15, lambda o: True)
    c._apply([_put("late", 14), _put("new", 16)])
    got = [w.queue.get_nowait() for _ in range(w.queue.qsize())]
    assert [(e.type, e.rv) for e in got] == [("ADDED", 16)]
    assert c.list()[1] == 16  # lists report what the objects reflect, not the progress


async def test_watch_cache_sync_to_current_is_immediate():
    c = _cache()
    c.ready.set()
    await asyncio.wait_for(c.sync_to(10), 1)


def test_discovery_documents():
    core = discovery.resource_list("", "v1")
    names = {r["name"]: r for r in core["resources"]}
    assert names["pods"]["namespaced"] and "po" in names["pods"]["shortNames"]
    assert names["pods/status"]["verbs"] == ["get", "patch", "update"]
    assert names["pods/eviction"]["group"] == "policy"
    assert names["namespaces"]["namespaced"] is False
    apps = discovery.resource_list("apps", "v1")
    scale = next(r for r in apps["resources"] if r["name"] == "deployments/scale")
    assert scale["kind"] == "Scale" and scale["group"] == "autoscaling"
    agg = discovery.aggregated(core=False)
    groups = [i["metadata"]["name"] for i in agg["items"]]
    assert "apps" in groups and "" not in groups
    assert discovery.aggregated(core=True)["items"][0]["metadata"]["name"] == ""
    assert {g["name"] for g in discovery.group_list()["groups"]} >= {
        "apps", "batch", "coordination.k8s.io", "rbac.authorization.k8s.io", "policy"}


def test_catalogue_covers_issue_resources():
    plurals = {(r.group, r.plural) for r in CATALOGUE}
    for want in [("", "pods"), ("", "services"), ("apps", "statefulsets"), ("batch", "jobs"),
                 ("coordination.k8s.io", "leases"), ("discovery.k8s.io", "endpointslices"),
                 ("certificates.k8s.io", "certificatesigningrequests"),
                 ("authorization.k8s.io", "subjectaccessreviews"),
                 ("authentication.k8s.io", "tokenreviews"), ("policy", "poddisruptionbudgets")]:
        assert want in plurals
    assert by_gvr("apps", "v1", "deployments").key("ns", "d") == "/registry/deployments/ns/d"
    assert by_gvr("", "v1", "nodes").key(None, "n") == "/registry/nodes/n"


def test_flags(tmp_path):
    cfg = flags.parse(["--etcd-servers=https://a:2379,https://b:2379", "--secure-port=7443",
                       "--authorization-mode=Node,RBAC", "--anonymous-auth=false"])
    assert cfg.etcd_servers == ["https://a:2379", "https://b:2379"]
    assert cfg.secure_port == 7443 and cfg.anonymous_auth is False
    with pytest.raises(flags.FlagError, match="unknown flag"):
        flags.parse(["--etcd-servers=x", "--bogus"])
    with pytest.raises(flags.FlagError, match="cannot read"):
        flags.parse(["--etcd-servers=x", f"--client-ca-file={tmp_path / 'nope'}"])
    with pytest.raises(flags.FlagError, match="unknown mode"):
        flags.parse(["--etcd-servers=x", "--authorization-mode=Magic"])


def test_scale_view():
    dep = {"metadata": {"name": "d", "namespace": "n", "uid": "u", "resourceVersion": "5"},
           "spec": {"replicas": 3, "selector": {"matchLabels": {"b": "2", "a": "1"}}},
           "status": {"replicas": 2}}
    scale = Table()(by_gvr("apps", "v1", "deployments")).scale(dep)
    assert scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"] == {"replicas": 3}
    assert scale["status"] == {"replicas": 2, "selector": "a=1,b=2"}


def test_metrics_render():
    m = Metrics()
    m.request("get", "", "v1", "pods", "", "resource", 200, 0.003)
    m.etcd_observe("get", 0.001)
    text = m.render({"pods": 3})
    assert ('apiserver_request_total{code="200",component="apiserver",group="",'
            'resource="pods",scope="resource",subresource="",verb="GET",version="v1"} 1') in text
    assert 'etcd_request_duration_seconds_count{operation="get"} 1' in text
    assert 'apiserver_storage_objects{resource="pods"} 3' in text


def test_protobuf_eviction_keeps_zero_grace():
    opts = _varint(1 << 3 | 0) + _varint(0) + _field(4, b"Foreground")
    ev = protobuf.decode(_envelope("policy/v1", "Eviction",
                                   _field(1, _field(1, b"p")) + _field(2, opts)))
    assert ev["deleteOptions"] == {"gracePeriodSeconds": 0, "propagationPolicy": "Foreground"}


def _vfield(num: int, value: int) -> bytes:
    return _varint(num << 3) + _varint(value)


def test_protobuf_workloads_by_upstream_field_numbers():
    container = (_field(1, b"c") + _field(2, b"nginx") + _field(3, b"sleep") + _field(3, b"1")
                 + _field(6, _vfield(3, 80) + _field(4, b"TCP"))
                 + _field(8, _field(1, _field(1, b"cpu") + _field(2, _field(1, b"500m"))))
                 + _field(5, b""))  # an empty workingDir, as Go writes it
    template = _field(1, _field(11, _field(1, b"app") + _field(2, b"web"))) + _field(
        2, _field(2, container) + _field(3, b"Always") + _field(99, b"future field"))
    spec = (_vfield(1, 0) + _field(2, _field(1, _field(1, b"app") + _field(2, b"web")))
            + _field(3, template)
            + _field(4, _field(1, b"RollingUpdate") + _field(2, _field(
                1, _vfield(1, 1) + _field(3, b"50%")) + _field(2, _vfield(1, 0) + _vfield(2, 0)))))
    dep = protobuf.decode(_envelope("apps/v1", "Deployment",
                                    _field(1, _field(1, b"web")) + _field(2, spec)))
    assert dep["spec"]["replicas"] == 0  # a pointer field: zero was sent on purpose
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": "50%", "maxSurge": 0}
    pod = dep["spec"]["template"]["spec"]
    assert pod == {"containers": [{"name": "c", "image": "nginx", "command": ["sleep", "1"],
                                   "ports": [{"containerPort": 80, "protocol": "TCP"}],
                                   "resources": {"limits": {"cpu": "500m"}}}],
                   "restartPolicy": "Always"}

    ports = (_field(1, _vfield(3, 80) + _field(4, _vfield(1, 0) + _vfield(2, 8080)))
             + _field(1, _vfield(3, 443) + _field(4, _vfield(1, 1) + _field(3, b"https")))
             + _field(1, _vfield(3, 53) + _field(4, _vfield(1, 0) + _vfield(2, 0))))
    svc = protobuf.decode(_envelope("v1", "Service", _field(1, _field(1, b"s")) + _field(
        2, ports + _field(4, b"ClusterIP"))))
    assert svc["spec"]["ports"] == [{"port": 80, "targetPort": 8080},
                                    {"port": 443, "targetPort": "https"}, {"port": 53}]

    job = protobuf.decode(_envelope("batch/v1", "Job", _field(1, _field(1, b"j")) + _field(
        2, _vfield(7, 2) + _vfield(5, 0) + _field(6, template))))
    assert job["spec"]["backoffLimit"] == 2 and job["spec"]["manualSelector"] is False
