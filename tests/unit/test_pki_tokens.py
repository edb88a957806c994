"""Join helpers: bootstrap tokens, CA pin, certificate key and AES-GCM sharing."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from openssl_readback import pubkey_der_of_cert

from bootstrap.config.model import ClusterConfig
from bootstrap.errors import UserError
from bootstrap.pki import ensure_all
from bootstrap.pki.tokens import (
    SHARED_FILES,
    ca_cert_hash,
    decrypt,
    encrypt,
    generate_certificate_key,
    generate_token,
    is_valid_token,
    pack_shared_certs,
    parse_token,
    unpack_shared_certs,
)


def test_tokens_have_kubeadm_format_and_differ():
    tokens = {generate_token() for _ in range(200)}
    assert len(tokens) == 200
    for t in tokens:
        assert re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", t)
        assert is_valid_token(t)


@pytest.mark.parametrize("bad", ["", "abcdef", "abcdef.0123456789abcde", "ABCDEF.0123456789abcdef",
                                 "abcdef.0123456789abcdef0", "abcde.0123456789abcdefg",
                                 "abcdef:0123456789abcdef", " abcdef.0123456789abcdef"])
def test_bad_tokens(bad: str):
    assert not is_valid_token(bad)
    with pytest.raises(UserError):
        parse_token(bad)


def test_parse_token():
    assert parse_token("abcdef.0123456789abcdef") == ("abcdef", "0123456789abcdef")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    ensure_all(d, ClusterConfig(), "cp-1", "10.0.0.1")
    return d


def test_ca_pin_matches_openssl(pki: Path):
    want = "sha256:" + hashlib.sha256(pubkey_der_of_cert(pki / "ca.crt")).hexdigest()
    assert ca_cert_hash(pki / "ca.crt") == want


def test_certificate_key_is_32_bytes_hex():
    keys = {generate_certificate_key() for _ in range(20)}
    assert len(keys) == 20
    assert all(re.fullmatch(r"[0-9a-f]{64}", k) for k in keys)


def test_encrypt_round_trip_and_randomized_nonce():
    key = generate_certificate_key()
    a, b = encrypt(b"secret CA key", key), encrypt(b"secret CA key", key)
    assert a != b and b"secret" not in a
    assert decrypt(a, key) == b"secret CA key"


def test_tamper_and_wrong_key_are_detected():
    key = generate_certificate_key()
    sealed = bytearray(encrypt(b"payload", key))
    sealed[-1] ^= 1
    with pytest.raises(UserError, match="tampered"):
        decrypt(bytes(sealed), key)
    with pytest.raises(UserError, match="wrong certificate key"):
        decrypt(encrypt(b"payload", key), generate_certificate_key())
    with pytest.raises(UserError, match="64 hex"):
        encrypt(b"x", "abcd")
    with pytest.raises(UserError, match="too short"):
        decrypt(b"123", key)


def test_shared_certs_round_trip(pki: Path, tmp_path: Path):
    key = generate_certificate_key()
    packed = pack_shared_certs(pki, key)
    assert sorted(packed) == sorted(SHARED_FILES)
    target = tmp_path / "joining"
    written = unpack_shared_certs(packed, key, target)
    assert len(written) == len(SHARED_FILES)
    for rel in SHARED_FILES:
        assert (target / rel).read_bytes() == (pki / rel).read_bytes()
        assert (target / rel).stat().st_mode & 0o777 == (0o600 if rel.endswith(".key") else 0o644)
    assert unpack_shared_certs(packed, key, target) == []  # idempotent


def test_unpack_refuses_to_overwrite_a_different_file(pki: Path, tmp_path: Path):
    key = generate_certificate_key()
    packed = pack_shared_certs(pki, key)
    (tmp_path / "etcd").mkdir()
    (tmp_path / "etcd/ca.crt").write_text("someone else's CA")
    with pytest.raises(UserError, match="differs"):
        unpack_shared_certs(packed, key, tmp_path)
    assert (tmp_path / "etcd/ca.crt").read_text() == "someone else's CA"
    assert not (tmp_path / "ca.key").exists()  # nothing written when one file conflicts
