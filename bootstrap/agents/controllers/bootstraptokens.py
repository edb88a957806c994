"""Reading bootstrap-token Secrets (kube-system/bootstrap-token-<id>, type
bootstrap.kubernetes.io/token) as upstream's cluster-bootstrap secret utilities."""

from __future__ import annotations

import base64
import re

from .util import timestamp

NAMESPACE = "kube-system"
SECRET_TYPE = "bootstrap.kubernetes.io/token"
NAME_PREFIX = "bootstrap-token-"
_ID = re.compile(r"^[a-z0-9]{6}$")


def data(secret: dict, key: str) -> str:
    value = (secret.get("data") or {}).get(key)
    if value is None:
        return ""
    try:
        return base64.b64decode(value).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def is_token_secret(secret: dict) -> bool:
    md = secret.get("metadata") or {}
    return secret.get("type") == SECRET_TYPE and md.get("namespace") == NAMESPACE


def expiration(secret: dict, now: float) -> tuple[float, bool]:
    """(seconds left, expired) as GetExpiration: no expiration never expires, an
    unparseable one counts as expired."""
    raw = data(secret, "expiration")
    if not raw:
        return 0.0, False
    at = timestamp(raw)
    if at is None:
        return 0.0, True
    left = at - now
    return (0.0, True) if left <= 0 else (left, False)


def signing_token(secret: dict, now: float) -> tuple[str, str] | None:
    """(token id, token secret) when the Secret may sign cluster-info
    (validateSecretForSigning): the name matches the id, not expired,
    usage-bootstrap-signing=true."""
    if not is_token_secret(secret):
        return None
    name = secret["metadata"]["name"]
    if not name.startswith(NAME_PREFIX) or not _ID.match(name[len(NAME_PREFIX):]):
        return None
    token_id, token_secret = data(secret, "token-id"), data(secret, "token-secret")
    if not token_id or token_id != name[len(NAME_PREFIX):] or not token_secret:
        return None
    if expiration(secret, now)[1]:
        return None
    if data(secret, "usage-bootstrap-signing") != "true":
        return None
    return token_id, token_secret
