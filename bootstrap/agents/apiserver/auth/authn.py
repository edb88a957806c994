"""Authentication: who is making this request.

Order as kube-apiserver's union authenticator: a front-proxy certificate
(--requestheader-client-ca-file) with a username header is the user it names
(requestheader.py); then a verified x509 client certificate wins; otherwise a bearer token must be a valid bootstrap token or service-account
JWT (an invalid token is 401 even when anonymous access is on, like upstream's
fail-on-error union); with no credentials at all the request is anonymous when
--anonymous-auth allows it, else 401.
"""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bootstrap.agents.apiserver import serviceaccount as sa_tokens
from bootstrap.api import errors

from .requestheader import NotAllowed, RequestHeaderAuthenticator, issued_by

AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
BOOTSTRAPPERS = "system:bootstrappers"
SERVICE_ACCOUNTS = "system:serviceaccounts"
NODES_GROUP = "system:nodes"
NODE_PREFIX = "system:node:"
MASTERS = "system:masters"

BOOTSTRAP_TOKEN_TYPE = "bootstrap.kubernetes.io/token"
BOOTSTRAP_TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
BOOTSTRAP_GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")

# Extra keys upstream attaches to service-account users (pkg/serviceaccount/util.go).
EXTRA_POD_NAME = "authentication.kubernetes.io/pod-name"
EXTRA_POD_UID = "authentication.kubernetes.io/pod-uid"
EXTRA_NODE_NAME = "authentication.kubernetes.io/node-name"
EXTRA_NODE_UID = "authentication.kubernetes.io/node-uid"
EXTRA_CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"
CERT_CACHE_SIZE = 4096


@dataclass(frozen=True)
class UserInfo:
    name: str
    uid: str = ""
    groups: list[str] = field(default_factory=list)
    extra: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """authentication.k8s.io/v1 UserInfo (TokenReview, audit, SelfSubjectReview)."""
        out: dict = {"username": self.name}
        if self.uid:
            out["uid"] = self.uid
        if self.groups:
            out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out

    @property
    def node_name(self) -> str | None:
        """The node a kubelet identity speaks for (Node authorizer's NodeIdentifier)."""
        if NODES_GROUP in self.groups and self.name.startswith(NODE_PREFIX):
            return self.name[len(NODE_PREFIX):]
        return None


ANONYMOUS_USER = UserInfo(name=ANONYMOUS, groups=[UNAUTHENTICATED])


class Store(Protocol):
    """Read access CORE provides, served from the watch cache."""

    async def get(self, resource_plural: str, namespace: str | None, name: str) -> dict | None: ...

    async def list(self, resource_plural: str, namespace: str | None = None) -> list[dict]: ...

    # Admission's LimitRanger and ResourceQuota also read past the cache and write quota
    # status back (server.AuthStore).
    async def list_fresh(self, resource_plural: str,
                         namespace: str | None = None) -> list[dict]: ...

    async def write_if_unchanged(self, resource_plural: str, obj: dict) -> dict | None: ...


def _with_authenticated(groups: Sequence[str]) -> list[str]:
    out = list(dict.fromkeys(groups))
    if AUTHENTICATED not in out:
        out.append(AUTHENTICATED)
    return out


