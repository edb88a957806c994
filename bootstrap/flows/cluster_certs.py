"""Certificate expiry across an inventory's hosts, and what expires soon.

``host_expiration`` runs each host's own ``bootstrap certs check-expiration -o
json`` over SSH (the installed toolkit reads the host's files, so the answer
is the same table a person gets on that host; a host without the toolkit, a
separate etcd host, has its certificate files read instead) and reports a
host it cannot reach or whose command fails as such instead of stopping. ``expiring_soon``
is the cheap check ``cluster up`` prints in its summary: the artifacts on the
control machine (CAs, every node's leaves, the kubeconfigs handed to hosts),
plus the host-made kubeconfigs when connections are at hand.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from bootstrap.errors import RemoteError, UserError
from bootstrap.pki.certs import now, read_cert_file
from bootstrap.pki.expiry import ExpiryRow, rows_from_info
from bootstrap.pki.kubeconfig import read_kubeconfig

REMOTE_BOOTSTRAP = "/opt/bootstrap/current/bin/bootstrap"
REMOTE_PKI_DIR = "/etc/kubernetes/pki"
WARN_WITHIN = timedelta(days=30)
# The files cluster up writes into the artifacts dir for hosts (and the user).
ARTIFACT_KUBECONFIGS = ("admin.conf", "kube-proxy.conf", "dns.conf")


@dataclass
class HostExpiry:
    host: str
    rows: list[ExpiryRow] = field(default_factory=list)
    cas: list[ExpiryRow] = field(default_factory=list)
    error: str = ""  # unreachable, or the command failed

    @property
    def reachable(self) -> bool:
        return not self.error


def check_command(cert_dir: str | None = None, kubeconfig_dir: str | None = None) -> str:
    cmd = [REMOTE_BOOTSTRAP, "certs", "check-expiration", "-o", "json"]
    if cert_dir:
        cmd += ["--cert-dir", cert_dir]
    if kubeconfig_dir:
        cmd += ["--kubeconfig-dir", kubeconfig_dir]
    return shlex.join(cmd)


def read_host_files(conn, cert_dir: str = REMOTE_PKI_DIR) -> HostExpiry:
    """The same table from the certificate files themselves, for a host without
    the toolkit (a separate etcd host): only ``.crt`` files cross the wire, and a
    CA counts as externally managed when its key is absent there, as host-locally."""
    from bootstrap.pki.catalog import CAS, LEAVES
    from bootstrap.pki.certs import load_cert
    from bootstrap.pki.expiry import RENEWABLE

    probe = " ; ".join(f"[ -e {shlex.quote(f'{cert_dir}/{d.key}')} ] && echo {name}"
                       for name, d in CAS.items())
    with_keys = set(conn.run(probe, check=False, timeout=60).stdout.split())

    def expires(d):
        path = f"{cert_dir}/{d.crt}"
        try:
            return load_cert(conn.get(path), f"host {conn.host}: {path}").not_valid_after_utc
        except FileNotFoundError:
            return None

    rows = []
    for n in RENEWABLE:
        d = LEAVES.get(n)
        if d is None:  # a kubeconfig: only control-plane hosts have them, with the toolkit
            rows.append(ExpiryRow(n, Path(n), None, "ca", "ca" not in with_keys))
        else:
            rows.append(ExpiryRow(n, Path(cert_dir) / d.crt, expires(d), d.ca,
                                  d.ca not in with_keys))
    cas = [ExpiryRow(n, Path(cert_dir) / d.crt, expires(d), "", n not in with_keys)
           for n, d in CAS.items()]
    return HostExpiry(conn.host, rows, cas)


def read_host(conn, cmd: str | None = None) -> HostExpiry:
    """One host's table through its connection; failures become ``error``."""
    try:
        res = conn.run(cmd or check_command(), check=False, timeout=60)
        if res.exit_code == 127:  # no toolkit there: read the files instead
            return read_host_files(conn)
    except (UserError, OSError) as exc:  # RemoteError is a UserError; so is a bad file
        return HostExpiry(conn.host, error=exc.line() if isinstance(exc, UserError)
                          else str(exc))
    if not res.ok:
        detail = (res.stderr.strip() or res.stdout.strip() or "no output").splitlines()[-1]
        return HostExpiry(conn.host, error=f"check-expiration exited {res.exit_code}: {detail}")
    try:
        rows, cas = rows_from_info(json.loads(res.stdout), f"host {conn.host}")
    except json.JSONDecodeError as exc:
        return HostExpiry(conn.host, error=f"check-expiration printed no JSON ({exc})")
    except UserError as exc:
        return HostExpiry(conn.host, error=exc.line())
    return HostExpiry(conn.host, rows, cas)


def host_expiration(hosts: list, connect_one, cmd: str | None = None) -> list[HostExpiry]:
    """Every host's table in inventory order; ``connect_one(host)`` opens a connection
    (raising RemoteError when the host is unreachable) that is closed afterwards."""
    from bootstrap.remote.pool import parallel_map

    def one(host) -> HostExpiry:
        try:
            conn = connect_one(host)
        except RemoteError as exc:
            return HostExpiry(host.name, error=f"unreachable: {exc.line()}")
        try:
            return read_host(conn, cmd)
        finally:
            conn.close()

    return parallel_map(one, hosts)


@dataclass(frozen=True)
class Expiring:
    where: str      # "artifacts" or a host name
    name: str       # certificate or kubeconfig
    residual: timedelta


def _artifact_rows(art: Path) -> list[tuple[str, str, object]]:
    """(where, name, notAfter) of every certificate kept in the artifacts dir."""
    out = []
    pki = art / "pki"
    for crt in sorted(pki.rglob("*.crt")) if pki.is_dir() else []:
        rel = crt.relative_to(pki)
        parts = rel.parts
        if parts[0] == "nodes" and len(parts) > 2:
            where, name = parts[1], "/".join(parts[2:])
        else:
            where, name = "artifacts", str(rel)
        out.append((where, name, read_cert_file(crt).not_valid_after_utc))
    for file in ARTIFACT_KUBECONFIGS:
        path = art / file
        if path.exists():
            out.append(("artifacts", file, read_kubeconfig(path).cert.not_valid_after_utc))
    return out


def expiring_soon(art: Path, hosts: list[HostExpiry] = (),
                  within: timedelta = WARN_WITHIN) -> list[Expiring]:
    """Certificates in the artifacts dir (and in ``hosts``' tables) that expire
    within ``within``, soonest first; expired ones have a negative residual."""
    t = now()
    found = [Expiring(where, name, end - t) for where, name, end in _artifact_rows(Path(art))]
    for h in hosts:
        found += [Expiring(h.host, r.name, r.residual) for r in [*h.rows, *h.cas]
                  if not r.missing]
    return sorted((e for e in found if e.residual < within), key=lambda e: e.residual)
