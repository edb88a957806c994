"""X.509 building blocks: a certificate spec, self-signed CAs, signed leaves, checks.

Mirrors kubeadm's pkiutil: CAs are backdated five minutes to survive small
clock jumps, leaves start when their CA starts, every certificate gets
``digitalSignature | keyEncipherment`` (+ ``keyCertSign`` for CAs) and the
extended key usages of its spec.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bootstrap.errors import UserError
from bootstrap.pki.keys import PrivateKey, signature_hash

CA_BACKDATE = timedelta(minutes=5)

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class CertSpec:
    """What a certificate must say; the same spec creates it and checks it."""

    common_name: str
    organizations: tuple[str, ...] = ()
    usages: tuple[x509.ObjectIdentifier, ...] = ()
    dns_names: tuple[str, ...] = ()
    ips: tuple[IP, ...] = ()
    is_ca: bool = False
    extra: dict = field(default_factory=dict, compare=False)


def now() -> datetime:
    return datetime.now(UTC)


def _name(spec: CertSpec) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in spec.organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, spec.common_name))
    return x509.Name(attrs)


def _key_usage(is_ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=True,
        data_encipherment=False, key_agreement=False, key_cert_sign=is_ca,
        crl_sign=False, encipher_only=False, decipher_only=False,
    )


def _sans(dns_names, ips) -> x509.SubjectAlternativeName | None:
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    names += [x509.IPAddress(ip) for ip in ips]
    return x509.SubjectAlternativeName(names) if names else None


def create_ca(spec: CertSpec, key: PrivateKey, validity: timedelta) -> x509.Certificate:
    start = now() - CA_BACKDATE
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(spec))
        .issuer_name(_name(spec))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        # client-go's self-signed CA carries its CN as a DNS SAN; kept for parity.
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(spec.common_name)]), critical=False)
    )
    return builder.sign(key, signature_hash())


def sign_leaf(
    spec: CertSpec,
    public_key,
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    validity: timedelta,
) -> x509.Certificate:
    if not spec.usages:
        raise ValueError(f"certificate {spec.common_name!r} needs at least one extended key usage")
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(spec))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(ca_cert.not_valid_before_utc)
        .not_valid_after(now() + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(spec.usages)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),
            critical=False,
        )
    )
    sans = _sans(_dedup(spec.dns_names), _dedup(spec.ips))
    if sans is not None:
        builder = builder.add_extension(sans, critical=False)
    return builder.sign(ca_key, signature_hash())


def _dedup(items):
    return tuple(dict.fromkeys(items))


def cert_to_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_cert(data: bytes, where: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise UserError(
            f"cannot parse certificate ({exc})", where=where,
            hint="delete it to have it regenerated",
        ) from None


def read_cert_file(path: Path) -> x509.Certificate:
    return load_cert(path.read_bytes(), str(path))


# --- reading back -------------------------------------------------------------

def cert_common_name(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def cert_organizations(cert: x509.Certificate) -> tuple[str, ...]:
    return tuple(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))


def cert_sans(cert: x509.Certificate) -> tuple[tuple[str, ...], tuple[IP, ...]]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return (), ()
    return tuple(ext.get_values_for_type(x509.DNSName)), tuple(ext.get_values_for_type(x509.IPAddress))


def cert_usages(cert: x509.Certificate) -> tuple[x509.ObjectIdentifier, ...]:
    try:
        return tuple(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return ()


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def spec_from_cert(cert: x509.Certificate) -> CertSpec:
    """The spec an existing leaf was made from; renewal re-signs exactly this."""
    dns, ips = cert_sans(cert)
    return CertSpec(
        common_name=cert_common_name(cert), organizations=cert_organizations(cert),
        usages=cert_usages(cert), dns_names=dns, ips=ips, is_ca=is_ca(cert),
    )


def signed_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    if cert.issuer != ca_cert.subject:
        return False
    pub = ca_cert.public_key()
    try:
        if isinstance(pub, rsa.RSAPublicKey):
            pub.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                       cert.signature_hash_algorithm)
        elif isinstance(pub, ec.EllipticCurvePublicKey):
            pub.verify(cert.signature, cert.tbs_certificate_bytes,
                       ec.ECDSA(cert.signature_hash_algorithm))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def problems_with(cert: x509.Certificate, spec: CertSpec | None = None,
                  ca_cert: x509.Certificate | None = None) -> list[str]:
    """Why ``cert`` cannot be reused as ``spec`` under ``ca_cert``; empty if it can."""
    out = []
    t = now()
    if t < cert.not_valid_before_utc:
        out.append(f"is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    if t > cert.not_valid_after_utc:
        out.append(f"expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    if ca_cert is not None and not signed_by(cert, ca_cert):
        out.append(f"is not signed by the CA {cert_common_name(ca_cert)!r}")
    if spec is None:
        return out
    if spec.is_ca and not is_ca(cert):
        out.append("is not a CA certificate")
    if cert_common_name(cert) != spec.common_name:
        out.append(f"has CN {cert_common_name(cert)!r}, expected {spec.common_name!r}")
    missing_usages = set(spec.usages) - set(cert_usages(cert))
    if missing_usages:
        out.append("lacks extended key usage " + ", ".join(sorted(u._name for u in missing_usages)))
    dns, ips = cert_sans(cert)
    missing = [d for d in spec.dns_names if d not in dns] + [str(i) for i in spec.ips if i not in ips]
    if missing:
        out.append("lacks SANs " + ", ".join(missing))
    return out
