"""/openapi/v2 as JSON and as gnostic protobuf, read by the real kubectl (explain's
openapiv2 output goes through client-go's OpenAPISchema(), which asks for protobuf)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

from bootstrap.api import openapi_pb

from .test_kubectl import run

PB = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


def fetch(cluster, accept: str | None, ctx: ssl.SSLContext | None = None):
    req = urllib.request.Request(cluster.server.url + "/openapi/v2")
    if accept is not None:
        req.add_header("Accept", accept)
    ctx = ctx or cluster.ssl_context()
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type"), exc.read()


def test_kubectl_explain_reads_the_protobuf_document(cluster):
    out = run(cluster.admin, "explain", "deployment.spec.strategy",
              "--output=plaintext-openapiv2")
    assert "failed to download openapi" not in out.stderr
    assert "RESOURCE: strategy <Object>" in out.stdout
    assert "rollingUpdate\t<Object>" in out.stdout
    hpa = run(cluster.admin, "explain", "hpa.spec", "--api-version=autoscaling/v1",
              "--output=plaintext-openapiv2").stdout
    assert "targetCPUUtilizationPercentage\t<integer>" in hpa
    # the same document kubectl validates and explains with by default (v3) stays whole
    v3 = run(cluster.admin, "explain", "resourcequota.spec.hard").stdout
    assert "FIELD: hard <map[string]Quantity>" in v3


def test_protobuf_and_json_agree(cluster):
    status, ctype, body = fetch(cluster, PB)
    assert status == 200
    assert ctype == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    doc = openapi_pb.parse(body)
    status, ctype, raw = fetch(cluster, "application/json")
    assert status == 200 and ctype.startswith("application/json")
    js = json.loads(raw)
    assert {p.name for p in doc.paths.path} == set(js["paths"])
    assert {d.name for d in doc.definitions.additional_properties} == set(js["definitions"])
    assert fetch(cluster, None)[0] == 200  # no Accept: JSON


def test_unacceptable_type_and_unauthenticated(cluster):
    status, _, body = fetch(cluster, "text/html")
    assert status == 406 and json.loads(body)["reason"] == "NotAcceptable"
    anonymous = ssl.create_default_context(cafile=cluster.pki.path("ca.crt"))
    status, _, _ = fetch(cluster, PB, anonymous)
    assert status == 401
