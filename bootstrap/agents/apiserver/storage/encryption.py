"""Encryption at rest from an apiserver.config.k8s.io/v1 EncryptionConfiguration.

Per resource, the first provider encrypts writes and every provider can read, so
keys rotate by putting a new key first, rewriting, then dropping the old one.
Stored values carry upstream's ``k8s:enc:<provider>:v1:<key name>:`` prefix;
identity stores plain JSON.
"""

from __future__ import annotations

import base64
import os

import nacl.secret
import yaml
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bootstrap.api.errors import internal_error

PREFIX = b"k8s:enc:"


class ConfigError(ValueError):
    pass


class _Identity:
    prefix = b""

    def encrypt(self, data: bytes, ctx: bytes) -> bytes:
        return data

    def decrypt(self, data: bytes, ctx: bytes) -> bytes:
        return data


class _AESGCM:
    def __init__(self, name: str, secret: bytes):
        if len(secret) not in (16, 24, 32):
            raise ConfigError(f"aesgcm key {name!r} must be 16, 24 or 32 bytes")
        self.prefix = b"k8s:enc:aesgcm:v1:" + name.encode() + b":"
        self._aead = AESGCM(secret)

    def encrypt(self, data: bytes, ctx: bytes) -> bytes:
        nonce = os.urandom(12)
        return self.prefix + nonce + self._aead.encrypt(nonce, data, ctx)

    def decrypt(self, data: bytes, ctx: bytes) -> bytes:
        body = data[len(self.prefix):]
        return self._aead.decrypt(body[:12], body[12:], ctx)


class _AESCBC:
    def __init__(self, name: str, secret: bytes):
        if len(secret) not in (16, 24, 32):
            raise ConfigError(f"aescbc key {name!r} must be 16, 24 or 32 bytes")
        self.prefix = b"k8s:enc:aescbc:v1:" + name.encode() + b":"
        self._key = secret

    def encrypt(self, data: bytes, ctx: bytes) -> bytes:
        iv = os.urandom(16)
        padder = padding.PKCS7(128).padder()
        padded = padder.update(data) + padder.finalize()
        enc = Cipher(algorithms.AES(self._key), modes.CBC(iv)).encryptor()
        return self.prefix + iv + enc.update(padded) + enc.finalize()

    def decrypt(self, data: bytes, ctx: bytes) -> bytes:
        body = data[len(self.prefix):]
        dec = Cipher(algorithms.AES(self._key), modes.CBC(body[:16])).decryptor()
        padded = dec.update(body[16:]) + dec.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return unpadder.update(padded) + unpadder.finalize()


class _Secretbox:
    def __init__(self, name: str, secret: bytes):
        if len(secret) != 32:
            raise ConfigError(f"secretbox key {name!r} must be 32 bytes")
        self.prefix = b"k8s:enc:secretbox:v1:" + name.encode() + b":"
        self._box = nacl.secret.SecretBox(secret)

    def encrypt(self, data: bytes, ctx: bytes) -> bytes:
        return self.prefix + bytes(self._box.encrypt(data))

    def decrypt(self, data: bytes, ctx: bytes) -> bytes:
        return self._box.decrypt(data[len(self.prefix):])


_KINDS = {"aesgcm": _AESGCM, "aescbc": _AESCBC, "secretbox": _Secretbox}


class Transformer:
    """Write with the first provider; read with whichever prefix matches."""

    def __init__(self, providers: list):
        self.providers = providers

    def encrypt(self, data: bytes, key: str) -> bytes:
        return self.providers[0].encrypt(data, key.encode())

    def decrypt(self, data: bytes, key: str) -> bytes:
        if not data.startswith(PREFIX):
            if any(isinstance(p, _Identity) for p in self.providers):
                return data
            raise internal_error(f"no identity provider to read unencrypted {key}")
        for p in self.providers:
            if p.prefix and data.startswith(p.prefix):
                return p.decrypt(data, key.encode())
        raise internal_error(f"no key to decrypt {key}")


IDENTITY = Transformer([_Identity()])


def load(path: str | None) -> dict[str, Transformer]:
    """Map of resource ("secrets", "configmaps", "deployments.apps", "*") to transformer."""
    if not path:
        return {}
    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    if doc.get("kind") != "EncryptionConfiguration":
        raise ConfigError(f"{path}: kind must be EncryptionConfiguration")
    out: dict[str, Transformer] = {}
    for entry in doc.get("resources") or []:
        providers = []
        for p in entry.get("providers") or []:
            ((kind, spec),) = p.items()
            if kind == "identity":
                providers.append(_Identity())
            elif kind in _KINDS:
                keys = (spec or {}).get("keys") or []
                if not keys:
                    raise ConfigError(f"{path}: provider {kind} has no keys")
                for k in keys:
                    providers.append(_KINDS[kind](k["name"], base64.b64decode(k["secret"])))
            else:
                raise ConfigError(f"{path}: unsupported provider {kind!r}")
        if not providers:
            raise ConfigError(f"{path}: resource entry without providers")
        for res in entry.get("resources") or []:
            out.setdefault(res, Transformer(providers))
    return out


def for_resource(table: dict[str, Transformer], plural: str, group: str) -> Transformer:
    name = f"{plural}.{group}" if group else plural
    return (table.get(name) or table.get(f"*.{group}" if group else "*.")
            or table.get("*.*") or IDENTITY)
