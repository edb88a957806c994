"""Shared helpers for the PKI tests (no tests here): independent read-back of PKI files
with the real openssl binary, never with the code under test."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

CHAINS = {
    # leaf file -> CA file it must verify against (kubeadm's layout)
    "apiserver.crt": "ca.crt",
    "apiserver-kubelet-client.crt": "ca.crt",
    "front-proxy-client.crt": "front-proxy-ca.crt",
    "etcd/server.crt": "etcd/ca.crt",
    "etcd/peer.crt": "etcd/ca.crt",
    "etcd/healthcheck-client.crt": "etcd/ca.crt",
    "apiserver-etcd-client.crt": "etcd/ca.crt",
}


def openssl(*args: str, input: bytes | None = None) -> str:
    res = subprocess.run(["openssl", *args], input=input, capture_output=True, timeout=30)
    assert res.returncode == 0, res.stderr.decode()
    return res.stdout.decode()


def verify(ca: Path, leaf: Path) -> None:
    out = openssl("verify", "-CAfile", str(ca), str(leaf))
    assert out.strip().endswith(": OK"), out


def ext(cert: Path, name: str) -> str:
    """One extension as openssl prints it, e.g. ext(p, "subjectAltName")."""
    return openssl("x509", "-in", str(cert), "-noout", "-ext", name)


def subject(cert: Path) -> str:
    return openssl("x509", "-in", str(cert), "-noout", "-subject", "-nameopt", "RFC2253").strip()


def dates(cert: Path) -> tuple[datetime, datetime]:
    out = openssl("x509", "-in", str(cert), "-noout", "-startdate", "-enddate")
    vals = dict(line.split("=", 1) for line in out.strip().splitlines())
    fmt = "%b %d %H:%M:%S %Y GMT"
    return (datetime.strptime(" ".join(vals["notBefore"].split()), fmt).replace(tzinfo=UTC),
            datetime.strptime(" ".join(vals["notAfter"].split()), fmt).replace(tzinfo=UTC))


def text(cert: Path) -> str:
    return openssl("x509", "-in", str(cert), "-noout", "-text")


def pubkey_der_of_cert(cert: Path) -> bytes:
    pem = openssl("x509", "-in", str(cert), "-noout", "-pubkey")
    res = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pem.encode(),
                         capture_output=True, timeout=30, check=True)
    return res.stdout


def pubkey_der_of_key(key: Path) -> bytes:
    res = subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "der"],
                         capture_output=True, timeout=30, check=True)
    return res.stdout
