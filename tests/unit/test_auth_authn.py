"""Authentication: x509, bootstrap tokens, service-account JWTs, anonymous."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bootstrap.agents.apiserver import serviceaccount as sat
from bootstrap.agents.apiserver.auth.authn import Authenticator, UserInfo
from bootstrap.api.errors import APIError


class FakeStore:
    """In-memory stand-in for CORE's watch-cache store (our own boundary)."""

    def __init__(self, objs=()):
        self.objs: dict[tuple, dict] = {}
        for plural, obj in objs:
            self.put(plural, obj)

    def put(self, plural: str, obj: dict) -> None:
        meta = obj["metadata"]
        self.objs[(plural, meta.get("namespace"), meta["name"])] = obj

    def delete(self, plural: str, namespace, name) -> None:
        self.objs.pop((plural, namespace, name), None)

    async def get(self, plural, namespace, name):
        return self.objs.get((plural, namespace or None, name))

    async def list(self, plural, namespace=None):
        return [o for (p, ns, _), o in self.objs.items()
                if p == plural and (namespace is None or ns == namespace)]

    async def list_fresh(self, plural, namespace=None):
        return await self.list(plural, namespace)

    async def write_if_unchanged(self, plural, obj):
        meta = obj["metadata"]
        current = self.objs.get((plural, meta.get("namespace"), meta["name"]))
        if current is None or current["metadata"].get("resourceVersion") != \
                meta.get("resourceVersion"):
            return None
        obj = dict(obj, metadata=dict(meta, resourceVersion=str(
            int(meta.get("resourceVersion") or 0) + 1)))
        self.put(plural, obj)
        return obj


def _name(cn, orgs=()):
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    return x509.Name(attrs + [x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn="kubernetes"):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def make_leaf(ca_key, ca_cert, cn, orgs=(), eku=ExtendedKeyUsageOID.CLIENT_AUTH,
              not_after=None):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(cn, orgs))
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=1))
               .not_valid_after(not_after or now + timedelta(hours=1)))
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


@pytest.fixture
def ca(tmp_path):
    key, cert = make_ca()
    path = tmp_path / "ca.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, path


async def test_x509_cn_is_user_and_o_are_groups(ca):
    key, cert, path = ca
    _, leaf = make_leaf(key, cert, "kubernetes-admin", ["kubeadm:cluster-admins"])
    auth = Authenticator(client_ca_file=path)
    user = await auth.authenticate(leaf, None)
    assert user.name == "kubernetes-admin"
    assert user.groups == ["kubeadm:cluster-admins", "system:authenticated"]
    # DER bytes, as read from the TLS transport, work too.
    der = leaf.public_bytes(serialization.Encoding.DER)
    for _ in range(2):
        assert (await auth.authenticate(der, None)).name == "kubernetes-admin"


async def test_x509_from_another_ca_or_expired_or_server_only_is_rejected(ca):
    key, cert, path = ca
    other_key, other_ca = make_ca("other")
    _, foreign = make_leaf(other_key, other_ca, "mallory")
    _, server_only = make_leaf(key, cert, "apiserver", eku=ExtendedKeyUsageOID.SERVER_AUTH)
    _, expired = make_leaf(key, cert, "old",
                           not_after=datetime.now(UTC) - timedelta(seconds=1))
    auth = Authenticator(client_ca_file=path, anonymous_allowed=False)
    for bad in (foreign, server_only, expired):
        der = bad.public_bytes(serialization.Encoding.DER)
        for _ in range(2):  # the second time through the verified-certificate cache
            for form in (bad, der):
                with pytest.raises(APIError) as exc:
                    await auth.authenticate(form, None)
                assert exc.value.code == 401


