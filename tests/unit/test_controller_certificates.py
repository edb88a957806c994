"""csrsigning and csrapproving: CSRs built with cryptography, a CA from bootstrap.pki."""

import base64
import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from cmharness import T0, Clock, stamp, synced
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bootstrap.agents.controllers.csrapproving import CSRApprovingController
from bootstrap.agents.controllers.csrsigning import CSRSigningController, duration
from bootstrap.api.fake import FakeClient
from bootstrap.pki.certs import CertSpec, create_ca
from bootstrap.pki.keys import generate_key

pytestmark = pytest.mark.timeout(30)
CLIENT_USAGES = ["digital signature", "key encipherment", "client auth"]
KUBELET_CLIENT = "kubernetes.io/kube-apiserver-client-kubelet"


@pytest.fixture(scope="module")
def ca():
    key = generate_key("ECDSA-P256")
    return create_ca(CertSpec("kubernetes", is_ca=True), key, timedelta(days=3650)), key


def request_pem(cn, orgs=("system:nodes",), dns=(), ips=()):
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    names = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i))
                                              for i in ips]
    if names:
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
    pem = b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    return base64.b64encode(pem).decode()


def csr(name, request, signer=KUBELET_CLIENT, usages=CLIENT_USAGES, user="system:bootstrap:abc",
        groups=("system:bootstrappers", "system:authenticated"), approved=False, **spec):
    obj = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
           "metadata": {"name": name},
           "spec": {"request": request, "signerName": signer, "usages": list(usages),
                    "username": user, "groups": list(groups), **spec},
           "status": {}}
    if approved:
        obj["status"]["conditions"] = [{"type": "Approved", "status": "True",
                                        "reason": "Test"}]
    return obj


def signer(ca, clock):
    cert, key = ca
    return lambda c, f, r: CSRSigningController(c, f, r, ca_cert=cert, ca_key=key,
                                                ttl=8760 * 3600, clock=clock)


def issued(client, name):
    obj = next(o for o in client.objects("certificatesigningrequests")
               if o["metadata"]["name"] == name)
    pem = (obj.get("status") or {}).get("certificate")
    return obj, (x509.load_pem_x509_certificate(base64.b64decode(pem)) if pem else None)


def test_duration_bounds():
    year = timedelta(hours=8760)
    assert duration(year, None) == year
    assert duration(year, 3600) == timedelta(hours=1)
    assert duration(year, 60) == timedelta(minutes=10)
    assert duration(timedelta(hours=1), 7200) == timedelta(hours=1)


async def test_signs_approved_kubelet_client_request(ca):
    clock = Clock(datetime.now(UTC).timestamp())
    async with synced(signer(ca, clock),
                      csr("ok", request_pem("system:node:n1"), approved=True,
                          expirationSeconds=3600),
                      csr("pending", request_pem("system:node:n2"))) as (client, ctl, _):
        await ctl.reconcile("ok")
        await ctl.reconcile("pending")
        _, cert = issued(client, "ok")
        assert issued(client, "pending")[1] is None
        ca_cert = ca[0]
        cert.verify_directly_issued_by(ca_cert)
        assert cert.subject.rfc4514_string() == "CN=system:node:n1,O=system:nodes"
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert ku.critical and ku.value.digital_signature and ku.value.key_encipherment
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        life = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert life == timedelta(hours=1, minutes=5)  # short: backdated start, full end
        assert [r.subresource for r in client.writes()] == ["status"]


async def test_serving_request_gets_its_sans_and_bad_shape_fails(ca):
    clock = Clock(datetime.now(UTC).timestamp())
    serving = csr("serving", request_pem("system:node:n1", dns=("n1",), ips=("10.0.0.1",)),
                  signer="kubernetes.io/kubelet-serving",
                  usages=["digital signature", "server auth"], approved=True)
    bad = csr("bad", request_pem("system:node:n1", dns=("n1",)), approved=True)
    async with synced(signer(ca, clock), serving, bad) as (client, ctl, _):
        await ctl.reconcile("serving")
        await ctl.reconcile("bad")
        cert = issued(client, "serving")[1]
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["n1"]
        assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.1"]
        life = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert life == timedelta(hours=8760)
        obj, none = issued(client, "bad")
        assert none is None
        (failed,) = obj["status"]["conditions"][1:]
        assert (failed["type"], failed["reason"], failed["message"]) == (
            "Failed", "SignerValidationFailure", "DNS subjectAltNames are not allowed")


async def test_other_signers_and_denied_requests_are_ignored(ca):
    clock = Clock(T0)
    denied = csr("denied", request_pem("system:node:n1"), approved=True)
    denied["status"]["conditions"].append({"type": "Denied", "status": "True"})
    async with synced(signer(ca, clock), denied,
                      csr("foreign", request_pem("x"), signer="example.com/foo", approved=True)
                      ) as (client, ctl, _):
        await ctl.reconcile("denied")
        await ctl.reconcile("foreign")
        assert client.writes() == []


