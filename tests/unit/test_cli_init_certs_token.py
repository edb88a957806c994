"""`bootstrap certs check-expiration|renew|certificate-key` and `bootstrap token generate`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from openssl_readback import dates, pubkey_der_of_cert

from bootstrap.cli import main

NODE = ["--node-name", "cp-1", "--advertise-address", "10.0.0.11"]


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[str, str]:
    d, k = str(tmp_path / "pki"), str(tmp_path / "k")
    assert run("init", "phase", "certs", "all", "--cert-dir", d, *NODE).exit_code == 0
    assert run("init", "phase", "kubeconfig", "all", "--cert-dir", d, "--kubeconfig-dir", k,
               *NODE).exit_code == 0
    return d, k


def test_check_expiration_tables(dirs):
    d, k = dirs
    res = run("certs", "check-expiration", "--cert-dir", d, "--kubeconfig-dir", k)
    assert res.exit_code == 0, res.output
    out = res.output
    assert re.search(r"CERTIFICATE\s+EXPIRES\s+RESIDUAL TIME\s+CERTIFICATE AUTHORITY\s+"
                     r"EXTERNALLY MANAGED", out)
    assert re.search(r"CERTIFICATE AUTHORITY\s+EXPIRES\s+RESIDUAL TIME\s+EXTERNALLY MANAGED", out)
    assert re.search(r"apiserver\s+\w{3} \d\d, \d{4} \d\d:\d\d UTC\s+36[45]d\s+ca\s+no", out)
    assert re.search(r"etcd-peer\s+.*UTC\s+36[45]d\s+etcd-ca\s+no", out)
    assert re.search(r"super-admin\.conf\s+.*\s+ca\s+no", out)
    assert re.search(r"front-proxy-ca\s+.*UTC\s+9y\s+no", out)


def test_check_expiration_marks_external_and_missing(dirs):
    d, k = dirs
    (Path(d) / "front-proxy-ca.key").unlink()
    (Path(k) / "scheduler.conf").unlink()
    res = run("certs", "check-expiration", "--cert-dir", d, "--kubeconfig-dir", k)
    assert re.search(r"front-proxy-client\s+.*front-proxy-ca\s+yes", res.output)
    assert "!MISSING! scheduler.conf" in res.output


def test_renew_one_and_all(dirs):
    d, k = dirs
    before = pubkey_der_of_cert(Path(d) / "apiserver.crt")
    old_serial_end = dates(Path(d) / "apiserver.crt")
    res = run("certs", "renew", "apiserver", "--cert-dir", d, "--kubeconfig-dir", k)
    assert res.exit_code == 0, res.output
    assert pubkey_der_of_cert(Path(d) / "apiserver.crt") == before
    assert dates(Path(d) / "apiserver.crt")[1] >= old_serial_end[1]
    res = run("certs", "renew", "all", "--new-key", "--cert-dir", d, "--kubeconfig-dir", k)
    assert res.exit_code == 0, res.output
    assert res.output.count("renewed") == 11
    assert pubkey_der_of_cert(Path(d) / "apiserver.crt") != before


def test_renew_unknown_name_is_rejected(dirs):
    d, k = dirs
    res = run("certs", "renew", "kubelet.conf", "--cert-dir", d, "--kubeconfig-dir", k)
    assert res.exit_code == 2 and "kubelet.conf" in res.output


def test_renew_external_ca_is_one_line(dirs):
    d, k = dirs
    (Path(d) / "ca.key").unlink()
    res = run("certs", "renew", "admin.conf", "--cert-dir", d, "--kubeconfig-dir", k)
    assert res.exit_code == 2
    assert res.output.strip().startswith("error: ") and res.output.strip().count("\n") == 0
    assert "externally managed" in res.output


def test_token_generate_and_certificate_key():
    a, b = run("token", "generate"), run("token", "generate")
    assert a.exit_code == 0 and re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}\n", a.output)
    assert a.output != b.output
    key = run("certs", "certificate-key")
    assert key.exit_code == 0 and re.fullmatch(r"[0-9a-f]{64}\n", key.output)
