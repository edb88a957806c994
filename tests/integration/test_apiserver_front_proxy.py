"""Front-proxy (request-header) authentication against a real API server: the
--requestheader-* flags kubeadm passes, with the front-proxy PKI bootstrap.pki makes."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

from bootstrap.pki import CLIENT_AUTH, CertSpec, load_ca
from bootstrap.pki.certs import cert_to_pem, create_ca, sign_leaf
from bootstrap.pki.keys import generate_key, key_to_pem

from .cluster import ROOT, running_cluster

pytestmark = pytest.mark.timeout(180)

REVIEW = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}


def _front_proxy_flags(pki) -> list[str]:
    return [f"--requestheader-client-ca-file={pki.path('front-proxy-ca.crt')}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            "--requestheader-uid-headers=X-Remote-Uid",
            f"--proxy-client-cert-file={pki.path('front-proxy-client.crt')}",
            f"--proxy-client-key-file={pki.path('front-proxy-client.key')}"]


@pytest.fixture(scope="module")
def cluster():
    with running_cluster(_front_proxy_flags) as c:
        c.fp = c.server
        yield c


def _leaf(c, name: str, ca_name: str | None, cn: str, forged_ca=None) -> ssl.SSLContext:
    """A client context presenting a fresh certificate for ``cn`` signed by the
    cluster CA ``ca_name`` (or by ``forged_ca``: a (cert, key) pair)."""
    if forged_ca is None:
        ca = load_ca(c.pki.dir, ca_name)
        ca_cert, ca_key = ca.cert, ca.key
    else:
        ca_cert, ca_key = forged_ca
    key = generate_key("ECDSA-P256")
    cert = sign_leaf(CertSpec(cn, (), (CLIENT_AUTH,)), key.public_key(), ca_cert, ca_key,
                     timedelta(hours=1))
    crt, keyp = c.base / f"{name}.crt", c.base / f"{name}.key"
    crt.write_bytes(cert_to_pem(cert))
    keyp.write_bytes(key_to_pem(key))
    return _ctx(c, str(crt), str(keyp))


def _ctx(c, crt: str, key: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=c.pki.path("ca.crt"))
    ctx.load_cert_chain(crt, key)
    return ctx


def _proxy_ctx(c) -> ssl.SSLContext:
    return _ctx(c, c.pki.path("front-proxy-client.crt"), c.pki.path("front-proxy-client.key"))


def _whoami(c, ctx: ssl.SSLContext, headers: dict[str, str]) -> tuple[int, dict]:
    req = urllib.request.Request(
        c.fp.url + "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        data=json.dumps(REVIEW).encode(), method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json",
                 **headers})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=20) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_front_proxy_asserts_user_and_groups(cluster):
    code, body = _whoami(cluster, _proxy_ctx(cluster),
                         {"X-Remote-User": "alice", "X-Remote-Group": "devs",
                          "X-Remote-Uid": "u-1"})
    assert code == 201, body
    info = body["status"]["userInfo"]
    assert info["username"] == "alice"
    assert info["uid"] == "u-1"
    assert info["groups"] == ["devs", "system:authenticated"]


def test_every_group_header_value_and_extras(cluster):
    # http.client sends one header line per key: repeat through a raw list instead.
    import http.client
    conn = http.client.HTTPSConnection("127.0.0.1", cluster.fp.port, timeout=20,
                                       context=_proxy_ctx(cluster))
    try:
        conn.putrequest("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews")
        body = json.dumps(REVIEW).encode()
        for k, v in (("Content-Type", "application/json"), ("X-Remote-User", "bob"),
                     ("X-Remote-Group", "a"), ("X-Remote-Group", "b"),
                     ("X-Remote-Extra-Scopes", "view"), ("X-Remote-Extra-Scopes", "edit"),
                     ("X-Remote-Extra-Example.com%2fTeam", "blue"),
                     ("Content-Length", str(len(body)))):
            conn.putheader(k, v)
        conn.endheaders(body)
        resp = conn.getresponse()
        out = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == 201, out
    info = out["status"]["userInfo"]
    assert info["username"] == "bob"
    assert info["groups"] == ["a", "b", "system:authenticated"]
    # Keys lowercased, then %-unescaped, as upstream.
    assert info["extra"] == {"scopes": ["view", "edit"], "example.com/team": ["blue"]}


def test_headers_from_an_ordinary_client_are_ignored(cluster):
    ctx = cluster.ssl_context("carol", ("ops",))
    code, body = _whoami(cluster, ctx, {"X-Remote-User": "alice", "X-Remote-Group": "devs"})
    assert code == 201, body
    info = body["status"]["userInfo"]
    assert info["username"] == "carol"
    assert info["groups"] == ["ops", "system:authenticated"]
    assert "extra" not in info


def test_front_proxy_ca_cert_with_other_cn_is_401(cluster):
    ctx = _leaf(cluster, "other-proxy", "front-proxy-ca", "other-proxy")
    code, body = _whoami(cluster, ctx, {"X-Remote-User": "alice"})
    assert code == 401, body
    assert body.get("reason") == "Unauthorized"


def test_front_proxy_without_username_header_is_401(cluster):
    code, body = _whoami(cluster, _proxy_ctx(cluster), {"X-Remote-Group": "system:masters"})
    assert code == 401, body


def test_front_proxy_ca_never_makes_an_x509_user(cluster):
    # A CN that the client CA would map to an admin: still only a proxy credential.
    ctx = _leaf(cluster, "fp-admin", "front-proxy-ca", "kubernetes-admin")
    code, _ = _whoami(cluster, ctx, {})
    assert code == 401


def test_client_ca_cert_named_front_proxy_client_is_not_a_proxy(cluster):
    ctx = _leaf(cluster, "fake-proxy", "ca", "front-proxy-client")
    code, body = _whoami(cluster, ctx, {"X-Remote-User": "alice", "X-Remote-Group": "devs"})
    assert code == 201, body
    assert body["status"]["userInfo"]["username"] == "front-proxy-client"
    assert "devs" not in body["status"]["userInfo"]["groups"]


def test_forged_front_proxy_cert_is_refused(cluster):
    fake = load_ca(cluster.pki.dir, "front-proxy-ca")
    key = generate_key("ECDSA-P256")
    # Same subject as the real front-proxy CA, different key.
    forged = create_ca(CertSpec(fake.cert.subject.rfc4514_string().removeprefix("CN="),
                                is_ca=True), key, timedelta(days=1))
    ctx = _leaf(cluster, "forged", None, "front-proxy-client", forged_ca=(forged, key))
    with pytest.raises((ssl.SSLError, ConnectionResetError, urllib.error.URLError)):
        _whoami(cluster, ctx, {"X-Remote-User": "alice"})


def test_asserted_user_is_authorized_as_itself(cluster):
    """The asserted user is subject to RBAC like any other: no rights by default."""
    req = urllib.request.Request(cluster.fp.url + "/api/v1/namespaces/default/secrets",
                                 headers={"X-Remote-User": "alice", "X-Remote-Group": "devs"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, context=_proxy_ctx(cluster), timeout=20)
    assert err.value.code == 403
    assert 'User "alice"' in json.loads(err.value.read())["message"]


@pytest.mark.parametrize("flags, message", [
    (["--requestheader-username-headers=X-Remote-User,,X"], "--requestheader-username-headers"),
    (["--proxy-client-cert-file=/nonexistent.crt", "--proxy-client-key-file=/nonexistent.key"],
     "--proxy-client-cert-file: cannot read"),
    (["--proxy-client-cert-file={pki}/front-proxy-client.crt"], "must be given together"),
    (["--proxy-client-cert-file={pki}/front-proxy-client.crt",
      "--proxy-client-key-file={pki}/apiserver.key"], "not a certificate and its key"),
    (["--requestheader-client-ca-file={pki}/sa.pub"], "no PEM certificates"),
])
def test_bad_front_proxy_flags_exit_2(cluster, flags, message):
    pki = Path(cluster.pki.dir)
    r = subprocess.run([sys.executable, "-m", "bootstrap.agents.apiserver",
                        "--etcd-servers=https://127.0.0.1:1",
                        *[f.format(pki=pki) for f in flags]],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert message in lines[0]
