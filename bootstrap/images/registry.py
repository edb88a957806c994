"""The cluster registry's serving certificate and pushes into it.

Two pairs from the cluster CA, neither one of kubeadm's (so not in the pki
catalogue, whose entries ``certs check-expiration/renew`` and ``init phase
certs`` list): the registry's serving pair (the registry host's name and IP,
kept with its other per-node leaves) and one client pair that every containerd
and the toolkit present, since the registry asks every connection for a client
certificate from the cluster CA. Pushes use skopeo, which speaks the OCI
distribution API and reads oci-archive: sources; it trusts only the CA given
(``--dest-cert-dir``), never the system store.
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
from bootstrap.pki.certs import (
    CLIENT_AUTH,
    SERVER_AUTH,
    CertSpec,
    problems_with,
    read_cert_file,
    sign_leaf,
)
from bootstrap.pki.keys import generate_key

REGISTRY_BASE = "registry"  # registry.crt / registry.key: the serving pair
CLIENT_BASE = "registry-client"  # the pair nodes and the toolkit present to it
CLIENT_CN = "bootstrap:registry-client"
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


def _ensure_pair(cert_dir: Path, ca_dir: Path, base: str, spec: CertSpec, algorithm: str,
                 validity: timedelta) -> tuple[Path, Path, bool]:
    """(cert, key, created): reuse a valid pair, else sign a new one with the cluster CA."""
    cert_dir = Path(cert_dir)
    crt, key = cert_dir / f"{base}.crt", cert_dir / f"{base}.key"
    ca = store.require_ca(Path(ca_dir), "ca", f"the {base} certificate")
    if crt.exists() and key.exists() and not problems_with(read_cert_file(crt), spec, ca.cert):
        return crt, key, False
    if ca.external:
        raise UserError(f"cannot sign the {base} certificate: the cluster CA key is not here",
                        where=str(ca.cert_path), hint=f"provide {crt} and {key} signed by that CA")
    private = generate_key(algorithm)
    cert = sign_leaf(spec, private.public_key(), ca.cert, ca.key, validity)
    store.write_pair(cert_dir, base, cert, private)
    return crt, key, True


def ensure_registry_cert(cert_dir: Path, ca_dir: Path, host_name: str, ip: str,
                         algorithm: str = "ECDSA-P256",
                         validity: timedelta = timedelta(days=365)) -> tuple[Path, Path, bool]:
    """The registry host's serving pair (CN and DNS SAN the host name, IP SANs its IP)."""
    return _ensure_pair(cert_dir, ca_dir, REGISTRY_BASE, registry_spec(host_name, ip),
                        algorithm, validity)


def ensure_client_cert(cert_dir: Path, ca_dir: Path, algorithm: str = "ECDSA-P256",
                       validity: timedelta = timedelta(days=365)) -> tuple[Path, Path, bool]:
    """The pair every containerd and the toolkit's pushes present (the registry asks for
    a client certificate from the cluster CA on every connection)."""
    return _ensure_pair(cert_dir, ca_dir, CLIENT_BASE,
                        CertSpec(common_name=CLIENT_CN, usages=(CLIENT_AUTH,)), algorithm,
                        validity)


def registry_vars(pki_dir: Path, host_name: str, ip: str,
                  algorithm: str = "ECDSA-P256") -> dict[str, str]:
    """Both pairs (made if missing) as the registry and containerd roles' variables."""
    pki_dir = Path(pki_dir)
    crt, key, _ = ensure_registry_cert(pki_dir / "nodes" / host_name, pki_dir, host_name, ip,
                                       algorithm)
    ccrt, ckey, _ = ensure_client_cert(pki_dir, pki_dir, algorithm)
    return {"registry_cert_local": str(crt), "registry_key_local": str(key),
            "registry_client_cert_local": str(ccrt), "registry_client_key_local": str(ckey)}


def push(archive: Path, ref: str, ca_file: Path, client_cert: Path | None = None,
         client_key: Path | None = None, *, timeout: float = 300) -> None:
    """Copy the OCI archive to ``ref`` (``host:port/name:tag``), trusting only ``ca_file``
    and presenting the client pair (the cluster registry refuses connections without one)."""
    if not Path(archive).is_file():
        raise UserError(f"{archive}: no such image archive", where="image push",
                        hint="build one with `bootstrap image build-busybox`")
    for what, path in (("CA certificate", ca_file), ("client certificate", client_cert),
                       ("client key", client_key)):
        if path is not None and not Path(path).is_file():
            raise UserError(f"{path}: no such {what}", where="image push",
                            hint="the cluster's are in <inventory dir>/artifacts/pki "
                                 f"(ca.crt, {CLIENT_BASE}.crt, {CLIENT_BASE}.key)")
    if (client_cert is None) != (client_key is None):
        raise UserError("a client certificate needs its key (and the other way round)",
                        where="image push", hint="pass both --cert and --key")
    if "://" in ref or "/" not in ref:
        raise UserError(f"{ref!r} is not a registry reference", where="image push",
                        hint="write it as HOST:PORT/NAME:TAG, e.g. 10.250.0.2:5000/busybox:1.35")
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise UserError("skopeo not found", where="image push",
                        hint="install Debian's skopeo (apt-get install skopeo)")
    with tempfile.TemporaryDirectory(prefix="bootstrap-push-") as certs:
        # skopeo's cert dir: *.crt are CAs for this registry only, *.cert + *.key the
        # client pair.
        shutil.copy(ca_file, Path(certs) / "ca.crt")
        if client_cert is not None and client_key is not None:
            shutil.copy(client_cert, Path(certs) / "client.cert")
            shutil.copy(client_key, Path(certs) / "client.key")
        proc = subprocess.run(
            [skopeo, "copy", "--quiet", "--dest-cert-dir", certs, "--dest-tls-verify=true",
             f"oci-archive:{archive}", f"docker://{ref}"],
            capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise UserError(f"push of {archive} to {ref} failed: {last[0]}", where="image push",
                        hint="is the registry up, is --ca the CA that signed its certificate, "
                             "and is the client pair from that CA?")
