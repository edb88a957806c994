"""Client mistakes get upstream's 4xx, never a 500 (issue 11, item 4). Each case
answered 500, or was stored, before the fix."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from .cluster import running_cluster

POD = {"name": "c", "image": "busybox"}


@pytest.fixture(scope="module")
def cluster():
    with running_cluster() as c:
        c.ctx = c.ssl_context()
        _send(c, "POST", "/api/v1/namespaces/default/serviceaccounts",
              json.dumps({"metadata": {"name": "default"}}).encode())
        _send(c, "POST", "/api/v1/namespaces/default/configmaps",
              json.dumps({"metadata": {"name": "c1"}}).encode())
        yield c


def _send(c, method, path, data: bytes | None, ctype="application/json"):
    req = urllib.request.Request(c.server.url + path, data=data, method=method,
                                 headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, context=c.ctx, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


PODS = "/api/v1/namespaces/default/pods"
CM = "/api/v1/namespaces/default/configmaps"


def _pod(**spec) -> dict:
    return {"metadata": {"name": "p"}, "spec": {"containers": [POD], **spec}}


CASES = [
    ("containers as a string", "POST", PODS, {"metadata": {"name": "p"},
                                              "spec": {"containers": "x"}},
     400, "cannot unmarshal string into Go struct field PodSpec.spec.containers of type "
          "[]v1.Container"),
    ("tolerations as a string", "POST", PODS, _pod(tolerations="x"), 400,
     "field PodSpec.spec.tolerations of type []v1.Toleration"),
    ("probe as a string", "POST", PODS,
     {"metadata": {"name": "p"}, "spec": {"containers": [{**POD, "livenessProbe": "x"}]}},
     400, "of type v1.Probe"),
    ("ports null items", "POST", "/api/v1/namespaces/default/services",
     {"metadata": {"name": "nulls"}, "spec": {"ports": [None]}}, 422, "spec.ports[0].port"),
    ("cpu: lots", "POST", PODS,
     {"metadata": {"name": "p"}, "spec": {"containers": [
         {**POD, "resources": {"requests": {"cpu": "lots"}}}]}},
     400, "quantities must match the regular expression"),
    ("negative request", "POST", PODS,
     {"metadata": {"name": "p"}, "spec": {"containers": [
         {**POD, "resources": {"requests": {"cpu": "-1"}}}]}},
     422, "spec.containers[0].resources.requests[cpu]: Invalid value: \"-1\": must be "
          "greater than or equal to 0"),
    ("request over limit", "POST", PODS,
     {"metadata": {"name": "p"}, "spec": {"containers": [
         {**POD, "resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}}]}},
     422, "must be less than or equal to memory limit of 1Gi"),
    ("replicas 2**31", "POST", "/apis/apps/v1/namespaces/default/deployments",
     {"metadata": {"name": "d"}, "spec": {"replicas": 2 ** 31, "selector": {
         "matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
                                                  "spec": {"containers": [POD]}}}},
     400, "cannot unmarshal number 2147483648 into Go struct field DeploymentSpec.spec."
          "replicas of type int32"),
    ("nodePort out of range", "POST", "/api/v1/namespaces/default/services",
     {"metadata": {"name": "np"}, "spec": {"type": "NodePort", "ports": [
         {"port": 80, "nodePort": 5}]}},
     422, "provided port is not in the valid range. The range of valid ports is 30000-32767"),
    ("secret data not base64", "POST", "/api/v1/namespaces/default/secrets",
     {"metadata": {"name": "s"}, "data": {"a": "not base64!!"}}, 400,
     "illegal base64 data at input byte 3"),
    ("merge patch metadata string", "PATCH", CM + "/c1", {"metadata": "x"}, 400, ""),
    ("merge patch data list", "PATCH", CM + "/c1", {"data": [1]}, 400,
     "cannot unmarshal array into Go struct field ConfigMap.data"),
    ("DELETE body a list", "DELETE", CM + "/c1", ["x"], 400,
     "cannot unmarshal array into Go value of type v1.DeleteOptions"),
    ("DELETE gracePeriodSeconds string", "DELETE", CM + "/c1", {"gracePeriodSeconds": "x"},
     400, "DeleteOptions.gracePeriodSeconds of type int64"),
]


@pytest.mark.parametrize("what,method,path,body,code,message", CASES,
                         ids=[c[0] for c in CASES])
def test_bad_body(cluster, what, method, path, body, code, message):
    ctype = "application/merge-patch+json" if method == "PATCH" else "application/json"
    got, status = _send(cluster, method, path, json.dumps(body).encode(), ctype)
    assert got == code, status
    assert status["kind"] == "Status" and message in status["message"]


NS = "/api/v1/namespaces"


@pytest.mark.parametrize("path,body,ctype,message", [
    (NS, b'{"apiVersion": "v1", "kind": "Namespace", oops}', "application/json",
     "the object provided is unrecognized (must be of type Namespace): couldn't get "
     "version/kind; json parse error: invalid character 'o' looking for beginning of object "
     'key string ({"apiVersion": "v1", "kind": " ...)'),
    (NS, b"", "application/json",
     "the object provided is unrecognized (must be of type Namespace): couldn't get "
     "version/kind; json parse error: unexpected end of JSON input (<empty>)"),
    (PODS, b"[1]", "application/json",
     "the object provided is unrecognized (must be of type Pod): couldn't get version/kind; "
     "json parse error: json: cannot unmarshal array into Go value of type struct { "
     'APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string '
     '"json:\\"kind,omitempty\\"" } (5b315d)'),
    (NS, b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"}}', "application/json",
     'Pod in version "v1" cannot be handled as a Namespace: converting (v1.Pod) to '
     "(core.Namespace): unknown conversion"),
    (PODS, b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"spec":{"containers":"x"}}',
     "application/json",
     'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into Go '
     "struct field PodSpec.spec.containers of type []v1.Container"),
])
def test_decode_errors_read_as_upstream(cluster, path, body, ctype, message):
    got, status = _send(cluster, "POST", path, body, ctype)
    assert got == 400 and status["reason"] == "BadRequest", status
    assert status["message"] == message


@pytest.mark.parametrize("query,code,message", [
    ("resourceVersion=18446744073709551616", 400, "value out of range"),
    ("resourceVersion=abc", 400, "invalid resource version"),
    (f"limit={2 ** 70}", 400, "strconv.ParseInt"),
    ("resourceVersionMatch=Exact", 422, "resourceVersionMatch is forbidden unless "
                                        "resourceVersion is provided"),
    ("resourceVersionMatch=Bogus&resourceVersion=1", 422, 'Unsupported value: "Bogus"'),
    ("resourceVersionMatch=Exact&resourceVersion=0", 422,
     'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'),
    ("sendInitialEvents=true", 422, "sendInitialEvents is forbidden for list"),
    ("watch=1&resourceVersionMatch=NotOlderThan", 422,
     "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"),
    ("watch=1&sendInitialEvents=true", 422,
     "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"),
])
def test_bad_list_options(cluster, query, code, message):
    got, status = _send(cluster, "GET", f"{PODS}?{query}", None)
    assert got == code, status
    assert message in status["message"]
    if code == 422:
        assert status["message"].startswith('ListOptions.meta.k8s.io "" is invalid')


@pytest.mark.parametrize("query", ["limit=-1", "limit=0", "labelSelector=a+in+()"])
def test_list_queries_upstream_accepts(cluster, query):
    got, status = _send(cluster, "GET", f"{PODS}?{query}", None)
    assert got == 200 and status["kind"] == "PodList"


def test_deep_body_is_400(cluster):
    deep = b'{"metadata":{"name":"d"},"data":' + b'{"a":' * 1000 + b'1' + b'}' * 1000 + b'}'
    for method, path, ctype in (("POST", CM, "application/json"),
                                ("POST", CM, "application/yaml"),
                                ("PATCH", CM + "/c1", "application/merge-patch+json"),
                                ("PATCH", CM + "/c1", "application/strategic-merge-patch+json"),
                                ("PATCH", CM + "/c1", "application/apply-patch+yaml")):
        url = path + ("?fieldManager=t" if "apply" in ctype else "")
        got, status = _send(cluster, method, url, deep, ctype)
        assert got == 400, (ctype, status)
        assert "max depth" in status["message"]


def test_body_over_3mib_is_413(cluster):
    big = json.dumps({"metadata": {"name": "big"}, "data": {"a": "x" * (4 * 1024 * 1024)}})
    got, status = _send(cluster, "POST", CM, big.encode())
    assert got == 413 and status["reason"] == "RequestEntityTooLarge"
    assert status["message"] == "Request entity too large: limit is 3145728"


def test_unknown_content_type_is_415(cluster):
    got, status = _send(cluster, "POST", CM, b"<configmap/>", "application/xml")
    assert got == 415 and status["reason"] == "UnsupportedMediaType"
    got, _ = _send(cluster, "PATCH", CM + "/c1", b"{}", "text/plain")
    assert got == 415


def test_no_traceback_in_server_log(cluster):
    assert "Traceback" not in cluster.server.log_path.read_text()
