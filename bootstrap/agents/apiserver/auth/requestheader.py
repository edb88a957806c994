"""The front-proxy (request-header) authenticator, as upstream's
k8s.io/apiserver/pkg/authentication/request/headerrequest behind its x509 verifier.

A client certificate that verifies against --requestheader-client-ca-file, with a CN
in --requestheader-allowed-names (any CN when that list is empty), lets its holder
(the aggregator or another front proxy) assert the user in request headers: the name
from the first non-empty username header, the uid likewise, groups from every value
of every group header, extra from the prefixed headers (key lowercased, then
%-unescaped). The proxy's own CN is never a user.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CACHE_SIZE = 1024
# Go's url.PathUnescape fails on a '%' not followed by two hex digits; upstream then
# keeps the key as sent rather than half-decoding it.
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


class NotAllowed(Exception):
    """The certificate is the front-proxy CA's but fails its checks: a failed
    credential (401), not an absent one."""


@dataclass(frozen=True)
class Asserted:
    name: str
    uid: str
    groups: list[str]
    extra: dict[str, list[str]]


def unescape_extra_key(key: str) -> str:
    if _BAD_ESCAPE.search(key):
        return key
    return unquote(key, errors="replace")


class RequestHeaderAuthenticator:
    def __init__(self, ca_file: str | Path, allowed_names: Sequence[str] = (),
                 username_headers: Sequence[str] = (), uid_headers: Sequence[str] = (),
                 group_headers: Sequence[str] = (), extra_prefixes: Sequence[str] = ()):
        self._cas = x509.load_pem_x509_certificates(Path(ca_file).read_bytes())
        self._allowed = frozenset(allowed_names)
        self.username_headers = tuple(username_headers)
        self.uid_headers = tuple(uid_headers)
        self.group_headers = tuple(group_headers)
        self.extra_prefixes = tuple(p.lower() for p in extra_prefixes)
        # der -> (common name, not before, not after) of certificates the CA signed;
        # a signature check costs more than the rest of a cached GET.
        self._verified: dict[bytes, tuple[str, datetime, datetime]] = {}

    def is_proxy(self, der: bytes) -> bool:
        """True for a certificate the front-proxy CA issued (valid, client usage,
        an allowed CN); NotAllowed for one it issued that fails those checks; False
        for any other certificate."""
        hit = self._verified.get(der)
        if hit is None:
            cert = x509.load_der_x509_certificate(der)
            if not self._issued(cert):
                return False
            cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            hit = (str(cns[0].value) if cns else "", cert.not_valid_before_utc,
                   cert.not_valid_after_utc)
            if not _client_usage(cert):
                raise NotAllowed("x509: certificate specifies an incompatible key usage")
            if len(self._verified) >= CACHE_SIZE:
                self._verified.pop(next(iter(self._verified)))
            self._verified[der] = hit
        cn, not_before, not_after = hit
        if not (not_before <= datetime.now(UTC) <= not_after):
            raise NotAllowed("x509: certificate has expired or is not yet valid")
        if self._allowed and cn not in self._allowed:
            raise NotAllowed(f"x509: subject with cn={cn} is not in the allowed list")
        return True

    def assert_user(self, headers: Mapping) -> Asserted | None:
        """The user the proxy names, or None without a username header (the request
        then falls through to the other authenticators)."""
        name = _first(headers, self.username_headers)
        if not name:
            return None
        groups = [v for h in self.group_headers for v in headers.getall(h, []) if v]
        extra: dict[str, list[str]] = {}
        for prefix in self.extra_prefixes:
            for key, value in headers.items():
                if key.lower().startswith(prefix):
                    extra.setdefault(unescape_extra_key(key[len(prefix):].lower()),
                                     []).append(value)
        return Asserted(name, _first(headers, self.uid_headers), groups, extra)

    def authentication_headers(self, headers: Mapping) -> list[str]:
        """The headers this authenticator reads that the request carries: they are
        dropped before the request goes further, whoever sent them."""
        named = {h.lower() for h in (*self.username_headers, *self.uid_headers,
                                     *self.group_headers)}
        return [k for k in headers if k.lower() in named or
                any(k.lower().startswith(p) for p in self.extra_prefixes)]

    def _issued(self, cert: x509.Certificate) -> bool:
        return issued_by(cert, self._cas)


def issued_by(cert: x509.Certificate, cas: Sequence[x509.Certificate]) -> bool:
    """Signed directly by one of ``cas`` (the client CA, or the front-proxy CA)."""
    for ca in cas:
        if cert.issuer != ca.subject:
            continue
        try:
            cert.verify_directly_issued_by(ca)
            return True
        except (InvalidSignature, ValueError, TypeError):
            continue
    return False


def _client_usage(cert: x509.Certificate) -> bool:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return ExtendedKeyUsageOID.CLIENT_AUTH in eku or \
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku


def _first(headers: Mapping, names: Sequence[str]) -> str:
    # http.Header.Get: the first value of each header, first non-empty header wins.
    for h in names:
        value = headers.get(h, "")
        if value:
            return value
    return ""
