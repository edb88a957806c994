"""API aggregation end to end: an APIService hands wardle.example.com/v1alpha1 to the
extension server in extension_apiserver.py, reached through the real kubectl and the
official Python client; availability conditions, discovery, identity headers, and
the ways it must fail closed."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
import threading
import urllib.error
import urllib.request
from datetime import timedelta

import aiohttp
import pytest
from kubernetes import client, config, watch

from bootstrap.pki import CertSpec
from bootstrap.pki.certs import cert_to_pem, create_ca
from bootstrap.pki.keys import generate_key

from .cluster import eventually, running_cluster
from .extension_apiserver import GROUP, PREFIX, VERSION, ExtensionServer, client_pair, serving_pair
from .test_apiserver_front_proxy import _front_proxy_flags
from .test_kubectl import run

pytestmark = pytest.mark.timeout(300)

NS, SVC = "wardle", "wardle-api"
FORGED, INSECURE = "forged.example.com", "insecure.example.com"


def _apply(kc, obj: dict, check: bool = True):
    return run(kc, "apply", "-f", "-", stdin=json.dumps(obj), check=check)


def _service_and_slice(kc, name: str, port: int, *, port_name: str = "https",
                       ready: bool = True) -> None:
    _apply(kc, {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]}})
    _apply(kc, {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": f"{name}-1", "namespace": NS,
                             "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": ready}}],
                "ports": [{"name": port_name, "port": port, "protocol": "TCP"}]})


def _apiservice(group: str, service: str | None = SVC, ca: bytes | None = None,
                insecure: bool = False, **spec) -> dict:
    s = {"group": group, "version": VERSION, "groupPriorityMinimum": 1000,
         "versionPriority": 15, **spec}
    if service:
        s["service"] = {"namespace": NS, "name": service}
    if ca:
        s["caBundle"] = base64.b64encode(ca).decode()
    if insecure:
        s["insecureSkipTLSVerify"] = True
    return {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": f"{VERSION}.{group}"}, "spec": s}


def _condition(kc, name: str) -> dict:
    out = run(kc, "get", "apiservice", name, "-o", "json", check=False)
    if out.returncode != 0:
        return {}  # not created yet
    obj = json.loads(out.stdout)
    return next((c for c in (obj.get("status") or {}).get("conditions") or []
                 if c["type"] == "Available"), {})


def _wait_condition(kc, name: str, status: str, reason: str) -> dict:
    cond = eventually(lambda: (c := _condition(kc, name)).get("reason") == reason and c)
    assert cond, f"{name}: {_condition(kc, name)}"
    assert cond["status"] == status
    return cond


def _raw(c, path: str, ctx: ssl.SSLContext | None, method: str = "GET",
         headers: dict | None = None, body: dict | None = None) -> tuple[int, str]:
    req = urllib.request.Request(c.server.url + path, method=method,
                                 data=json.dumps(body).encode() if body else None,
                                 headers={"Accept": "application/json",
                                          "Content-Type": "application/json",
                                          **(headers or {})})
    if ctx is None:
        ctx = ssl.create_default_context(cafile=c.pki.path("ca.crt"))
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=20) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.fixture(scope="module")
def agg():
    with running_cluster(_front_proxy_flags) as c:
        crt, key = serving_pair(c.pki.dir, c.base, SVC, NS)
        with ExtensionServer(crt, key, c.base / "pki" / "front-proxy-ca.crt",
                             groups=(GROUP, FORGED, INSECURE)) as ext:
            c.ext = ext
            kc = c.admin
            run(kc, "create", "namespace", NS)
            _service_and_slice(kc, SVC, ext.port)
            _apply(kc, _apiservice(GROUP, ca=(c.base / "pki" / "ca.crt").read_bytes()))
            _wait_condition(kc, f"{VERSION}.{GROUP}", "True", "Passed")
            yield c


@pytest.fixture(scope="module")
def api(agg):
    api_client = config.new_client_from_config(config_file=str(agg.admin))
    try:
        yield client.CustomObjectsApi(api_client)
    finally:
        api_client.close()


def test_available_and_discovered(agg):
    kc = agg.admin
    table = run(kc, "get", "apiservice", f"{VERSION}.{GROUP}").stdout
    assert table.splitlines()[0].split() == ["NAME", "SERVICE", "AVAILABLE", "AGE"]
    assert f"{NS}/{SVC}" in table and " True " in table
    out = run(kc, "api-resources", f"--api-group={GROUP}").stdout
    row = next(line.split() for line in out.splitlines() if line.startswith("flunders"))
    assert row == ["flunders", "fl", f"{GROUP}/{VERSION}", "true", "Flunder"]
    groups = json.loads(run(kc, "get", "--raw", "/apis").stdout)
    assert any(g["name"] == GROUP and g["preferredVersion"]["version"] == VERSION
               for g in groups["groups"])
    group = json.loads(run(kc, "get", "--raw", f"/apis/{GROUP}").stdout)
    assert [v["groupVersion"] for v in group["versions"]] == [f"{GROUP}/{VERSION}"]
    # The group-version document itself comes from the extension.
    doc = json.loads(run(kc, "get", "--raw", PREFIX).stdout)
    assert doc["resources"][0]["name"] == "flunders"
    assert run(kc, "api-versions").stdout.count(f"{GROUP}/{VERSION}") == 1


def test_local_group_versions_have_local_apiservices(agg):
    kc = agg.admin
    out = run(kc, "get", "apiservices").stdout
    rows = {line.split()[0]: line.split()[1:3] for line in out.splitlines()[1:]}
    for name in ("v1.", "v1.apps", "v1.rbac.authorization.k8s.io",
                 "v1.apiextensions.k8s.io", "v2.autoscaling"):
        assert rows.get(name) == ["Local", "True"], (name, out)
    assert rows[f"{VERSION}.{GROUP}"] == [f"{NS}/{SVC}", "True"]
    apps = json.loads(run(kc, "get", "apiservice", "v1.apps", "-o", "json").stdout)
    assert apps["spec"] == {"group": "apps", "version": "v1", "groupPriorityMinimum": 17800,
                            "versionPriority": 15}
    assert apps["metadata"]["labels"] == {"kube-aggregator.kubernetes.io/automanaged":
                                          "onstart"}
    cond = _condition(kc, "v1.apps")
    assert (cond["reason"], cond["message"]) == ("Local",
                                                 "Local APIServices are always available")
    # A CRD's group-version gets one while it is served, labelled "true".
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "things.local.example.com"},
           "spec": {"group": "local.example.com", "scope": "Cluster",
                    "names": {"plural": "things", "singular": "thing", "kind": "Thing"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object"}}}]}}
    _apply(kc, crd)
    _wait_condition(kc, "v1.local.example.com", "True", "Local")
    mine = json.loads(run(kc, "get", "apiservice", "v1.local.example.com", "-o",
                          "json").stdout)
    assert mine["metadata"]["labels"] == {"kube-aggregator.kubernetes.io/automanaged": "true"}
    assert (mine["spec"]["groupPriorityMinimum"], mine["spec"]["versionPriority"]) == (1000,
                                                                                        100)
    run(kc, "delete", "crd", "things.local.example.com")
    assert eventually(lambda: run(kc, "get", "apiservice", "v1.local.example.com",
                                  check=False).returncode != 0, 60)


def test_extension_servers_can_read_how_to_trust_us(agg):
    """kube-system/extension-apiserver-authentication, readable through the
    extension-apiserver-authentication-reader Role, as metrics-server reads it."""
    kc = agg.admin
    cm = json.loads(run(kc, "get", "configmap", "extension-apiserver-authentication", "-n",
                        "kube-system", "-o", "json").stdout)["data"]
    assert cm["client-ca-file"] == (agg.base / "pki" / "ca.crt").read_text()
    assert cm["requestheader-client-ca-file"] == \
        (agg.base / "pki" / "front-proxy-ca.crt").read_text()
    assert json.loads(cm["requestheader-allowed-names"]) == ["front-proxy-client"]
    assert json.loads(cm["requestheader-username-headers"]) == ["X-Remote-User"]
    assert json.loads(cm["requestheader-group-headers"]) == ["X-Remote-Group"]
    assert json.loads(cm["requestheader-extra-headers-prefix"]) == ["X-Remote-Extra-"]
    run(kc, "create", "serviceaccount", "wardle-server", "-n", NS)
    sa = f"system:serviceaccount:{NS}:wardle-server"
    can = run(kc, "auth", "can-i", "get", "configmap/extension-apiserver-authentication",
              "-n", "kube-system", f"--as={sa}", check=False)
    assert can.stdout.strip() == "no"
    run(kc, "create", "rolebinding", "wardle-auth-reader", "-n", "kube-system",
        "--role=extension-apiserver-authentication-reader",
        f"--serviceaccount={NS}:wardle-server")
    assert eventually(lambda: run(kc, "auth", "can-i", "get",
                                  "configmap/extension-apiserver-authentication", "-n",
                                  "kube-system", f"--as={sa}", check=False
                                  ).stdout.strip() == "yes")
    other = run(kc, "auth", "can-i", "get", "configmap/kube-root-ca.crt", "-n",
                "kube-system", f"--as={sa}", check=False)
    assert other.stdout.strip() == "no"


def test_explain_reads_the_extensions_openapi(agg):
    kc = agg.admin
    index = json.loads(run(kc, "get", "--raw", "/openapi/v3").stdout)["paths"]
    url = index[f"apis/{GROUP}/{VERSION}"]["serverRelativeURL"]
    assert url.startswith(f"/openapi/v3/apis/{GROUP}/{VERSION}?hash=")
    assert "api/v1" in index and "apis/apps/v1" in index  # ours are still there
    out = run(kc, "explain", "flunders").stdout
    assert "KIND:       Flunder" in out and "A Flunder is a test object." in out
    out = run(kc, "explain", "flunders.spec.reference").stdout
    assert "The name of another flunder." in out


def test_kubectl_crud_through_the_proxy(agg):
    kc = agg.admin
    flunder = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Flunder",
               "metadata": {"name": "one", "namespace": NS}, "spec": {"reference": "ref-1"}}
    out = run(kc, "create", "-f", "-", stdin=json.dumps(flunder)).stdout
    assert "flunder.wardle.example.com/one created" in out
    table = run(kc, "get", "fl", "-n", NS).stdout
    assert table.splitlines()[0].split() == ["NAME", "REFERENCE"]
    assert table.splitlines()[1].split() == ["one", "ref-1"]
    got = json.loads(run(kc, "get", "flunder", "one", "-n", NS, "-o", "json").stdout)
    assert got["spec"] == {"reference": "ref-1"}
    missing = run(kc, "get", "flunder", "nope", "-n", NS, check=False)
    assert missing.returncode != 0 and 'flunders.wardle.example.com "nope" not found' in \
        missing.stderr
    assert 'flunder.wardle.example.com "one" deleted' in \
        run(kc, "delete", "flunder", "one", "-n", NS).stdout


def test_python_client_list_and_watch_stream(agg, api):
    api.create_namespaced_custom_object(GROUP, VERSION, NS, "flunders", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Flunder",
        "metadata": {"name": "before"}})
    listed = api.list_namespaced_custom_object(GROUP, VERSION, NS, "flunders")
    assert [o["metadata"]["name"] for o in listed["items"]] == ["before"]
    seen: list[tuple[str, str]] = []
    w = watch.Watch()

    def later():
        eventually(lambda: seen)  # the stream delivered its first event: it is live
        api.create_namespaced_custom_object(GROUP, VERSION, NS, "flunders", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "Flunder",
            "metadata": {"name": "during"}})

    t = threading.Thread(target=later)
    t.start()
    for ev in w.stream(api.list_namespaced_custom_object, GROUP, VERSION, NS, "flunders",
                       timeout_seconds=30):
        seen.append((ev["type"], ev["object"]["metadata"]["name"]))
        if len(seen) == 2:
            w.stop()
    t.join(30)
    assert seen == [("ADDED", "before"), ("ADDED", "during")]


def test_upgraded_connections_are_relayed_with_our_identity(agg):
    async def talk() -> list[str]:
        url = (agg.server.url.replace("https", "wss")
               + f"{PREFIX}/namespaces/{NS}/flunders/one/attach")
        async with aiohttp.ClientSession() as session, session.ws_connect(
                url, ssl=agg.ssl_context(),
                headers={"X-Remote-User": "mallory"}) as ws:
            got = [(await ws.receive_str())]
            await ws.send_str("ping")
            got.append(await ws.receive_str())
            return got

    assert asyncio.run(talk()) == ["hello kubernetes-admin", "echo ping"]


def test_identity_headers_come_from_authentication_only(agg):
    kc = agg.admin
    _apply(kc, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "wardle-reader"},
                "rules": [{"apiGroups": [GROUP], "resources": ["whoami"],
                           "verbs": ["get", "list"]}]})
    run(kc, "create", "clusterrolebinding", "wardle-reader", "--clusterrole=wardle-reader",
        "--user=alice", "--user=bob")
    crt, key = client_pair(agg.pki.dir, agg.base, "ca", "alice")
    ctx = ssl.create_default_context(cafile=agg.pki.path("ca.crt"))
    ctx.load_cert_chain(str(crt), str(key))
    forged = {"X-Remote-User": "mallory", "X-Remote-Group": "system:masters",
              "X-Remote-Extra-Scopes": "everything", "X-Remote-Uid": "0"}
    code, body = eventually(lambda: (r := _raw(agg, f"{PREFIX}/whoami", ctx,
                                               headers=forged))[0] == 200 and r)
    who = json.loads(body)
    assert who["user"] == "alice"
    assert "system:masters" not in who["groups"] and "system:authenticated" in who["groups"]
    assert who["extra"] == {}
    assert not {"x-remote-extra-scopes", "x-remote-uid", "authorization"} & set(who["headers"])
    # A bearer token authenticates here and stays here.
    run(kc, "create", "serviceaccount", "token-user", "-n", NS)
    run(kc, "create", "clusterrolebinding", "wardle-reader-sa", "--clusterrole=wardle-reader",
        f"--serviceaccount={NS}:token-user")
    token = run(kc, "create", "token", "token-user", "-n", NS).stdout.strip()
    code, body = eventually(lambda: (r := _raw(agg, f"{PREFIX}/whoami", None, headers={
        "Authorization": f"Bearer {token}"}))[0] == 200 and r)
    who = json.loads(body)
    assert who["user"] == f"system:serviceaccount:{NS}:token-user"
    assert "authorization" not in who["headers"]
    # An impersonated user's extra travels as X-Remote-Extra-<key>, escaped; the
    # Impersonate-* headers themselves stay behind.
    code, body = _raw(agg, f"{PREFIX}/whoami", agg.ssl_context(), headers={
        "Impersonate-User": "bob", "Impersonate-Extra-Example.com%2fscopes": "read"})
    assert code == 200, body
    who = json.loads(body)
    assert who["user"] == "bob" and who["extra"] == {"example.com/scopes": ["read"]}
    assert not any(h.startswith("impersonate-") for h in who["headers"])


def test_unauthenticated_and_unauthorized_callers_never_reach_the_extension(agg):
    before = len(agg.ext.seen)
    code, body = _raw(agg, f"{PREFIX}/namespaces/{NS}/flunders", None,
                      headers={"X-Remote-User": "admin", "X-Remote-Group": "system:masters"})
    assert code == 401, body
    code, body = _raw(agg, f"{PREFIX}/namespaces/{NS}/flunders", None,
                      headers={"Authorization": "Bearer forged.token.value"})
    assert code == 401, body
    # Authenticated without RBAC for the resource: forbidden here, as upstream.
    crt, key = client_pair(agg.pki.dir, agg.base, "ca", "eve")
    ctx = ssl.create_default_context(cafile=agg.pki.path("ca.crt"))
    ctx.load_cert_chain(str(crt), str(key))
    code, body = _raw(agg, f"{PREFIX}/namespaces/{NS}/flunders", ctx)
    assert code == 403 and 'cannot list resource "flunders" in API group ' \
        '"wardle.example.com"' in json.loads(body)["message"]
    assert not [s for s in agg.ext.seen[before:] if s.user != "system:kube-aggregator"]
    # The extension itself refuses anyone without the front-proxy certificate.
    direct = ssl.create_default_context(cafile=agg.pki.path("ca.crt"))
    direct.load_cert_chain(str(crt), str(key))
    direct.check_hostname = False
    with pytest.raises((ssl.SSLError, ConnectionResetError, urllib.error.URLError)):
        urllib.request.urlopen(f"https://127.0.0.1:{agg.ext.port}{PREFIX}", context=direct,
                               timeout=10).read()


def test_forged_ca_bundle_fails_closed_and_insecure_skip_is_honoured(agg):
    kc = agg.admin
    key = generate_key("ECDSA-P256")
    other_ca = cert_to_pem(create_ca(CertSpec("not-the-cluster-ca", is_ca=True), key,
                                     timedelta(days=1)))
    _apply(kc, _apiservice(FORGED, ca=other_ca))
    _apply(kc, _apiservice(INSECURE, insecure=True))
    # Reachable (the availability check, as upstream's, does not verify), but the
    # proxy will not talk to a server its caBundle does not vouch for.
    _wait_condition(kc, f"{VERSION}.{FORGED}", "True", "Passed")
    _wait_condition(kc, f"{VERSION}.{INSECURE}", "True", "Passed")
    before = len(agg.ext.seen)
    code, body = _raw(agg, f"/apis/{FORGED}/{VERSION}/namespaces/{NS}/flunders",
                      agg.ssl_context())
    assert code == 503, body
    assert "certificate verify failed" in body
    assert not [s for s in agg.ext.seen[before:] if FORGED in s.path
                and s.user != "system:kube-aggregator"]
    code, body = _raw(agg, f"/apis/{INSECURE}/{VERSION}/namespaces/{NS}/flunders",
                      agg.ssl_context())
    assert code == 200 and json.loads(body)["kind"] == "FlunderList"
    out = run(kc, "api-resources").stdout
    assert f"{INSECURE}/{VERSION}" in out and f"{FORGED}/{VERSION}" not in out
    run(kc, "delete", "apiservice", f"{VERSION}.{FORGED}", f"{VERSION}.{INSECURE}")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(("group", "setup", "reason", "message"), [
    ("nosvc.example.com", None, "ServiceNotFound", 'service/nosvc in "wardle" is not present'),
    ("noslice.example.com", "no-slice", "EndpointsNotFound",
     'cannot find endpointslices for service/noslice in "wardle"'),
    ("notready.example.com", "not-ready", "MissingEndpoints",
     'endpointslices for service/notready in "wardle" have no addresses with port name '
     '"https"'),
    ("closed.example.com", "closed", "FailedDiscoveryCheck",
     "failing or missing response from https://127.0.0.1:"),
])
def test_unavailable_reasons_and_503(agg, group, setup, reason, message):
    kc = agg.admin
    svc = group.split(".")[0]
    if setup == "no-slice":
        _apply(kc, {"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": svc, "namespace": NS},
                    "spec": {"ports": [{"name": "https", "port": 443}]}})
    elif setup == "not-ready":
        _service_and_slice(kc, svc, agg.ext.port, ready=False)
    elif setup == "closed":
        _service_and_slice(kc, svc, _closed_port())
    _apply(kc, _apiservice(group, service=svc, insecure=True))
    cond = _wait_condition(kc, f"{VERSION}.{group}", "False", reason)
    assert message in cond["message"]
    table = run(kc, "get", "apiservice", f"{VERSION}.{group}").stdout
    assert f"False ({reason})" in table
    code, body = _raw(agg, f"/apis/{group}/{VERSION}/namespaces/{NS}/flunders",
                      agg.ssl_context())
    assert (code, body) == (503, "service unavailable\n")
    run(kc, "delete", "apiservice", f"{VERSION}.{group}")


def test_recovers_when_endpoints_appear(agg):
    kc = agg.admin
    group = "late.example.com"
    agg.ext.groups += (group,)
    _apply(kc, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "late",
                                                                    "namespace": NS},
                "spec": {"ports": [{"name": "https", "port": 443}]}})
    _apply(kc, _apiservice(group, service="late", insecure=True))
    _wait_condition(kc, f"{VERSION}.{group}", "False", "EndpointsNotFound")
    _service_and_slice(kc, "late", agg.ext.port)
    _wait_condition(kc, f"{VERSION}.{group}", "True", "Passed")
    assert f"{group}/{VERSION}" in eventually(
        lambda: (o := run(kc, "api-versions").stdout) and f"{group}/{VERSION}" in o and o)
    run(kc, "delete", "apiservice", f"{VERSION}.{group}")
    gone = eventually(lambda: _raw(agg, f"/apis/{group}/{VERSION}", agg.ssl_context())[0]
                      == 404)
    assert gone


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda o: o["metadata"].update(name="v1.wrong.example.com"),
     'metadata.name: Invalid value: "v1.wrong.example.com": must be '
     '`spec.version+"."+spec.group`: "v1alpha1.bad.example.com"'),
    (lambda o: o["spec"].update(groupPriorityMinimum=0),
     "spec.groupPriorityMinimum: Invalid value: 0: must be positive and less than 20000"),
    (lambda o: o["spec"].update(versionPriority=1001),
     "spec.versionPriority: Invalid value: 1001: must be positive and less than 1000"),
    (lambda o: o["spec"].update(insecureSkipTLSVerify=True, caBundle="Zm9v"),
     "spec.insecureSkipTLSVerify: Invalid value: true: may not be true if caBundle is present"),
    (lambda o: o["spec"]["service"].pop("name"), "spec.service.name: Required value"),
    (lambda o: o["spec"].pop("service") and o["spec"].update(caBundle="Zm9v"),
     'spec.caBundle: Invalid value: "3 bytes": local APIServices may not have a caBundle'),
    (lambda o: o["spec"].update(version="V1"),
     'spec.version: Invalid value: "V1": a DNS-1035 label must consist of lower case'),
])
def test_bad_apiservice_specs_are_422(agg, mutate, message):
    obj = _apiservice("bad.example.com")
    mutate(obj)
    out = _apply(agg.admin, obj, check=False)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr
    assert "is invalid" in out.stderr


def test_service_port_defaults_to_443(agg):
    obj = _apiservice("defaulted.example.com", service="nosvc")
    out = run(agg.admin, "create", "-f", "-", "--dry-run=server", "-o", "json",
              stdin=json.dumps(obj)).stdout
    assert json.loads(out)["spec"]["service"]["port"] == 443