def parse_rfc3339(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


class Authenticator:
    def __init__(self, client_ca_file: str | Path | None = None,
                 sa_public_keys: Sequence | None = None,
                 sa_issuer: str | Sequence[str] | None = None,
                 bootstrap_token_enabled: bool = False,
                 anonymous_allowed: bool = False,
                 store: Store | None = None,
                 *, api_audiences: Sequence[str] | None = None,
                 request_header: RequestHeaderAuthenticator | None = None):
        self._cas: list[x509.Certificate] = []
        self._cert_cache: dict[bytes, tuple[UserInfo, datetime, datetime]] = {}
        if client_ca_file:
            self._cas = x509.load_pem_x509_certificates(Path(client_ca_file).read_bytes())
        self._sa_keys = list(sa_public_keys or [])
        if isinstance(sa_issuer, str):
            sa_issuer = [sa_issuer]
        self._issuers = list(sa_issuer or [])
        # kube-apiserver defaults --api-audiences to the service-account issuer(s).
        self._audiences = list(api_audiences) if api_audiences else list(self._issuers)
        self._bootstrap = bootstrap_token_enabled
        self._anonymous = anonymous_allowed
        self._store = store
        self._request_header = request_header

    @property
    def audiences(self) -> list[str]:
        return list(self._audiences)

    def authentication_headers(self, headers: Mapping) -> list[str]:
        """Front-proxy headers on the request, to drop once it is authenticated
        (upstream's WithAuthentication clears them for every request)."""
        if self._request_header is None:
            return []
        return self._request_header.authentication_headers(headers)

    async def authenticate(self, peer_cert: x509.Certificate | bytes | None,
                           authorization_header: str | None,
                           headers: Mapping | None = None) -> UserInfo:
        bad_cert = False
        if peer_cert is not None and self._request_header is not None:
            der = peer_cert if isinstance(peer_cert, bytes) else \
                peer_cert.public_bytes(serialization.Encoding.DER)
            try:
                if self._request_header.is_proxy(der):
                    asserted = self._request_header.assert_user(headers or {})
                    if asserted is not None:
                        return UserInfo(name=asserted.name, uid=asserted.uid,
                                        groups=_with_authenticated(asserted.groups),
                                        extra=asserted.extra)
            except NotAllowed:
                bad_cert = True  # upstream's verifier error: 401, never anonymous
            # A front proxy without a username header, or refused, is not a user in
            # its own right: the client CA below does not know its certificate.
        if peer_cert is not None and self._cas:
            user = self.authenticate_certificate(peer_cert)
            if user is not None:
                return user
            bad_cert = True
        if authorization_header:
            scheme, _, token = authorization_header.strip().partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise errors.unauthorized()
            user = await self.authenticate_token(token)
            if user is None:
                raise errors.unauthorized()
            return user
        # A certificate that fails verification is a failed credential, not an absent
        # one: upstream answers 401 rather than falling back to anonymous.
        if self._anonymous and not bad_cert:
            return ANONYMOUS_USER
        raise errors.unauthorized()

    # x509 ---------------------------------------------------------------------------

    def authenticate_certificate(self, cert: x509.Certificate | bytes) -> UserInfo | None:
        """CN is the user, each O a group; the chain must end at the client CA.

        The TLS layer already verified the chain; checking again here keeps this
        correct when the server terminates TLS with a CA bundle wider than the
        client CA (the same listener also accepts bearer tokens).
        """
        der = cert if isinstance(cert, bytes) else None
        now = datetime.now(UTC)
        if der is not None:
            hit = self._cert_cache.get(der)
            if hit is not None:
                user, not_before, not_after = hit
                return user if not_before <= now <= not_after else None
            cert = x509.load_der_x509_certificate(der)
        user = self._verify_certificate(cert)
        if user is not None and der is not None:
            # Signature checks cost more than the rest of a GET from the watch cache;
            # a verified certificate only needs its validity window re-checked.
            if len(self._cert_cache) >= CERT_CACHE_SIZE:
                self._cert_cache.pop(next(iter(self._cert_cache)))
            self._cert_cache[der] = (user, cert.not_valid_before_utc, cert.not_valid_after_utc)
        if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
            return None
        return user

    def _verify_certificate(self, cert: x509.Certificate) -> UserInfo | None:
        if not self._issued_by_ca(cert):
            return None
        try:
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            if ExtendedKeyUsageOID.CLIENT_AUTH not in eku and \
                    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku:
                return None
        except x509.ExtensionNotFound:
            pass
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not cns or not cns[0].value:
            return None
        groups = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        return UserInfo(name=str(cns[0].value), groups=_with_authenticated(groups))

    def _issued_by_ca(self, cert: x509.Certificate) -> bool:
        return issued_by(cert, self._cas)

    # tokens -------------------------------------------------------------------------

    async def authenticate_token(self, token: str) -> UserInfo | None:
        """The user behind a bearer token, or None when no authenticator accepts it
        (TokenReview reports that as authenticated=false)."""
        if self._bootstrap and BOOTSTRAP_TOKEN_RE.match(token):
            return await self._bootstrap_token(token)
        if self._sa_keys and sa_tokens.looks_like_jwt(token):
            return await self._service_account_token(token)
        return None

    async def _bootstrap_token(self, token: str) -> UserInfo | None:
        if self._store is None:
            return None
        token_id, token_secret = BOOTSTRAP_TOKEN_RE.match(token).groups()
        secret = await self._store.get("secrets", "kube-system", f"bootstrap-token-{token_id}")
        if not secret or secret.get("type") != BOOTSTRAP_TOKEN_TYPE:
            return None
        if secret.get("metadata", {}).get("deletionTimestamp"):
            return None
        data = _secret_strings(secret)
        if data.get("token-id") != token_id:
            return None
        if not hmac.compare_digest(data.get("token-secret", ""), token_secret):
            return None
        if data.get("usage-bootstrap-authentication") != "true":
            return None
        expiration = data.get("expiration")
        if expiration:
            try:
                if parse_rfc3339(expiration) <= datetime.now(UTC):
                    return None
            except ValueError:
                return None
        groups = [BOOTSTRAPPERS]
        for g in (data.get("auth-extra-groups") or "").split(","):
            g = g.strip()
            if not g:
                continue
            if not BOOTSTRAP_GROUP_RE.match(g):
                return None  # upstream rejects the whole token when a group is malformed
            groups.append(g)
        return UserInfo(name=f"system:bootstrap:{token_id}", groups=_with_authenticated(groups))

    async def _service_account_token(self, token: str) -> UserInfo | None:
        try:
            verified = sa_tokens.verify_token(token, self._sa_keys, self._issuers, self._audiences)
        except sa_tokens.TokenInvalid:
            return None
        extra: dict[str, list[str]] = {}
        if self._store is not None:
            sa = await self._store.get("serviceaccounts", verified.namespace, verified.name)
            if sa is None or sa["metadata"].get("deletionTimestamp"):
                return None
            if verified.uid and sa["metadata"].get("uid") != verified.uid:
                return None
            private = verified.private
            for key, plural in (("pod", "pods"), ("secret", "secrets")):
                ref = private.get(key)
                if not ref:
                    continue
                obj = await self._store.get(plural, verified.namespace, ref.get("name", ""))
                if obj is None or obj["metadata"].get("deletionTimestamp") or (
                        ref.get("uid") and obj["metadata"].get("uid") != ref["uid"]):
                    return None
            # A Node-bound token dies with its Node. A pod-bound token's node claim is
            # informational only (the pod check above already binds its lifetime).
            if private.get("node") and not private.get("pod"):
                ref = private["node"]
                node = await self._store.get("nodes", None, ref.get("name", ""))
                if node is None or node["metadata"].get("deletionTimestamp") or (
                        ref.get("uid") and node["metadata"].get("uid") != ref["uid"]):
                    return None
            if private.get("pod"):
                extra[EXTRA_POD_NAME] = [private["pod"].get("name", "")]
                extra[EXTRA_POD_UID] = [private["pod"].get("uid", "")]
            if private.get("node"):
                extra[EXTRA_NODE_NAME] = [private["node"].get("name", "")]
                extra[EXTRA_NODE_UID] = [private["node"].get("uid", "")]
        if verified.claims.get("jti"):
            extra[EXTRA_CREDENTIAL_ID] = [f"JTI={verified.claims['jti']}"]
        groups = [SERVICE_ACCOUNTS, f"{SERVICE_ACCOUNTS}:{verified.namespace}"]
        return UserInfo(name=f"{sa_tokens.SA_PREFIX}{verified.namespace}:{verified.name}",
                        uid=verified.uid, groups=_with_authenticated(groups), extra=extra)


def _secret_strings(secret: dict) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(value).decode()
        except (ValueError, UnicodeDecodeError):
            continue
    # A Secret stored before stringData was folded into data still authenticates.
    for key, value in (secret.get("stringData") or {}).items():
        out.setdefault(key, value)
    return out
