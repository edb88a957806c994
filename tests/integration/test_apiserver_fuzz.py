"""Property: no client input makes the API server answer 5xx or log a traceback.

Hypothesis draws a served kind, a field path from that kind's published schema
(the same kubernetes-validate schemas the server validates with) and a value of
the wrong JSON type (or a pathological one: huge integers, deep nesting, odd
strings), then sends it as a create, a merge patch and a strategic merge patch.
The number of examples is bounded so the suite stays quick."""

from __future__ import annotations

import functools
import json
import os
import urllib.error
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bootstrap.api import schema
from bootstrap.api.resources import CATALOGUE

from .cluster import running_cluster

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "400"))
MAX_PATH_DEPTH = 6
# Kinds a create cannot make as-is (computed, or created only by the server).
SKIP = {"bindings", "componentstatuses"}
KINDS = [r for r in CATALOGUE if r.stored and r.plural not in SKIP and "create" in r.verbs]


@pytest.fixture(scope="module")
def cluster():
    with running_cluster() as c:
        c.ctx = c.ssl_context()
        # One object per namespaced kind to patch (a ConfigMap suffices for merge
        # semantics; the patch target's own kind is what matters for decoding).
        _send(c, "POST", "/api/v1/namespaces", {"metadata": {"name": "fuzz"}})
        _send(c, "POST", "/api/v1/namespaces/fuzz/serviceaccounts",
              {"metadata": {"name": "default"}})
        for res in KINDS:
            obj = TARGETS.get(res.plural)
            if obj is not None:
                code, out = _send(c, "POST", _base(res), {"metadata": {"name": "fuzz-target"},
                                                          **obj})
                assert code == 201, (res.plural, out[:300])
        yield c


_POD_SPEC = {"containers": [{"name": "c", "image": "busybox"}]}
_TEMPLATE = {"selector": {"matchLabels": {"a": "b"}},
             "template": {"metadata": {"labels": {"a": "b"}}, "spec": _POD_SPEC}}
# A valid object per common kind, so patches reach decoding and validation.
TARGETS = {
    "configmaps": {"data": {"k": "v"}},
    "secrets": {"data": {"k": "dg=="}},
    "services": {"spec": {"ports": [{"port": 80}]}},
    "pods": {"spec": _POD_SPEC},
    "deployments": {"spec": _TEMPLATE},
    "replicasets": {"spec": _TEMPLATE},
    "daemonsets": {"spec": _TEMPLATE},
    "statefulsets": {"spec": {**_TEMPLATE, "serviceName": "s"}},
    "jobs": {"spec": {"template": {"spec": {**_POD_SPEC, "restartPolicy": "Never"}}}},
    "cronjobs": {"spec": {"schedule": "@hourly", "jobTemplate": {"spec": {"template": {
        "spec": {**_POD_SPEC, "restartPolicy": "Never"}}}}}},
    "nodes": {},
    "leases": {"spec": {}},
    "roles": {"rules": []},
    "clusterroles": {"rules": []},
    "endpoints": {},
    "poddisruptionbudgets": {"spec": {"minAvailable": 1}},
}


def _base(res) -> str:
    return res.path_prefix() + (f"/namespaces/fuzz/{res.plural}" if res.namespaced
                                else f"/{res.plural}")