class SARClient(FakeClient):
    """Answers SubjectAccessReviews from a table of (user or group, subresource)."""

    def __init__(self, grants):
        super().__init__()
        self.grants = grants
        self.reviews = []

    async def create(self, resource, obj, namespace=None, **kw):
        if obj.get("kind") == "SubjectAccessReview":
            self.reviews.append(obj["spec"])
            spec = obj["spec"]
            sub = spec["resourceAttributes"]["subresource"]
            who = {spec["user"], *spec.get("groups", [])}
            return {**obj, "status": {"allowed": any((w, sub) in self.grants for w in who)}}
        return await super().create(resource, obj, namespace, **kw)


GRANTS = {("system:bootstrappers", "nodeclient"), ("system:nodes", "selfnodeclient")}


async def approve(*objs):
    client = SARClient(GRANTS)
    async with synced(lambda c, f, r: CSRApprovingController(c, f, r, clock=Clock()), *objs,
                      client=client) as (client, ctl, _):
        client.delays = {}
        for o in objs:
            client.delays[o["metadata"]["name"]] = await ctl.reconcile(o["metadata"]["name"])
        return client, {o["metadata"]["name"]: o for o in client.objects(
            "certificatesigningrequests")}


def approved(obj):
    return [(c["type"], c["reason"], c["message"])
            for c in (obj.get("status") or {}).get("conditions") or []]


async def test_bootstrap_token_request_is_approved_after_review():
    client, out = await approve(csr("boot", request_pem("system:node:n1")))
    assert approved(out["boot"]) == [("Approved", "AutoApproved", "Auto approving kubelet "
                                      "client certificate after SubjectAccessReview.")]
    assert [r.subresource for r in client.writes()] == ["approval"]
    assert client.reviews[0]["resourceAttributes"] == {
        "group": "certificates.k8s.io", "resource": "certificatesigningrequests",
        "subresource": "nodeclient", "verb": "create", "version": "*"}
    assert client.reviews[0]["user"] == "system:bootstrap:abc"


async def test_node_renewing_itself_is_approved_but_not_for_another_node():
    node = {"user": "system:node:n1", "groups": ("system:nodes", "system:authenticated")}
    client, out = await approve(csr("self", request_pem("system:node:n1"), **node),
                                csr("other", request_pem("system:node:n2"), **node))
    assert approved(out["self"])[0][2] == \
        "Auto approving self kubelet client certificate after SubjectAccessReview."
    assert approved(out["other"]) == []
    assert client.delays == {"self": None, "other": 30.0}  # denied: reviewed again later
    # "other" was recognised as a node client and its review said no
    assert [r["resourceAttributes"]["subresource"] for r in client.reviews] == [
        "selfnodeclient", "nodeclient"]


async def test_never_approves_serving_or_misshapen_requests():
    serving = csr("serving", request_pem("system:node:n1", dns=("n1",)),
                  signer="kubernetes.io/kubelet-serving",
                  usages=["digital signature", "key encipherment", "server auth"])
    wrong_org = csr("org", request_pem("system:node:n1", orgs=("system:masters",)))
    sans = csr("sans", request_pem("system:node:n1", ips=("10.0.0.9",)))
    usages = csr("usages", request_pem("system:node:n1"),
                 usages=["digital signature", "client auth", "server auth"])
    cn = csr("cn", request_pem("admin"))
    client, out = await approve(serving, wrong_org, sans, usages, cn)
    assert all(approved(o) == [] for o in out.values())
    assert set(client.delays.values()) == {None}  # not ours: never looked at again
    assert client.reviews == [] and client.writes() == []


def stamped(obj, created, **conds):
    obj["metadata"]["creationTimestamp"] = stamp(created)
    obj["status"]["conditions"] = [{"type": t, "status": "True", "lastUpdateTime": stamp(at)}
                                   for t, at in conds.items()]
    return obj


async def test_csrcleaner_removes_old_requests_only(ca):
    from bootstrap.agents.controllers.csrcleaner import CSRCleanerController
    clock = Clock(T0)
    day = 24 * 3600
    req = request_pem("system:node:n1")
    seed = [
        stamped(csr("issued-old", req), T0 - 7200, Approved=T0 - 7200),
        stamped(csr("issued-new", req), T0 - 60, Approved=T0 - 60),
        stamped(csr("denied-old", req), T0 - 7200, Denied=T0 - 3700),
        stamped(csr("failed-new", req), T0 - 7200, Failed=T0 - 100),
        stamped(csr("pending-old", req), T0 - day - 1),
        stamped(csr("pending-new", req), T0 - day + 60),
        stamped(csr("approved-unsigned", req), T0 - day - 1, Approved=T0 - day - 1),
    ]
    for o in seed[:2]:
        o["status"]["certificate"] = base64.b64encode(b"not parsed").decode()
    async with synced(lambda c, f, r: CSRCleanerController(c, f, r, clock=clock), *seed) as (
            client, ctl, _):
        assert await ctl.reconcile("csrcleaner") == 3600
        left = sorted(o["metadata"]["name"] for o in client.objects(
            "certificatesigningrequests"))
        assert left == ["approved-unsigned", "failed-new", "issued-new", "pending-new"]
