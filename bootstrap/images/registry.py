"""The cluster registry's serving certificate and pushes into it.

The certificate is not one of kubeadm's (so it is not in the pki catalogue,
whose entries ``certs check-expiration/renew`` and ``init phase certs`` list):
a serverAuth leaf from the cluster CA with the registry host's name and IP,
kept next to the other per-node leaves. Pushes use skopeo, which speaks the
OCI distribution API and reads oci-archive: sources; it trusts only the CA
given (``--dest-cert-dir``), never the system store.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import tempfile
from datetime import timedelta
from pathlib import Path

from bootstrap.errors import UserError
from bootstrap.pki import store
from bootstrap.pki.certs import SERVER_AUTH, CertSpec, problems_with, read_cert_file, sign_leaf
from bootstrap.pki.keys import generate_key

REGISTRY_BASE = "registry"  # registry.crt / registry.key
REGISTRY_PORT = 5000


def registry_spec(host_name: str, ip: str) -> CertSpec:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        raise UserError(f"registry address {ip!r} is not an IP address", where="registry",
                        hint="set registry_host to an inventory host with ip= set") from None
    return CertSpec(common_name=host_name, usages=(SERVER_AUTH,),
                    dns_names=(host_name, "localhost"),
                    ips=(addr, ipaddress.ip_address("127.0.0.1")))


def ensure_registry_cert(cert_dir: Path, ca_dir: Path, host_name: str, ip: str,
                         algorithm: str = "ECDSA-P256",
                         validity: timedelta = timedelta(days=365)) -> tuple[Path, Path, bool]:
    """(cert, key, created): reuse a valid pair, else sign a new one with the cluster CA."""
    cert_dir, spec = Path(cert_dir), registry_spec(host_name, ip)
    crt, key = cert_dir / f"{REGISTRY_BASE}.crt", cert_dir / f"{REGISTRY_BASE}.key"
    ca = store.require_ca(Path(ca_dir), "ca", "the registry certificate")
    if crt.exists() and key.exists() and not problems_with(read_cert_file(crt), spec, ca.cert):
        return crt, key, False
    if ca.external:
        raise UserError("cannot sign the registry certificate: the cluster CA key is not here",
                        where=str(ca.cert_path), hint=f"provide {crt} and {key} signed by that CA")
    private = generate_key(algorithm)
    cert = sign_leaf(spec, private.public_key(), ca.cert, ca.key, validity)
    store.write_pair(cert_dir, REGISTRY_BASE, cert, private)
    return crt, key, True


def push(archive: Path, ref: str, ca_file: Path, *, timeout: float = 300) -> None:
    """Copy the OCI archive to ``ref`` (``host:port/name:tag``), trusting only ``ca_file``."""
    if not Path(archive).is_file():
        raise UserError(f"{archive}: no such image archive", where="image push",
                        hint="build one with `bootstrap image build-busybox`")
    if not Path(ca_file).is_file():
        raise UserError(f"{ca_file}: no such CA certificate", where="image push",
                        hint="pass --ca with the cluster CA (artifacts/pki/ca.crt)")
    if "://" in ref or "/" not in ref:
        raise UserError(f"{ref!r} is not a registry reference", where="image push",
                        hint="write it as HOST:PORT/NAME:TAG, e.g. 10.250.0.2:5000/busybox:1.35")
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise UserError("skopeo not found", where="image push",
                        hint="install Debian's skopeo (apt-get install skopeo)")
    with tempfile.TemporaryDirectory(prefix="bootstrap-push-") as certs:
        # skopeo reads every *.crt in the dir as a trusted CA for this registry only.
        shutil.copy(ca_file, Path(certs) / "ca.crt")
        proc = subprocess.run(
            [skopeo, "copy", "--quiet", "--dest-cert-dir", certs, "--dest-tls-verify=true",
             f"oci-archive:{archive}", f"docker://{ref}"],
            capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise UserError(f"push of {archive} to {ref} failed: {last[0]}", where="image push",
                        hint="is the registry up and is --ca the CA that signed its certificate?")
