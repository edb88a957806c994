"""Join helpers: bootstrap tokens, the CA pin, and the certificate key.

- Bootstrap tokens look like ``abcdef.0123456789abcdef`` (id.secret), drawn
  from ``secrets`` as kubeadm draws from crypto/rand.
- The CA pin is ``sha256:<hex>`` over the CA's DER SubjectPublicKeyInfo, what
  ``kubeadm join --discovery-token-ca-cert-hash`` checks.
- Discovery signatures: the cluster-info kubeconfig signed with a token as a
  detached JWS (HS256, ``kid`` = token id), what kubeadm's token discovery checks.
- The certificate key (32 random bytes, hex) encrypts the shared CA files with
  AES-256-GCM, the random 12-byte nonce prefixed to the sealed data, as
  ``kubeadm init --upload-certs`` does for the kubeadm-certs Secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from pathlib import Path

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bootstrap.errors import UserError
from bootstrap.pki._files import CERT_MODE, KEY_MODE, write_atomic
from bootstrap.pki.certs import read_cert_file
from bootstrap.pki.keys import public_key_der

TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_NONCE_LEN = 12


def generate_token() -> str:
    pick = secrets.choice
    return "".join(pick(_ALPHABET) for _ in range(6)) + "." + "".join(
        pick(_ALPHABET) for _ in range(16))


def is_valid_token(token: str) -> bool:
    return TOKEN_RE.match(token) is not None


def parse_token(token: str) -> tuple[str, str]:
    """(token id, token secret); UserError if the format is wrong."""
    m = TOKEN_RE.match(token)
    if m is None:
        raise UserError(
            "bootstrap token has the wrong format",
            hint=r"expected [a-z0-9]{6}.[a-z0-9]{16}, e.g. from `bootstrap token generate`",
        )
    return m.group(1), m.group(2)


def detached_jws(content: str, token_id: str, token_secret: str) -> str:
    """RFC 7515 Appendix F detached JWS of ``content`` keyed by the token secret:
    ``<header>..<signature>``, byte-identical to kubeadm's ComputeDetachedSignature
    (go-jose zero-pads the key to 32 bytes, which HMAC's own padding makes a no-op,
    and serialises the header with sorted keys and no ``typ``)."""
    key = token_secret.encode().ljust(32, b"\0")
    full = jwt.api_jws.PyJWS().encode(content.encode(), key, algorithm="HS256",
                                      headers={"kid": token_id, "typ": None})
    header, _, signature = full.split(".")
    return f"{header}..{signature}"


def detached_jws_valid(signature: str, content: str, token_id: str, token_secret: str) -> bool:
    return hmac.compare_digest(signature, detached_jws(content, token_id, token_secret))


def ca_cert_hash(ca_cert_path: str | Path) -> str:
    cert = read_cert_file(Path(ca_cert_path))
    return "sha256:" + hashlib.sha256(public_key_der(cert.public_key())).hexdigest()


def generate_certificate_key() -> str:
    return secrets.token_hex(32)


def _aes(certificate_key: str) -> AESGCM:
    try:
        raw = binascii.unhexlify(certificate_key)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise UserError("certificate key must be 64 hex characters (32 bytes)",
                        hint="use the key printed by `bootstrap certs certificate-key`")
    return AESGCM(raw)


def encrypt(data: bytes, certificate_key: str) -> bytes:
    nonce = secrets.token_bytes(_NONCE_LEN)
    return nonce + _aes(certificate_key).encrypt(nonce, data, None)


def decrypt(sealed: bytes, certificate_key: str) -> bytes:
    aes = _aes(certificate_key)
    if len(sealed) <= _NONCE_LEN:
        raise UserError("encrypted data is too short to be valid")
    try:
        return aes.decrypt(sealed[:_NONCE_LEN], sealed[_NONCE_LEN:], None)
    except InvalidTag:
        raise UserError(
            "cannot decrypt the shared certificates: wrong certificate key or tampered data",
            hint="use the certificate key printed at init, or upload the certificates again",
        ) from None


# The files a joining control-plane node needs, as kubeadm's upload-certs shares them.
SHARED_FILES = ("ca.crt", "ca.key", "sa.key", "sa.pub", "front-proxy-ca.crt",
                "front-proxy-ca.key", "etcd/ca.crt", "etcd/ca.key")


def pack_shared_certs(cert_dir: str | Path, certificate_key: str) -> dict[str, str]:
    """Encrypted copies of the shared CA files present in ``cert_dir``, base64 by rel path."""
    cert_dir = Path(cert_dir)
    out = {}
    for rel in SHARED_FILES:
        p = cert_dir / rel
        if p.exists():
            out[rel] = base64.b64encode(encrypt(p.read_bytes(), certificate_key)).decode()
    return out


def unpack_shared_certs(packed: dict[str, str], certificate_key: str,
                        cert_dir: str | Path) -> list[Path]:
    """Decrypt and check everything first, then write; an existing different file is an error."""
    cert_dir = Path(cert_dir)
    plain = {}
    for rel, b64 in packed.items():
        if rel not in SHARED_FILES:
            raise UserError(f"unexpected file {rel!r} in shared certificates")
        plain[rel] = decrypt(base64.b64decode(b64), certificate_key)
    for rel, data in plain.items():
        p = cert_dir / rel
        if p.exists() and p.read_bytes() != data:
            raise UserError("differs from the shared copy", where=str(p),
                            hint="delete it if this node should take the cluster's CA files")
    written = []
    for rel, data in plain.items():
        p = cert_dir / rel
        if not p.exists():
            write_atomic(p, data, KEY_MODE if rel.endswith(".key") else CERT_MODE)
            written.append(p)
    return written
