"""csrsigning: approved CSRs for the kubernetes.io/kube-apiserver-client,
kube-apiserver-client-kubelet and kubelet-serving signers get a certificate from
the cluster CA (--cluster-signing-cert-file / --cluster-signing-key-file), as
upstream's CSRSigningController with its PermissiveSigningPolicy:

- usages become keyUsage / extKeyUsage, subject and SANs are copied from the request;
- the lifetime is --cluster-signing-duration, or spec.expirationSeconds when shorter
  (never under 10 minutes), and never past the CA's own expiry;
- notBefore is backdated 5 minutes; a short-lived certificate (under 8 h) does not
  lose those minutes from its end;
- a request its signer's rules refuse gets Failed=True / SignerValidationFailure.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from bootstrap.api.controller import Controller
from bootstrap.api.errors import APIError
from bootstrap.errors import UserError
from bootstrap.pki.certs import cert_to_pem, load_cert
from bootstrap.pki.keys import load_private_key, signature_hash

from .certificates import (
    CSRS,
    EXT_KEY_USAGES,
    KEY_USAGES,
    VALIDATORS,
    CSRError,
    has_condition,
    is_approved,
    parse_request,
)
from .util import rfc3339

BACKDATE = timedelta(minutes=5)
SHORT = timedelta(hours=8)
MIN_DURATION = timedelta(minutes=10)


class SignerError(Exception):
    pass


def duration(max_ttl: timedelta, expiration_seconds: int | None) -> timedelta:
    if expiration_seconds is None:
        return max_ttl
    requested = timedelta(seconds=expiration_seconds)
    return max(MIN_DURATION, min(requested, max_ttl))


def _key_usage(usages: list[str]) -> x509.KeyUsage | None:
    flags = {v: False for v in set(KEY_USAGES.values())}
    for u in usages:
        if u in KEY_USAGES:
            flags[KEY_USAGES[u]] = True
    if not any(flags.values()):
        return None
    return x509.KeyUsage(**flags)


def sign(spec_request: str, usages: list[str], ca_cert: x509.Certificate, ca_key,
         ttl: timedelta, now: datetime) -> bytes:
    """The PEM certificate for a request (CSRError for a request we cannot sign)."""
    req = parse_request(spec_request)
    if not req.csr.is_signature_valid:
        raise CSRError("the certificate request's signature is invalid")
    unknown = [u for u in usages if u not in KEY_USAGES and u not in EXT_KEY_USAGES]
    if unknown:
        raise CSRError(f"unrecognized usage values: {unknown}")
    signer_end = ca_cert.not_valid_after_utc
    if now >= signer_end:
        raise SignerError("the signer has expired")
    not_before = now - BACKDATE
    not_after = now + ttl if ttl < SHORT else not_before + ttl
    not_after = min(not_after, signer_end)
    builder = (x509.CertificateBuilder()
               .subject_name(req.csr.subject)
               .issuer_name(ca_cert.subject)
               .public_key(req.csr.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before)
               .not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                              critical=True))
    ku = _key_usage(usages)
    if ku is not None:
        builder = builder.add_extension(ku, critical=True)
    ekus = list(dict.fromkeys(EXT_KEY_USAGES[u] for u in usages if u in EXT_KEY_USAGES))
    if ekus:
        builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in req.dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in req.ips]
    names += [x509.RFC822Name(e) for e in req.emails]
    names += [x509.UniformResourceIdentifier(u) for u in req.uris]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())
    builder = builder.add_extension(aki, critical=False)
    return cert_to_pem(builder.sign(ca_key, signature_hash()))


def load_ca(cert_file: str, key_file: str):
    """(certificate, key) of the signing CA; UserError naming the flag otherwise."""
    try:
        ca_cert = load_cert(Path(cert_file).read_bytes(), "--cluster-signing-cert-file")
        ca_key = load_private_key(Path(key_file).read_bytes(), "--cluster-signing-key-file")
    except OSError as exc:
        flag = "--cluster-signing-cert-file" if exc.filename == cert_file else \
            "--cluster-signing-key-file"
        raise UserError(f"cannot read {exc.filename}: {exc.strerror}", where=flag) from None
    from bootstrap.pki.keys import same_public_key
    if not same_public_key(ca_cert.public_key(), ca_key.public_key()):
        raise UserError("the key does not belong to the certificate",
                        where="--cluster-signing-key-file",
                        hint=f"use the key of {cert_file}")
    return ca_cert, ca_key


class CSRSigningController(Controller):
    name = "csrsigning"

    def __init__(self, client, factory, recorder=None, *, ca_cert: x509.Certificate,
                 ca_key, ttl: float = 8760 * 3600.0, clock=time.time):
        super().__init__(client, factory, recorder)
        self.ca_cert, self.ca_key = ca_cert, ca_key
        self.ttl = timedelta(seconds=ttl)
        self.clock = clock
        self.csrs = factory.informer(CSRS)
        self.csrs.add_handler(on_add=self.enqueue, on_update=lambda o, n: self.enqueue(n))

    @classmethod
    def from_options(cls, client, factory, recorder, options):
        cert_file, key_file = options.cluster_signing_cert_file, options.cluster_signing_key_file
        if not cert_file or not key_file:
            return None  # no CA to sign with: upstream skips the signer too
        ca_cert, ca_key = load_ca(cert_file, key_file)
        return cls(client, factory, recorder, ca_cert=ca_cert, ca_key=ca_key,
                   ttl=options.cluster_signing_duration)

    async def reconcile(self, key: str) -> float | None:
        csr = self.csrs.get(key)
        if csr is None or not is_approved(csr) or has_condition(csr, "Failed"):
            return None
        if (csr.get("status") or {}).get("certificate"):
            return None
        spec = csr.get("spec") or {}
        validate = VALIDATORS.get(spec.get("signerName", ""))
        if validate is None:
            return None  # another signer's request
        usages = list(spec.get("usages") or [])
        updated = copy.deepcopy(csr)
        status = updated.setdefault("status", {})
        now = datetime.fromtimestamp(self.clock(), UTC)
        try:
            validate(parse_request(spec.get("request", "")), usages)
            pem = sign(spec.get("request", ""), usages, self.ca_cert, self.ca_key,
                       duration(self.ttl, spec.get("expirationSeconds")), now)
        except CSRError as exc:
            status.setdefault("conditions", []).append({
                "type": "Failed", "status": "True", "reason": "SignerValidationFailure",
                "message": str(exc), "lastUpdateTime": rfc3339(self.clock()),
                "lastTransitionTime": rfc3339(self.clock())})
            self.log.info("csr %s: %s", key, exc)
        else:
            status["certificate"] = base64.b64encode(pem).decode()
            self.log.info("csr %s: signed for %s", key, spec.get("signerName"))
        try:
            await self.client.update(CSRS, updated, subresource="status")
        except APIError as exc:
            if exc.code != 404:
                raise
        return None
