"""Reading certificates back (``certs check-expiration``) and renewing them.

Renewal re-signs with the existing CA and keeps everything the old
certificate said (subject, SANs, usages) and, unless asked, its key, so
nothing that pinned the key or trusts the CA notices.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bootstrap.config.model import ClusterConfig
from bootstrap.errors import UserError
from bootstrap.pki._files import KEY_MODE, write_atomic
from bootstrap.pki.catalog import CAS, LEAVES
from bootstrap.pki.certs import now, read_cert_file, sign_leaf, spec_from_cert
from bootstrap.pki.keys import generate_key, read_key_file, same_public_key
from bootstrap.pki.kubeconfig import KUBECONFIGS, read_kubeconfig, render
from bootstrap.pki.store import load_ca, write_pair

# kubeadm's renewable set: the kubelet rotates its own client certificate.
RENEWABLE_KUBECONFIGS = ("admin.conf", "super-admin.conf", "controller-manager.conf",
                         "scheduler.conf")
RENEWABLE = tuple(sorted(list(LEAVES) + list(RENEWABLE_KUBECONFIGS)))


@dataclass(frozen=True)
class ExpiryRow:
    name: str
    path: Path
    expires: datetime | None   # None: file missing
    ca: str                    # signing CA's name; "" for a CA
    externally_managed: bool   # the signing CA's key is not here

    @property
    def missing(self) -> bool:
        return self.expires is None

    @property
    def residual(self) -> timedelta | None:
        return None if self.expires is None else self.expires - now()


def short_duration(d: timedelta) -> str:
    """kubeadm's ShortHumanDuration: 59s, 12m, 47h, 364d, 9y; '<invalid>' if past."""
    s = int(d.total_seconds())
    if s < -1:
        return "<invalid>"
    s = max(s, 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 48 * 3600:
        return f"{s // 3600}h"
    if s < 2 * 365 * 86400:
        return f"{s // 86400}d"
    return f"{s // (365 * 86400)}y"


def _ca_external(cert_dir: Path, ca_name: str) -> bool:
    return not (cert_dir / CAS[ca_name].key).exists()


def _kubeconfig_row(file: str, kubeconfig_dir: Path, cert_dir: Path) -> ExpiryRow:
    path = kubeconfig_dir / file
    expires = read_kubeconfig(path).cert.not_valid_after_utc if path.exists() else None
    return ExpiryRow(file, path, expires, "ca", _ca_external(cert_dir, "ca"))


def check_expiration(cert_dir: str | Path, kubeconfig_dir: str | Path
                     ) -> tuple[list[ExpiryRow], list[ExpiryRow]]:
    """(renewable certificates, CAs), in kubeadm's table order."""
    cert_dir, kubeconfig_dir = Path(cert_dir), Path(kubeconfig_dir)
    rows = []
    for name in RENEWABLE:
        if name in LEAVES:
            d = LEAVES[name]
            path = cert_dir / d.crt
            expires = read_cert_file(path).not_valid_after_utc if path.exists() else None
            rows.append(ExpiryRow(name, path, expires, d.ca, _ca_external(cert_dir, d.ca)))
        else:
            rows.append(_kubeconfig_row(name, kubeconfig_dir, cert_dir))
    cas = []
    for name, d in CAS.items():
        path = cert_dir / d.crt
        expires = read_cert_file(path).not_valid_after_utc if path.exists() else None
        cas.append(ExpiryRow(name, path, expires, "", _ca_external(cert_dir, name)))
    return rows, cas


# kubeadm's `certs check-expiration -o json|yaml` document (output.kubeadm.k8s.io).
OUTPUT_API_VERSION = "output.kubeadm.k8s.io/v1alpha3"
OUTPUT_KIND = "CertificateExpirationInfo"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def _row_doc(row: ExpiryRow) -> dict:
    doc = {"name": row.name,
           "expirationDate": row.expires.strftime(_TIME_FORMAT) if row.expires else None,
           "residualTime": int(row.residual.total_seconds()) if row.expires else 0,
           "externallyManaged": row.externally_managed, "missing": row.missing}
    if row.ca:
        doc["caName"] = row.ca
    return doc


def expiration_info(rows: list[ExpiryRow], cas: list[ExpiryRow]) -> dict:
    """The machine-readable form of check_expiration's result, kubeadm's shape
    (residualTime in seconds); ``rows_from_info`` reads it back."""
    return {"kind": OUTPUT_KIND, "apiVersion": OUTPUT_API_VERSION,
            "certificates": [_row_doc(r) for r in rows],
            "certificateAuthorities": [_row_doc(r) for r in cas]}


def _row_from_doc(doc: dict, path: Path) -> ExpiryRow:
    expires = doc.get("expirationDate")
    when = (datetime.strptime(expires, _TIME_FORMAT).replace(tzinfo=UTC)
            if expires and not doc.get("missing") else None)
    return ExpiryRow(str(doc["name"]), path, when, str(doc.get("caName") or ""),
                     bool(doc.get("externallyManaged")))


def rows_from_info(doc: dict, where: str) -> tuple[list[ExpiryRow], list[ExpiryRow]]:
    """(rows, ca rows) from an ``expiration_info`` document (e.g. read from a host)."""
    if not isinstance(doc, dict) or doc.get("kind") != OUTPUT_KIND:
        raise UserError(f"not a {OUTPUT_KIND} document", where=where,
                        hint="the host's toolkit may be older than `certs check-expiration "
                             "-o json`; run `bootstrap cluster up` to update it")
    try:
        return ([_row_from_doc(d, Path(where)) for d in doc.get("certificates") or []],
                [_row_from_doc(d, Path(where)) for d in doc.get("certificateAuthorities") or []])
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"malformed {OUTPUT_KIND} document ({exc})", where=where) from None


