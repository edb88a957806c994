"""Service-account JWTs: issue (TokenRequest) and verify (authentication).

Claims follow upstream's bound service-account tokens (pkg/serviceaccount/claims.go):
``iss``, ``sub`` = ``system:serviceaccount:<ns>:<name>``, ``aud``, ``exp``, ``iat``,
``nbf``, ``jti`` and a private ``kubernetes.io`` claim naming the namespace, the
service account (name, uid) and, for bound tokens, the pod/secret/node (name, uid).
The ``kid`` header is the unpadded base64url SHA-256 of the DER public key, as
upstream computes it, so tokens verify against the right key after rotation.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bootstrap.api import errors

SA_PREFIX = "system:serviceaccount:"
DEFAULT_EXPIRATION_SECONDS = 3600
MIN_EXPIRATION_SECONDS = 600
# kubelet's projected token lifetime; upstream admission uses 3607 so the extended
# "warn-only" window can be recognised.
PROJECTED_EXPIRATION_SECONDS = 3607

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class TokenInvalid(Exception):
    """The token is not a valid service-account JWT for this server."""


def load_public_keys(paths: list[str | Path]) -> list[PublicKey]:
    """Keys from --service-account-key-file: PEM public keys, private keys or certs."""
    keys: list[PublicKey] = []
    for path in paths:
        data = Path(path).read_bytes()
        for block in _pem_blocks(data):
            if b"CERTIFICATE" in block.split(b"\n", 1)[0]:
                keys.append(x509.load_pem_x509_certificate(block).public_key())
            elif b"PRIVATE KEY" in block.split(b"\n", 1)[0]:
                keys.append(serialization.load_pem_private_key(block, None).public_key())
            elif b"PUBLIC KEY" in block.split(b"\n", 1)[0]:
                keys.append(serialization.load_pem_public_key(block))
        if not keys:
            raise ValueError(f"{path}: no PEM public key, private key or certificate found")
    return keys


def load_signing_key(path: str | Path) -> PrivateKey:
    return serialization.load_pem_private_key(Path(path).read_bytes(), None)


def _pem_blocks(data: bytes) -> list[bytes]:
    blocks, current = [], []
    for line in data.splitlines():
        if line.startswith(b"-----BEGIN"):
            current = [line]
        elif line.startswith(b"-----END") and current:
            current.append(line)
            blocks.append(b"\n".join(current) + b"\n")
            current = []
        elif current:
            current.append(line)
    return blocks


def key_id(key: PublicKey | PrivateKey) -> str:
    pub = key.public_key() if hasattr(key, "private_bytes") else key
    der = pub.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def _algorithm(key: PublicKey | PrivateKey) -> str:
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "RS256"
    curve = key.curve.name
    return {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}[curve]


def _ref(obj: dict | None) -> dict | None:
    if not obj:
        return None
    meta = obj.get("metadata", {})
    return {"name": meta.get("name", ""), "uid": meta.get("uid", "")}


def issue_token(sa: dict, audiences: list[str], expiration_seconds: int,
                bound_object: dict | None, signing_key: PrivateKey, issuer: str,
                *, now: float | None = None, node: dict | None = None) -> tuple[str, datetime]:
    """Sign a bound token for ``sa``; returns (jwt, expiration time).

    ``bound_object`` is the live Pod, Secret or Node the token is bound to (or None).
    For a pod-bound token ``node`` may be the pod's Node so the claim carries it,
    as upstream does for kubelet-issued tokens.
    """
    now = time.time() if now is None else now
    iat = int(now)
    exp = iat + int(expiration_seconds)
    meta = sa.get("metadata", {})
    ns = meta.get("namespace", "")
    private: dict = {
        "namespace": ns,
        "serviceaccount": {"name": meta.get("name", ""), "uid": meta.get("uid", "")},
    }
    if bound_object:
        kind = bound_object.get("kind", "")
        field = {"Pod": "pod", "Secret": "secret", "Node": "node"}.get(kind)
        if field is None:
            raise ValueError(f"cannot bind a token to a {kind or 'object without kind'}")
        private[field] = _ref(bound_object)
        if kind == "Pod" and node:
            private["node"] = _ref(node)
    claims = {
        "iss": issuer,
        "sub": f"{SA_PREFIX}{ns}:{meta.get('name', '')}",
        "aud": list(audiences),
        "exp": exp,
        "iat": iat,
        "nbf": iat,
        "jti": str(uuid.uuid4()),
        "kubernetes.io": private,
    }
    token = jwt.encode(claims, signing_key, algorithm=_algorithm(signing_key),
                       headers={"kid": key_id(signing_key)})
    return token, datetime.fromtimestamp(exp, UTC)


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


@dataclass(frozen=True)
class VerifiedToken:
    namespace: str
    name: str
    uid: str
    claims: dict

    @property
    def private(self) -> dict:
        return self.claims.get("kubernetes.io", {})


def verify_token(token: str, public_keys: list[PublicKey], issuers: list[str],
                 audiences: list[str]) -> VerifiedToken:
    """Check signature, issuer, audience and time claims; raise TokenInvalid if any fails."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenInvalid(f"malformed token: {exc}") from exc
    kid = header.get("kid")
    candidates = [k for k in public_keys if kid and key_id(k) == kid] or public_keys
    options = {"require": ["exp", "iat", "iss", "sub"], "verify_aud": False}
    last: Exception | None = None
    claims = None
    for key in candidates:
        try:
            claims = jwt.decode(token, key, algorithms=[_algorithm(key)], options=options,
                                issuer=issuers)
            break
        except jwt.InvalidSignatureError as exc:
            last = exc
        except jwt.PyJWTError as exc:
            raise TokenInvalid(str(exc)) from exc
    if claims is None:
        raise TokenInvalid(f"invalid signature: {last}")
    aud = claims.get("aud") or []
    aud = [aud] if isinstance(aud, str) else aud
    if audiences and not set(aud) & set(audiences):
        raise TokenInvalid("token audiences are invalid")
    sub = claims["sub"]
    if not sub.startswith(SA_PREFIX) or sub.count(":") != 3:
        raise TokenInvalid("sub is not a service account")
    _, _, ns, name = sub.split(":")
    private = claims.get("kubernetes.io") or {}
    if private.get("namespace", ns) != ns:
        raise TokenInvalid("namespace claim does not match sub")
    uid = (private.get("serviceaccount") or {}).get("uid", "")
    return VerifiedToken(namespace=ns, name=name, uid=uid, claims=claims)