def _send(c, method: str, path: str, body, ctype: str = "application/json") -> tuple[int, bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(c.server.url + path, data=data, method=method,
                                 headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, context=c.ctx, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@functools.cache
def _paths(plural: str) -> list[tuple[tuple, str]]:
    """(path, JSON type the schema wants there) for every field reachable within
    MAX_PATH_DEPTH; list items are addressed as index 0."""
    res = next(r for r in KINDS if r.plural == plural)
    out: list[tuple[tuple, str]] = []

    def walk(node, path: tuple, depth: int, seen: frozenset) -> None:
        node_r = schema.resolve(node)
        if node_r is None or depth > MAX_PATH_DEPTH:
            return
        t = node_r.get("type")
        t = next((x for x in t if x != "null"), None) if isinstance(t, list) else t
        if path:
            out.append((path, t or "any"))
        ref = id(node_r)
        if ref in seen:
            return
        if t == "object" or node_r.get("properties"):
            for k, sub in (node_r.get("properties") or {}).items():
                if k in ("apiVersion", "kind"):
                    continue
                walk(sub, path + (k,), depth + 1, seen | {ref})
            add = node_r.get("additionalProperties")
            if isinstance(add, dict):
                walk(add, path + ("fuzzkey",), depth + 1, seen | {ref})
        elif t == "array":
            walk(node_r.get("items"), path + (0,), depth + 1, seen | {ref})

    walk(schema.root_schema(res.gvk), (), 0, frozenset())
    return out or [(("metadata",), "object")]


def _wrong(want: str) -> st.SearchStrategy:
    deep = st.integers(min_value=150, max_value=1200).map(
        lambda n: functools.reduce(lambda acc, _: {"a": acc}, range(n), 1))
    weird = st.sampled_from([2 ** 31, -2 ** 31 - 1, 2 ** 63, 2 ** 70, -1, 1.5, 1e308,
                             "", "-1", "lots", "1Ei", "\x00", "\u202e", "a" * 5000,
                             "not base64!!", "()", "a in ()"])
    by_type = {
        "object": st.one_of(st.text(max_size=5), st.integers(), st.lists(st.integers(),
                                                                          max_size=2),
                            st.booleans()),
        "array": st.one_of(st.text(max_size=5), st.integers(), st.dictionaries(
            st.text(max_size=3), st.integers(), max_size=2)),
        "string": st.one_of(st.integers(), st.booleans(), st.lists(st.text(max_size=2),
                                                                   max_size=2),
                            st.dictionaries(st.text(max_size=3), st.text(max_size=3),
                                            max_size=2)),
        "integer": st.one_of(st.text(max_size=5), st.floats(allow_nan=False),
                             st.booleans(), st.dictionaries(st.text(max_size=2),
                                                            st.integers(), max_size=1)),
        "boolean": st.one_of(st.text(max_size=5), st.integers(), st.lists(st.booleans(),
                                                                          max_size=2)),
    }
    return st.one_of(by_type.get(want, st.text(max_size=5)), weird, deep, st.none())


@st.composite
def _case(draw):
    res = draw(st.sampled_from(KINDS))
    path, want = draw(st.sampled_from(_paths(res.plural)))
    value = draw(_wrong(want))
    return res, path, value


def _body_with(path: tuple, value, name: str) -> dict:
    body: dict = {"metadata": {"name": name}}
    if path[0] == "metadata" and len(path) > 1 and path[1] == "name":
        body["metadata"]["name"] = value
        return body
    cur = body
    for i, key in enumerate(path):
        last = i == len(path) - 1
        nxt = value if last else ([] if isinstance(path[i + 1], int) else {})
        if isinstance(key, int):
            if not isinstance(cur, list):
                return body
            cur.append(nxt)
            cur = cur[-1]
        else:
            if not isinstance(cur, dict):
                return body
            if key == "metadata" and not last:
                cur = cur.setdefault("metadata", {})
                continue
            cur[key] = nxt if not isinstance(cur.get(key), (dict, list)) or last else cur[key]
            cur = cur[key]
    return body


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("FUZZ_RANDOM"),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=_case())
def test_no_input_gets_a_5xx(cluster, case):
    res, path, value = case
    base = _base(res)
    body = _body_with(path, value, "fuzz-x")
    code, out = _send(cluster, "POST", base, body)
    assert code < 500, (res.plural, path, out[:300])
    if code == 201:
        _send(cluster, "DELETE", f"{base}/fuzz-x", {"gracePeriodSeconds": 0})
    patch = {k: v for k, v in body.items() if k != "metadata"} or {"metadata": body["metadata"]}
    for ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
        code, out = _send(cluster, "PATCH", f"{base}/fuzz-target", patch, ctype)
        assert code < 500, (res.plural, path, ctype, out[:300])


def test_server_logged_no_traceback(cluster):
    """Runs after the property (file order): nothing above crashed a handler."""
    log = cluster.server.log_path.read_text()
    assert "Traceback" not in log, log[-3000:]
