"""CertificateSigningRequest knowledge the signer and the approver share: parsing the
PEM request, the kubelet request shapes (pkg/apis/certificates/helpers.go), the
usage names and the condition helpers."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bootstrap.api.resources import by_gvr

CSRS = by_gvr("certificates.k8s.io", "v1", "certificatesigningrequests")

KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"
KUBELET_CLIENT = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"

NODES_GROUP = "system:nodes"
NODE_PREFIX = "system:node:"

# capi.KeyUsage -> (x509.KeyUsage attribute | None, ExtendedKeyUsage OID | None)
KEY_USAGES = {
    "signing": "digital_signature", "digital signature": "digital_signature",
    "content commitment": "content_commitment", "key encipherment": "key_encipherment",
    "key agreement": "key_agreement", "data encipherment": "data_encipherment",
    "cert sign": "key_cert_sign", "crl sign": "crl_sign", "encipher only": "encipher_only",
    "decipher only": "decipher_only",
}
EXT_KEY_USAGES = {
    "any": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    "server auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "s/mime": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "ipsec end system": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.5"),
    "ipsec tunnel": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.6"),
    "ipsec user": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.7"),
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "microsoft sgc": x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.3"),
    "netscape sgc": x509.ObjectIdentifier("2.16.840.1.113730.4.1"),
}

_CLIENT_USAGES = ({"digital signature", "key encipherment", "client auth"},
                  {"digital signature", "client auth"})
_SERVING_USAGES = ({"digital signature", "key encipherment", "server auth"},
                   {"digital signature", "server auth"})


class CSRError(ValueError):
    pass


@dataclass(frozen=True)
class Request:
    """What a PEM CERTIFICATE REQUEST asks for."""

    csr: x509.CertificateSigningRequest
    common_name: str
    organizations: tuple[str, ...]
    dns_names: tuple[str, ...]
    ips: tuple[str, ...]
    emails: tuple[str, ...]
    uris: tuple[str, ...]


def parse_request(spec_request: str) -> Request:
    """spec.request (base64 of PEM, as the JSON form carries []byte) -> Request."""
    try:
        pem = base64.b64decode(spec_request or "")
    except ValueError:
        raise CSRError("spec.request is not base64") from None
    if b"-----BEGIN CERTIFICATE REQUEST-----" not in pem:
        raise CSRError("PEM block type must be CERTIFICATE REQUEST")
    try:
        csr = x509.load_pem_x509_csr(pem)
    except ValueError as exc:
        raise CSRError(f"cannot parse certificate request: {exc}") from None
    cn = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = tuple(a.value for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    dns, ips, emails, uris = (), (), (), ()
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(i) for i in san.get_values_for_type(x509.IPAddress))
        emails = tuple(san.get_values_for_type(x509.RFC822Name))
        uris = tuple(san.get_values_for_type(x509.UniformResourceIdentifier))
    except x509.ExtensionNotFound:
        pass
    return Request(csr, cn[0] if cn else "", orgs, dns, ips, emails, uris)


def validate_kubelet_client(req: Request, usages: list[str]) -> None:
    """ValidateKubeletClientCSR, with upstream's error messages."""
    if req.organizations != (NODES_GROUP,):
        raise CSRError("subject organization is not system:nodes")
    if req.dns_names:
        raise CSRError("DNS subjectAltNames are not allowed")
    if req.emails:
        raise CSRError("Email subjectAltNames are not allowed")
    if req.ips:
        raise CSRError("IP subjectAltNames are not allowed")
    if req.uris:
        raise CSRError("URI subjectAltNames are not allowed")
    if not req.common_name.startswith(NODE_PREFIX):
        raise CSRError("subject common name does not begin with system:node:")
    if set(usages) not in _CLIENT_USAGES:
        raise CSRError("usages did not match [client auth digital signature key encipherment]")


def validate_kubelet_serving(req: Request, usages: list[str]) -> None:
    """ValidateKubeletServingCSR."""
    if req.organizations != (NODES_GROUP,):
        raise CSRError("subject organization is not system:nodes")
    if not req.dns_names and not req.ips:
        raise CSRError("DNS or IP subjectAltName is required")
    if req.emails:
        raise CSRError("Email subjectAltNames are not allowed")
    if req.uris:
        raise CSRError("URI subjectAltNames are not allowed")
    if set(usages) not in _SERVING_USAGES:
        raise CSRError("usages did not match [digital signature key encipherment server auth]")
    if not req.common_name.startswith(NODE_PREFIX):
        raise CSRError("subject common name does not begin with system:node:")


def validate_apiserver_client(req: Request, usages: list[str]) -> None:
    """validAPIServerClientUsages: client auth required, two optional extras."""
    for u in usages:
        if u not in ("digital signature", "key encipherment", "client auth"):
            raise CSRError(f"invalid usage for client certificate: {u}")
    if "client auth" not in usages:
        raise CSRError("missing required usage for client certificate: client auth")


VALIDATORS = {
    KUBE_APISERVER_CLIENT: validate_apiserver_client,
    KUBELET_CLIENT: validate_kubelet_client,
    KUBELET_SERVING: validate_kubelet_serving,
}


def has_condition(csr: dict, type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status", "True") == "True"
               for c in (csr.get("status") or {}).get("conditions") or [])


def is_approved(csr: dict) -> bool:
    """Approved and not Denied (IsCertificateRequestApproved)."""
    return has_condition(csr, "Approved") and not has_condition(csr, "Denied")
