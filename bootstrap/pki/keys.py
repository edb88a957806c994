"""Private keys: generation by ``encryptionAlgorithm``, PEM encoding, loading."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bootstrap.errors import UserError

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

_RSA_BITS = {"RSA-2048": 2048, "RSA-3072": 3072, "RSA-4096": 4096}


def generate_key(algorithm: str) -> PrivateKey:
    if algorithm == "ECDSA-P256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm in _RSA_BITS:
        return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[algorithm])
    raise UserError(
        f"unsupported encryptionAlgorithm {algorithm!r}",
        hint="use one of RSA-2048, RSA-3072, RSA-4096, ECDSA-P256",
    )


def key_to_pem(key: PrivateKey) -> bytes:
    # Traditional encodings ("RSA PRIVATE KEY" / "EC PRIVATE KEY") are what
    # kubeadm writes, so tools that expect kubeadm's files read ours unchanged.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def public_key_to_pem(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_der(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(data: bytes, where: str) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise UserError(
            f"cannot parse private key ({exc})", where=where,
            hint="delete the file to have it regenerated, or replace it with a PEM key",
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise UserError("private key is neither RSA nor ECDSA", where=where)
    return key


def load_public_key(data: bytes, where: str) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise UserError(f"cannot parse public key ({exc})", where=where) from None
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise UserError("public key is neither RSA nor ECDSA", where=where)
    return key


def same_public_key(a: PublicKey, b: PublicKey) -> bool:
    return public_key_der(a) == public_key_der(b)


def signature_hash() -> hashes.HashAlgorithm:
    # SHA-256 for both RSA and ECDSA P-256, as Go's x509 picks for these keys.
    return hashes.SHA256()


def read_key_file(path: Path) -> PrivateKey:
    return load_private_key(path.read_bytes(), str(path))
