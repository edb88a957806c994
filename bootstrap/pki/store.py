"""Create-or-reuse of CAs, leaves and the service-account key pair in a cert dir.

Existing files are never silently replaced: a file that is valid for its spec
is reused, anything else is a ``UserError`` naming the file and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from bootstrap.config.model import ClusterConfig
from bootstrap.errors import UserError
from bootstrap.pki import catalog
from bootstrap.pki._files import CERT_MODE, KEY_MODE, write_atomic
from bootstrap.pki.catalog import CAS, LEAVES, Node
from bootstrap.pki.certs import (
    cert_to_pem,
    create_ca,
    problems_with,
    read_cert_file,
    sign_leaf,
)
from bootstrap.pki.keys import (
    PrivateKey,
    generate_key,
    key_to_pem,
    load_public_key,
    public_key_to_pem,
    read_key_file,
    same_public_key,
)


@dataclass(frozen=True)
class Outcome:
    name: str
    path: Path           # the certificate (or sa.key)
    created: bool        # False: an existing valid file was reused


@dataclass
class CA:
    cert: x509.Certificate
    key: PrivateKey | None  # None: external CA, only its certificate is here
    cert_path: Path

    @property
    def external(self) -> bool:
        return self.key is None


def _paths(cert_dir: Path, base: str) -> tuple[Path, Path]:
    return cert_dir / f"{base}.crt", cert_dir / f"{base}.key"


def write_pair(cert_dir: Path, base: str, cert: x509.Certificate, key: PrivateKey | None) -> Path:
    crt, keyp = _paths(Path(cert_dir), base)
    if key is not None:
        write_atomic(keyp, key_to_pem(key), KEY_MODE)
    write_atomic(crt, cert_to_pem(cert), CERT_MODE)
    return crt


def _check_pair(crt: Path, keyp: Path, cert: x509.Certificate) -> PrivateKey:
    key = read_key_file(keyp)
    if not same_public_key(key.public_key(), cert.public_key()):
        raise UserError(
            f"certificate does not match its key {keyp.name}", where=str(crt),
            hint="delete both files to regenerate them, or restore the matching pair",
        )
    return key


def load_ca(ca_dir: str | Path, name: str) -> CA | None:
    """The CA ``name`` from ``ca_dir``: None if absent; key None if only the cert is there."""
    d = catalog.cert_def(name)
    crt, keyp = _paths(Path(ca_dir), d.base)
    if not crt.exists():
        if keyp.exists():
            raise UserError(
                f"CA key exists without its certificate {crt.name}", where=str(keyp),
                hint="restore the certificate or delete the key to start a new CA",
            )
        return None
    cert = read_cert_file(crt)
    problems = problems_with(cert, catalog.ca_spec(name) if name in CAS else None)
    # A CA made by someone else may use another CN; only validity and CA-ness matter.
    problems = [p for p in problems if not p.startswith("has CN")]
    if problems:
        raise UserError(
            f"CA certificate {problems[0]}", where=str(crt),
            hint="renew the CA out of band or delete the whole cert dir to start over",
        )
    key = _check_pair(crt, keyp, cert) if keyp.exists() else None
    return CA(cert=cert, key=key, cert_path=crt)


def fix_hint(problem: str, renew_name: str, *files: str) -> str:
    delete = f"delete {' and '.join(files)} to have them generated again"
    if problem.startswith("expired"):
        # Renewal keeps subject and SANs, so it only fixes expiry.
        return f"run `bootstrap certs renew {renew_name}` or {delete}"
    return delete


def ensure_ca(name: str, ca_dir: str | Path, config: ClusterConfig) -> Outcome:
    ca_dir = Path(ca_dir)
    existing = load_ca(ca_dir, name)
    base = CAS[name].base
    if existing is not None:
        return Outcome(name, existing.cert_path, created=False)
    key = generate_key(config.encryption_algorithm)
    cert = create_ca(catalog.ca_spec(name), key, config.ca_certificate_validity_period)
    return Outcome(name, write_pair(ca_dir, base, cert, key), created=True)


def ensure_cas(ca_dir: str | Path, config: ClusterConfig) -> list[Outcome]:
    names = [n for n in CAS if not CAS[n].etcd or catalog.wants_local_etcd(config)]
    return [ensure_ca(n, ca_dir, config) for n in names]


def require_ca(ca_dir: Path, ca_name: str, for_what: str) -> CA:
    ca = load_ca(ca_dir, ca_name)
    if ca is None:
        base = catalog.cert_def(ca_name).base
        raise UserError(
            f"cannot create {for_what}: CA certificate {ca_dir / (base + '.crt')} does not exist",
            hint=f"create the CA first with `bootstrap init phase certs {ca_name}`",
        )
    return ca


def ensure_leaf(
    name: str,
    cert_dir: str | Path,
    ca_dir: str | Path | None,
    config: ClusterConfig,
    node_name: str | None = None,
    advertise_address: str | None = None,
) -> Outcome:
    """Leaf ``name`` in ``cert_dir``, signed by its CA from ``ca_dir`` (default: cert_dir).

    Many nodes' leaves can be made on one machine by pointing ``cert_dir`` at a
    per-node directory and ``ca_dir`` at the shared one.
    """
    cert_dir = Path(cert_dir)
    ca_dir = Path(ca_dir) if ca_dir is not None else cert_dir
    d = LEAVES.get(name) or catalog.cert_def(name)
    if d.ca is None:
        raise UserError(f"{name} is a CA, not a leaf certificate", hint="use ensure_ca")
    node = Node(node_name, advertise_address) if node_name and advertise_address else None
    if d.per_node and node is None:
        raise UserError(
            f"the {name} certificate is per node: a node name and an advertise address are needed",
            hint="pass --node-name and --advertise-address",
        )
    spec = catalog.leaf_spec(name, config, node)
    ca = require_ca(ca_dir, d.ca, f"{name} certificate")
    crt, keyp = _paths(cert_dir, d.base)

    if crt.exists() or keyp.exists():
        if not crt.exists():
            raise UserError(
                f"key exists without its certificate {crt.name}", where=str(keyp),
                hint="delete the key to regenerate both, or restore the certificate",
            )
        cert = read_cert_file(crt)
        if keyp.exists():
            _check_pair(crt, keyp, cert)
        elif not ca.external:
            raise UserError(
                f"certificate exists without its key {keyp.name}", where=str(crt),
                hint="delete the certificate to regenerate both, or restore the key",
            )
        problems = problems_with(cert, spec, ca.cert)
        if problems:
            raise UserError(f"existing certificate {problems[0]}", where=str(crt),
                            hint=fix_hint(problems[0], name, crt.name, keyp.name))
        return Outcome(name, crt, created=False)

    if ca.external:
        raise UserError(
            f"cannot create {name} certificate: external CA mode "
            f"({ca.cert_path} is present without its key)",
            where=str(crt),
            hint=f"provide {crt.name} and {keyp.name} signed by that CA, or put the CA key next to it",
        )
    key = generate_key(config.encryption_algorithm)
    cert = sign_leaf(spec, key.public_key(), ca.cert, ca.key, config.certificate_validity_period)
    return Outcome(name, write_pair(cert_dir, d.base, cert, key), created=True)


def ensure_sa_key(cert_dir: str | Path, config: ClusterConfig) -> Outcome:
    """sa.key / sa.pub: the service-account token signing pair (not a certificate)."""
    cert_dir = Path(cert_dir)
    keyp, pubp = cert_dir / catalog.SA_KEY, cert_dir / catalog.SA_PUB
    if keyp.exists():
        key = read_key_file(keyp)
        if pubp.exists():
            pub = load_public_key(pubp.read_bytes(), str(pubp))
            if not same_public_key(pub, key.public_key()):
                raise UserError(
                    f"public key does not match {keyp.name}", where=str(pubp),
                    hint="delete sa.pub to have it derived from sa.key again",
                )
            return Outcome("sa", keyp, created=False)
        # sa.pub is derived data; recreating it from the key loses nothing.
        write_atomic(pubp, public_key_to_pem(key.public_key()), CERT_MODE)
        return Outcome("sa", keyp, created=True)
    if pubp.exists():
        raise UserError(
            f"public key exists without {keyp.name}", where=str(pubp),
            hint="restore sa.key (it signs every service-account token) or delete sa.pub",
        )
    key = generate_key(config.encryption_algorithm)
    write_atomic(keyp, key_to_pem(key), KEY_MODE)
    write_atomic(pubp, public_key_to_pem(key.public_key()), CERT_MODE)
    return Outcome("sa", keyp, created=True)


def ensure_cert(name: str, cert_dir: str | Path, config: ClusterConfig,
                node_name: str | None = None, advertise_address: str | None = None,
                ca_dir: str | Path | None = None) -> Outcome:
    """One entry of the catalogue by its kubeadm phase name (a CA, a leaf or ``sa``)."""
    if name == "sa":
        return ensure_sa_key(ca_dir or cert_dir, config)
    if name in CAS:
        return ensure_ca(name, ca_dir or cert_dir, config)
    return ensure_leaf(name, cert_dir, ca_dir, config, node_name, advertise_address)


def ensure_all(cert_dir: str | Path, config: ClusterConfig, node_name: str,
               advertise_address: str, ca_dir: str | Path | None = None) -> list[Outcome]:
    """kubeadm's ``init phase certs all``: CAs, leaves (etcd ones with local etcd), sa."""
    out = []
    for name in catalog.ORDER:
        if catalog.ALL[name].etcd and not catalog.wants_local_etcd(config):
            continue
        out.append(ensure_cert(name, cert_dir, config, node_name, advertise_address, ca_dir))
    out.append(ensure_cert("sa", cert_dir, config, ca_dir=ca_dir))
    return out
