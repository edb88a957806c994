"""Who is calling the agent's secure port, and may they: upstream's delegated
authentication and authorization (k8s.io/apiserver DelegatingAuthenticationOptions
and DelegatingAuthorizationOptions), in their smallest honest form.

Authentication, first match wins (upstream's union order):
1. request headers: a client certificate signed by --requestheader-client-ca-file
   (CN in --requestheader-allowed-names when that is set) asserts the user in
   X-Remote-User, groups in X-Remote-Group, extra in X-Remote-Extra-<key>;
2. a client certificate signed by --client-ca-file: user = CN, groups = O;
3. with --authentication-kubeconfig, a bearer token accepted by a TokenReview.
Authorization: a SubjectAccessReview (verb and non-resource path) through the
delegate client; without one, only users from step 2 are allowed, since the
client CA is then the only authority.
TLS has already verified the chain; the signature check here says which CA.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from bootstrap.api.client import Client
from bootstrap.api.resources import by_gvr
from bootstrap.pki import certs

TOKEN_REVIEWS = by_gvr("authentication.k8s.io", "v1", "tokenreviews")
ACCESS_REVIEWS = by_gvr("authorization.k8s.io", "v1", "subjectaccessreviews")
REVIEW_CACHE_SECONDS = 10.0  # upstream's delegating authn/authz cache TTLs (10 s)
REVIEW_CACHE_SIZE = 1024


def load_cas(path: str | None) -> tuple[x509.Certificate, ...]:
    """The CA certificates of a PEM bundle (ValueError when it holds none)."""
    if not path:
        return ()
    data = Path(path).read_bytes()
    try:
        return tuple(x509.load_pem_x509_certificates(data))
    except ValueError:
        raise ValueError(f"{path}: no PEM certificates") from None


@dataclass(frozen=True)
class RequestHeader:
    cas: tuple[x509.Certificate, ...]
    allowed_names: frozenset[str] = frozenset()
    username_headers: tuple[str, ...] = ("x-remote-user",)
    group_headers: tuple[str, ...] = ("x-remote-group",)
    extra_prefixes: tuple[str, ...] = ("x-remote-extra-",)

    def user(self, cert: x509.Certificate, headers: Mapping) -> dict | None:
        if not any(certs.signed_by(cert, ca) for ca in self.cas):
            return None
        if self.allowed_names and certs.cert_common_name(cert) not in self.allowed_names:
            return None
        name = next((headers[h] for h in self.username_headers if headers.get(h)), "")
        if not name:
            return None
        groups = [g for h in self.group_headers for g in headers.getall(h, [])]
        extra: dict[str, list[str]] = {}
        for key in headers:
            for prefix in self.extra_prefixes:
                if key.lower().startswith(prefix):
                    extra.setdefault(key[len(prefix):].lower(), []).extend(headers.getall(key))
        return {"username": name, "groups": groups, "extra": extra or None,
                "via": "requestheader"}


class _TTLCache:
    """A small bounded cache of review answers (upstream caches them 10 s): forged
    tokens cannot grow it without limit, and raw tokens are never kept."""

    def __init__(self, ttl: float = REVIEW_CACHE_SECONDS, size: int = REVIEW_CACHE_SIZE):
        self.ttl, self.size = ttl, size
        self._items: OrderedDict[object, tuple[float, object]] = OrderedDict()

    def get(self, key: object) -> tuple[bool, object]:
        hit = self._items.get(key)
        if hit is None or time.monotonic() - hit[0] > self.ttl:
            return False, None
        return True, hit[1]

    def put(self, key: object, value: object) -> None:
        self._items[key] = (time.monotonic(), value)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


class DelegatedAuth:
    def __init__(self, authn: Client | None, authz: Client | None, *,
                 client_cas: tuple[x509.Certificate, ...] = (),
                 request_header: RequestHeader | None = None):
        self.authn = authn
        self.authz = authz
        self.client_cas = client_cas
        self.request_header = request_header
        self._tokens = _TTLCache()
        self._decisions = _TTLCache()

    async def user(self, headers: Mapping, peer_der: bytes | None) -> dict | None:
        """The authenticated user ({username, groups, extra, via}) or None."""
        if peer_der:
            cert = x509.load_der_x509_certificate(peer_der)
            if self.request_header is not None:
                user = self.request_header.user(cert, headers)
                if user is not None:
                    return user
            if any(certs.signed_by(cert, ca) for ca in self.client_cas):
                return {"username": certs.cert_common_name(cert),
                        "groups": list(certs.cert_organizations(cert)), "via": "x509"}
        scheme, _, token = headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if self.authn is None or scheme.lower() != "bearer" or not token:
            return None
        digest = hashlib.sha256(token.encode()).digest()
        found, user = self._tokens.get(digest)
        if found:
            return user  # type: ignore[return-value]
        review = await self.authn.create(TOKEN_REVIEWS, {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": token}})
        status = review.get("status") or {}
        user = dict(status["user"], via="token") \
            if status.get("authenticated") and status.get("user") else None
        self._tokens.put(digest, user)
        return user

    async def allowed(self, user: dict, verb: str, path: str) -> bool:
        if self.authz is None:
            return user.get("via") == "x509"
        key = (user.get("username"), tuple(user.get("groups") or ()),
               repr(sorted((user.get("extra") or {}).items())), verb, path)
        found, decision = self._decisions.get(key)
        if found:
            return bool(decision)
        spec = {"user": user.get("username"), "groups": user.get("groups") or [],
                "nonResourceAttributes": {"path": path, "verb": verb}}
        for field in ("uid", "extra"):
            if user.get(field):
                spec[field] = user[field]
        review = await self.authz.create(ACCESS_REVIEWS, {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": spec})
        allowed = bool((review.get("status") or {}).get("allowed"))
        self._decisions.put(key, allowed)
        return allowed