def _signing_ca(cert_dir: Path, ca_name: str, what: str):
    ca = load_ca(cert_dir, ca_name)
    if ca is None or ca.external:
        raise UserError(
            f"cannot renew {what}: the CA key {cert_dir / CAS[ca_name].key} is not present "
            "(externally managed)",
            hint="renew it with the external CA that signed it",
        )
    return ca


def renew_kubeconfig(path: Path, ca, config: ClusterConfig, new_key: bool = False) -> Path:
    """Re-sign the client certificate embedded in a kubeconfig with ``ca``, keeping
    its subject, usages, server, names and (unless ``new_key``) its key."""
    old = read_kubeconfig(path)
    key = generate_key(config.encryption_algorithm) if new_key else old.key
    cert = sign_leaf(spec_from_cert(old.cert), key.public_key(), ca.cert, ca.key,
                     config.certificate_validity_period)
    text = render(old.cluster_name, old.server, ca.cert, old.user, cert, key)
    write_atomic(path, text.encode(), KEY_MODE)
    return path


def renew(name: str, cert_dir: str | Path, kubeconfig_dir: str | Path,
          config: ClusterConfig | None = None, new_key: bool = False,
          ca_dir: str | Path | None = None) -> Path:
    """Re-sign one renewable certificate (kubeadm name) in place; returns its path.

    The signing CA comes from ``ca_dir`` (default: ``cert_dir``), so the control
    machine renews every node's leaves under one shared CA, as ``ensure_leaf``."""
    config = config or ClusterConfig()
    cert_dir, kubeconfig_dir = Path(cert_dir), Path(kubeconfig_dir)
    ca_dir = cert_dir if ca_dir is None else Path(ca_dir)
    validity = config.certificate_validity_period
    if name in LEAVES:
        d = LEAVES[name]
        crt, keyp = cert_dir / d.crt, cert_dir / d.key
        if not crt.exists():
            raise UserError("nothing to renew: the certificate does not exist", where=str(crt),
                            hint=f"create it with `bootstrap init phase certs {name}`")
        ca = _signing_ca(ca_dir, d.ca, name)
        old = read_cert_file(crt)
        if new_key or not keyp.exists():
            key = generate_key(config.encryption_algorithm)
        else:
            key = read_key_file(keyp)
            if not same_public_key(key.public_key(), old.public_key()):
                raise UserError("certificate does not match its key", where=str(crt),
                                hint="renew with --new-key to replace both")
        cert = sign_leaf(spec_from_cert(old), key.public_key(), ca.cert, ca.key, validity)
        return write_pair(cert_dir, d.base, cert, key)
    if name in RENEWABLE_KUBECONFIGS:
        path = kubeconfig_dir / name
        if not path.exists():
            kind = next(k for k in KUBECONFIGS.values() if k.file == name)
            raise UserError("nothing to renew: the kubeconfig does not exist", where=str(path),
                            hint=f"create it with `bootstrap init phase kubeconfig {kind.name}`")
        return renew_kubeconfig(path, _signing_ca(ca_dir, "ca", name), config, new_key)
    raise UserError(f"unknown certificate {name!r}", hint="renewable: " + ", ".join(RENEWABLE))


def renew_all(cert_dir: str | Path, kubeconfig_dir: str | Path,
              config: ClusterConfig | None = None, new_key: bool = False
              ) -> tuple[list[Path], list[str]]:
    """Renew every renewable file present; returns (renewed paths, names skipped as missing)."""
    rows, _ = check_expiration(cert_dir, kubeconfig_dir)
    renewed, skipped = [], []
    for row in rows:
        if row.missing:
            skipped.append(row.name)
        else:
            renewed.append(renew(row.name, cert_dir, kubeconfig_dir, config, new_key))
    return renewed, skipped



