"""kubeadm's ``kubeconfig user`` and ``certs generate-csr``.

``user_kubeconfig``: a kubeconfig for a new user, its client certificate
(CN = the user, O = its groups, clientAuth) signed by the cluster CA, as
``kubeadm kubeconfig user --client-name NAME --org GROUP`` prints it.

``generate_csrs``: for an external CA, a private key and a certificate
signing request for every certificate the control plane needs (kubeadm's
leaves with the subjects and SANs it would give them; the etcd ones only with
local etcd) and, for each kubeconfig, a ``<file>.csr`` beside a partial
kubeconfig holding only the private key (``users[].user.client-key-data``),
as ``kubeadm certs generate-csr`` writes them. A key and CSR pair already
there is kept when the two match; one without the other, or a mismatch, is
an error (never overwritten).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from bootstrap.config.model import ClusterConfig
from bootstrap.errors import UserError
from bootstrap.pki import catalog
from bootstrap.pki._files import CERT_MODE, KEY_MODE, write_atomic
from bootstrap.pki.certs import CLIENT_AUTH, CertSpec, sign_leaf
from bootstrap.pki.keys import generate_key, key_to_pem, load_private_key
from bootstrap.pki.kubeconfig import KUBECONFIGS, render, server_url
from bootstrap.pki.store import require_ca


def _require_client_name(name: str) -> str:
    if not name or not name.strip() or any(c in name for c in "\n\r\0"):
        raise UserError(f"--client-name {name!r} is not a user name",
                        hint="e.g. --client-name jane")
    return name


def user_kubeconfig(cert_dir: Path, *, cluster_name: str, server: str, client_name: str,
                    organizations: tuple[str, ...] = (), validity: timedelta,
                    algorithm: str = "ECDSA-P256") -> str:
    """The kubeconfig text for ``client_name``; the CA key must be in ``cert_dir``."""
    _require_client_name(client_name)
    ca = require_ca(Path(cert_dir), "ca", f"a kubeconfig for {client_name}")
    if ca.external:
        raise UserError("cannot sign the user's client certificate: the CA key is not here "
                        "(external CA mode)", where=str(ca.cert_path),
                        hint="run this where ca.key is, or have your CA sign a CSR")
    orgs = tuple(dict.fromkeys(o for o in organizations if o))
    spec = CertSpec(client_name, orgs, (CLIENT_AUTH,))
    key = generate_key(algorithm)
    cert = sign_leaf(spec, key.public_key(), ca.cert, ca.key, validity)
    return render(cluster_name, server, ca.cert, client_name, cert, key)


@dataclass(frozen=True)
class CSROutcome:
    name: str
    csr: Path
    key: Path
    created: bool


def csr_for(spec: CertSpec, key) -> x509.CertificateSigningRequest:
    """A CSR asking for exactly what ``spec`` says (subject, SANs, key usages)."""
    attrs = [x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, o) for o in spec.organizations]
    attrs.append(x509.NameAttribute(x509.NameOID.COMMON_NAME, spec.common_name))
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    names = [x509.DNSName(d) for d in spec.dns_names] + [x509.IPAddress(i) for i in spec.ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if spec.usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(spec.usages)), critical=False)
    return builder.sign(key, hashes.SHA256())


def _write_pair(name: str, csr_path: Path, key_path: Path, spec: CertSpec, algorithm: str,
                key_text=None) -> CSROutcome:
    """Write key and CSR, or keep a matching pair that is already there."""
    have_csr, have_key = csr_path.exists(), key_path.exists()
    if have_csr or have_key:
        if not (have_csr and have_key):
            present = csr_path if have_csr else key_path
            raise UserError(f"{present.name} exists without its "
                            f"{'key' if have_csr else 'CSR'}", where=str(present),
                            hint="remove it to generate a new pair")
        try:
            csr = x509.load_pem_x509_csr(csr_path.read_bytes())
            key = key_text(key_path) if key_text is not None else \
                load_private_key(key_path.read_bytes(), str(key_path))
        except (ValueError, UserError) as exc:
            raise UserError(f"cannot read the existing pair: {exc}", where=str(csr_path),
                            hint="remove both files to generate a new pair") from None
        der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if csr.public_key().public_bytes(*der) != key.public_key().public_bytes(*der):
            raise UserError("existing CSR does not match its key", where=str(csr_path),
                            hint="remove both files to generate a new pair")
        return CSROutcome(name, csr_path, key_path, created=False)
    key = generate_key(algorithm)
    csr = csr_for(spec, key)
    csr_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(key_path, key_to_pem(key) if key_text is None else key_text(key), KEY_MODE)
    write_atomic(csr_path, csr.public_bytes(serialization.Encoding.PEM), CERT_MODE)
    return CSROutcome(name, csr_path, key_path, created=True)


def generate_csrs(cert_dir: Path, kubeconfig_dir: Path, config: ClusterConfig,
                  node: catalog.Node) -> list[CSROutcome]:
    """kubeadm's ``certs generate-csr``: keys and CSRs for every certificate and kubeconfig."""
    cert_dir, kubeconfig_dir = Path(cert_dir), Path(kubeconfig_dir)
    out: list[CSROutcome] = []
    alg = config.encryption_algorithm
    for name in catalog.ORDER:
        d = catalog.LEAVES.get(name)
        if d is None or (d.etcd and not catalog.wants_local_etcd(config)):
            continue
        spec = catalog.leaf_spec(name, config, node if d.per_node else None)
        out.append(_write_pair(name, cert_dir / f"{d.base}.csr", cert_dir / d.key, spec, alg))
    ca_pem = None
    if (cert_dir / "ca.crt").exists():
        ca_pem = (cert_dir / "ca.crt").read_bytes()
    for name, kd in KUBECONFIGS.items():
        spec = kd.spec(node.name)
        server = server_url(config, node.advertise_address, kd.local_endpoint)
        out.append(_write_pair(
            name, kubeconfig_dir / f"{kd.file}.csr", kubeconfig_dir / kd.file, spec, alg,
            key_text=_PartialKubeconfig(config.cluster_name, server, spec.common_name, ca_pem)))
    return out


class _PartialKubeconfig:
    """Reads and writes the private key as a kubeconfig missing its client certificate."""

    def __init__(self, cluster: str, server: str, user: str, ca_pem: bytes | None):
        self.cluster, self.server, self.user, self.ca_pem = cluster, server, user, ca_pem

    def __call__(self, arg):
        if isinstance(arg, Path):  # read the key back out of an existing file
            doc = yaml.safe_load(arg.read_text()) or {}
            try:
                data = doc["users"][0]["user"]["client-key-data"]
            except (KeyError, IndexError, TypeError):
                raise ValueError("no users[0].user.client-key-data") from None
            return serialization.load_pem_private_key(base64.b64decode(data), None)
        context = f"{self.user}@{self.cluster}"
        cluster = {"server": self.server}
        if self.ca_pem is not None:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_pem).decode()
        doc = {"apiVersion": "v1", "kind": "Config",
               "clusters": [{"name": self.cluster, "cluster": cluster}],
               "contexts": [{"name": context, "context": {"cluster": self.cluster,
                                                           "user": self.user}}],
               "current-context": context, "preferences": {},
               "users": [{"name": self.user, "user": {
                   "client-key-data": base64.b64encode(key_to_pem(arg)).decode()}}]}
        return yaml.safe_dump(doc, sort_keys=False).encode()