async def test_anonymous_only_when_allowed_and_never_with_a_bad_token():
    allowed = Authenticator(anonymous_allowed=True)
    user = await allowed.authenticate(None, None)
    assert user.name == "system:anonymous" and user.groups == ["system:unauthenticated"]
    with pytest.raises(APIError) as exc:
        await allowed.authenticate(None, "Bearer not-a-token")
    assert exc.value.code == 401 and exc.value.reason == "Unauthorized"
    with pytest.raises(APIError):
        await Authenticator(anonymous_allowed=False).authenticate(None, None)
    with pytest.raises(APIError):
        await allowed.authenticate(None, "Basic dXNlcjpwdw==")


def bootstrap_secret(token_id="abcdef", secret="0123456789abcdef", *, expiration=None,
                     usage="true", groups=None, type_="bootstrap.kubernetes.io/token"):
    data = {"token-id": token_id, "token-secret": secret,
            "usage-bootstrap-authentication": usage}
    if expiration:
        data["expiration"] = expiration
    if groups:
        data["auth-extra-groups"] = groups
    return {"metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
            "type": type_,
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


async def test_bootstrap_token_user_groups_and_expiry():
    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    past = (datetime.now(UTC) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    store = FakeStore([("secrets", bootstrap_secret(
        expiration=future, groups="system:bootstrappers:kubeadm:default-node-token"))])
    auth = Authenticator(bootstrap_token_enabled=True, store=store)
    user = await auth.authenticate(None, "Bearer abcdef.0123456789abcdef")
    assert user.name == "system:bootstrap:abcdef"
    assert user.groups == ["system:bootstrappers",
                           "system:bootstrappers:kubeadm:default-node-token",
                           "system:authenticated"]
    for bad_secret in (bootstrap_secret(expiration=past), bootstrap_secret(usage="false"),
                       bootstrap_secret(groups="evil-group"),
                       bootstrap_secret(type_="Opaque")):
        store.put("secrets", bad_secret)
        with pytest.raises(APIError):
            await auth.authenticate(None, "Bearer abcdef.0123456789abcdef")
    store.put("secrets", bootstrap_secret())
    with pytest.raises(APIError):  # wrong secret half
        await auth.authenticate(None, "Bearer abcdef.ffffffffffffffff")
    # Disabled: the same valid token is just an unknown token.
    with pytest.raises(APIError):
        await Authenticator(bootstrap_token_enabled=False, store=store).authenticate(
            None, "Bearer abcdef.0123456789abcdef")


def _sa(ns="default", name="builder", uid="sa-uid"):
    return {"metadata": {"namespace": ns, "name": name, "uid": uid}}


@pytest.mark.parametrize("keygen", [lambda: rsa.generate_private_key(65537, 2048),
                                    lambda: ec.generate_private_key(ec.SECP256R1())])
async def test_service_account_token_checked_against_live_objects(keygen):
    key = keygen()
    issuer = "https://kubernetes.default.svc.cluster.local"
    pod = {"kind": "Pod", "metadata": {"namespace": "default", "name": "p", "uid": "pod-uid"}}
    store = FakeStore([("serviceaccounts", _sa()), ("pods", pod)])
    auth = Authenticator(sa_public_keys=[key.public_key()], sa_issuer=issuer, store=store)
    token, exp = sat.issue_token(_sa(), [issuer], 3600, pod, key, issuer)
    assert exp > datetime.now(UTC)
    user = await auth.authenticate(None, f"Bearer {token}")
    assert user.name == "system:serviceaccount:default:builder"
    assert user.uid == "sa-uid"
    assert user.groups == ["system:serviceaccounts", "system:serviceaccounts:default",
                           "system:authenticated"]
    assert user.extra["authentication.kubernetes.io/pod-name"] == ["p"]
    assert user.extra["authentication.kubernetes.io/credential-id"][0].startswith("JTI=")

    # Pod recreated with another uid: the bound token dies with the old pod.
    store.put("pods", {**pod, "metadata": {**pod["metadata"], "uid": "new"}})
    with pytest.raises(APIError):
        await auth.authenticate(None, f"Bearer {token}")
    store.put("pods", pod)
    # Service account deleted and recreated: old tokens stop working.
    store.put("serviceaccounts", _sa(uid="other"))
    with pytest.raises(APIError):
        await auth.authenticate(None, f"Bearer {token}")


async def test_service_account_token_wrong_key_audience_or_expired():
    key, other = (rsa.generate_private_key(65537, 2048) for _ in range(2))
    issuer = "https://issuer"
    store = FakeStore([("serviceaccounts", _sa())])
    auth = Authenticator(sa_public_keys=[key.public_key()], sa_issuer=issuer, store=store)
    forged, _ = sat.issue_token(_sa(), [issuer], 3600, None, other, issuer)
    wrong_aud, _ = sat.issue_token(_sa(), ["vault"], 3600, None, key, issuer)
    wrong_iss, _ = sat.issue_token(_sa(), [issuer], 3600, None, key, "https://elsewhere")
    expired, _ = sat.issue_token(_sa(), [issuer], 600, None, key, issuer,
                                 now=datetime.now(UTC).timestamp() - 700)
    for token in (forged, wrong_aud, wrong_iss, expired):
        with pytest.raises(APIError):
            await auth.authenticate(None, f"Bearer {token}")
    good, _ = sat.issue_token(_sa(), [issuer], 3600, None, key, issuer)
    assert (await auth.authenticate(None, f"Bearer {good}")).name.endswith(":builder")


async def test_public_keys_load_from_private_public_and_cert_pem(tmp_path):
    key = rsa.generate_private_key(65537, 2048)
    priv = tmp_path / "sa.key"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    pub = tmp_path / "sa.pub"
    pub.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    keys = sat.load_public_keys([priv, pub])
    assert len(keys) == 2 and {sat.key_id(k) for k in keys} == {sat.key_id(key)}
    empty = tmp_path / "empty"
    empty.write_text("nothing here")
    with pytest.raises(ValueError):
        sat.load_public_keys([empty])


async def test_token_request_binds_to_pod_and_validates_expiration():
    key = ec.generate_private_key(ec.SECP256R1())
    pod = {"metadata": {"namespace": "default", "name": "p", "uid": "pod-uid"},
           "spec": {"nodeName": "n1"}}
    node = {"metadata": {"name": "n1", "uid": "node-uid"}}
    store = FakeStore([("serviceaccounts", _sa()), ("pods", pod), ("nodes", node)])
    body = {"spec": {"audiences": ["api"], "expirationSeconds": 1200,
                     "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p"}}}
    out = await sat.token_request(_sa(), body, store, key, "https://iss", ["https://iss"])
    assert out["kind"] == "TokenRequest" and out["spec"]["boundObjectRef"]["uid"] == "pod-uid"
    claims = sat.verify_token(out["status"]["token"], [key.public_key()], ["https://iss"],
                              ["api"]).claims
    assert claims["kubernetes.io"]["pod"] == {"name": "p", "uid": "pod-uid"}
    assert claims["kubernetes.io"]["node"] == {"name": "n1", "uid": "node-uid"}
    assert claims["exp"] - claims["iat"] == 1200
    with pytest.raises(APIError) as exc:
        await sat.token_request(_sa(), {"spec": {"expirationSeconds": 10}}, store, key,
                                "https://iss", ["https://iss"])
    assert exc.value.code == 422
    with pytest.raises(APIError) as exc:
        await sat.token_request(_sa(), {"spec": {"boundObjectRef": {"kind": "Pod",
                                                                    "name": "gone"}}},
                                store, key, "https://iss", ["https://iss"])
    assert exc.value.code == 404


def test_userinfo_node_name():
    assert UserInfo("system:node:n1", groups=["system:nodes"]).node_name == "n1"
    assert UserInfo("system:node:n1", groups=[]).node_name is None
    assert UserInfo("alice", groups=["system:nodes"]).node_name is None