def _rfc3339(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def token_request(sa: dict, body: dict, store, signing_key: PrivateKey, issuer: str,
                        default_audiences: list[str]) -> dict:
    """The TokenRequest subresource (POST serviceaccounts/<name>/token): returns the
    authentication.k8s.io/v1 TokenRequest with status.token and expirationTimestamp."""
    spec = dict(body.get("spec") or {})
    meta = sa.get("metadata", {})
    ns, name = meta.get("namespace", ""), meta.get("name", "")
    seconds = spec.get("expirationSeconds") or DEFAULT_EXPIRATION_SECONDS
    if not isinstance(seconds, int) or seconds < MIN_EXPIRATION_SECONDS:
        raise errors.invalid("TokenRequest", name, [errors.invalid_value(
            "spec.expirationSeconds", seconds, "may not specify a duration less than 10 minutes")],
            group="authentication.k8s.io")
    if seconds > 2**32:
        raise errors.invalid("TokenRequest", name, [errors.invalid_value(
            "spec.expirationSeconds", seconds, "may not specify a duration larger than 2^32 seconds")],
            group="authentication.k8s.io")
    audiences = spec.get("audiences") or list(default_audiences)
    bound, node = None, None
    ref = spec.get("boundObjectRef")
    if ref:
        kind = ref.get("kind", "")
        plural = {"Pod": "pods", "Secret": "secrets", "Node": "nodes"}.get(kind)
        if plural is None:
            raise errors.bad_request(f'cannot bind token for serviceaccount "{name}" to object '
                                     f'of kind "{kind}": only Pod, Secret and Node are supported')
        obj_ns = None if kind == "Node" else ns
        bound = await store.get(plural, obj_ns, ref.get("name", ""))
        if bound is None:
            raise errors.not_found(plural, ref.get("name", ""))
        if ref.get("uid") and bound["metadata"].get("uid") != ref["uid"]:
            raise errors.conflict(plural, ref.get("name", ""),
                                  detail=f"the UID in the bound object reference ({ref['uid']}) "
                                         f"does not match the UID in record. The object might "
                                         f"have been deleted and then recreated")
        bound = {**bound, "kind": kind}
        if kind == "Pod" and bound.get("spec", {}).get("nodeName"):
            node = await store.get("nodes", None, bound["spec"]["nodeName"])
        spec["boundObjectRef"] = {"kind": kind, "apiVersion": ref.get("apiVersion", "v1"),
                                  "name": ref.get("name", ""),
                                  "uid": bound["metadata"].get("uid", "")}
    token, expires = issue_token(sa, audiences, seconds, bound, signing_key, issuer, node=node)
    spec["audiences"] = audiences
    spec["expirationSeconds"] = seconds
    return {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns,
                     "creationTimestamp": _rfc3339(datetime.now(UTC))},
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": _rfc3339(expires)},
    }
