"""Kubeconfig files with embedded CA and client credentials, kubeadm's set.

admin.conf is in ``kubeadm:cluster-admins`` (kubeadm >= 1.29); super-admin.conf
keeps ``system:masters`` as the break-glass credential. admin, super-admin and
kubelet talk to the control-plane endpoint; controller-manager and scheduler
talk to their local API server, as kubeadm does.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import yaml
from cryptography import x509

from bootstrap.config.model import ClusterConfig
from bootstrap.errors import UserError
from bootstrap.pki import catalog
from bootstrap.pki._files import KEY_MODE, write_atomic
from bootstrap.pki.certs import (
    CLIENT_AUTH,
    CertSpec,
    cert_to_pem,
    load_cert,
    problems_with,
    sign_leaf,
)
from bootstrap.pki.keys import (
    PrivateKey,
    generate_key,
    key_to_pem,
    load_private_key,
    same_public_key,
)
from bootstrap.pki.store import CA, Outcome, fix_hint, require_ca


@dataclass(frozen=True)
class KubeconfigDef:
    name: str          # phase name
    file: str
    help: str
    local_endpoint: bool  # True: the node's own API server, not controlPlaneEndpoint

    def spec(self, node_name: str) -> CertSpec:
        if self.name == "admin":
            return CertSpec("kubernetes-admin", (catalog.CLUSTER_ADMINS_GROUP,), (CLIENT_AUTH,))
        if self.name == "super-admin":
            return CertSpec("kubernetes-super-admin", (catalog.MASTERS_GROUP,), (CLIENT_AUTH,))
        if self.name == "kubelet":
            return CertSpec(f"system:node:{node_name}", (catalog.NODES_GROUP,), (CLIENT_AUTH,))
        return CertSpec(f"system:kube-{self.name}", (), (CLIENT_AUTH,))


KUBECONFIGS: dict[str, KubeconfigDef] = {
    d.name: d for d in (
        KubeconfigDef("admin", "admin.conf",
                      "kubeconfig for the admin and kubeadm itself", False),
        KubeconfigDef("super-admin", "super-admin.conf",
                      "kubeconfig for the super-admin (system:masters, break-glass)", False),
        KubeconfigDef("kubelet", "kubelet.conf",
                      "kubeconfig for the kubelet to use during cluster bootstrapping", False),
        KubeconfigDef("controller-manager", "controller-manager.conf",
                      "kubeconfig for the controller manager to use", True),
        KubeconfigDef("scheduler", "scheduler.conf", "kubeconfig for the scheduler to use", True),
    )
}


def _url(host: str, port: int) -> str:
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{port}"


def server_url(config: ClusterConfig, advertise_address: str, local: bool = False) -> str:
    # As kubeadm: a controlPlaneEndpoint without a port, and the node's own API
    # server, are reached on localAPIEndpoint.bindPort.
    if config.control_plane_endpoint and not local:
        host, port = catalog.split_host_port(config.control_plane_endpoint)
        return _url(host, port or config.bind_port)
    return _url(advertise_address, config.bind_port)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def render(cluster_name: str, server: str, ca_cert: x509.Certificate, user: str,
           client_cert: x509.Certificate, client_key: PrivateKey) -> str:
    context = f"{user}@{cluster_name}"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {
            "certificate-authority-data": _b64(cert_to_pem(ca_cert)), "server": server}}],
        "contexts": [{"name": context, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": context,
        "preferences": {},
        "users": [{"name": user, "user": {
            "client-certificate-data": _b64(cert_to_pem(client_cert)),
            "client-key-data": _b64(key_to_pem(client_key))}}],
    }
    return yaml.safe_dump(doc, sort_keys=False)


@dataclass
class Parsed:
    path: Path
    server: str
    ca_pem: bytes
    cert: x509.Certificate
    key: PrivateKey
    cluster_name: str
    user: str


def read_kubeconfig(path: str | Path) -> Parsed:
    """The current context's cluster and user of a kubeconfig with embedded data."""
    path = Path(path)
    where = str(path)
    try:
        doc = yaml.safe_load(path.read_text())
        ctx_name = doc["current-context"]
        ctx = next(c["context"] for c in doc["contexts"] if c["name"] == ctx_name)
        cluster = next(c for c in doc["clusters"] if c["name"] == ctx["cluster"])
        user = next(u for u in doc["users"] if u["name"] == ctx["user"])
        ca_pem = base64.b64decode(cluster["cluster"]["certificate-authority-data"])
        cert_pem = base64.b64decode(user["user"]["client-certificate-data"])
        key_pem = base64.b64decode(user["user"]["client-key-data"])
        server = cluster["cluster"]["server"]
    except (yaml.YAMLError, KeyError, TypeError, StopIteration, ValueError) as exc:
        raise UserError(
            f"not a kubeconfig with embedded credentials ({type(exc).__name__}: {exc})",
            where=where, hint="delete it to have it regenerated",
        ) from None
    return Parsed(path, server, ca_pem, load_cert(cert_pem, where), load_private_key(key_pem, where),
                  cluster["name"], user["name"])


def write_kubeconfig(path: str | Path, *, cluster_name: str, server: str, ca: CA,
                     spec: CertSpec, validity: timedelta, key: PrivateKey | None = None,
                     algorithm: str = "ECDSA-P256") -> None:
    """Sign a client certificate for ``spec`` with ``ca`` and write a kubeconfig (0600)."""
    if ca.external:
        raise UserError(
            f"cannot sign the client certificate for {Path(path).name}: external CA mode "
            f"({ca.cert_path} is present without its key)",
            where=str(path), hint="provide the kubeconfig file yourself or put the CA key in place",
        )
    key = key or generate_key(algorithm)
    cert = sign_leaf(spec, key.public_key(), ca.cert, ca.key, validity)
    write_atomic(Path(path), render(cluster_name, server, ca.cert, spec.common_name, cert, key)
                 .encode(), KEY_MODE)


def ensure_kubeconfig(name: str, kubeconfig_dir: str | Path, cert_dir: str | Path,
                      config: ClusterConfig, node_name: str, advertise_address: str) -> Outcome:
    """kubeadm's ``init phase kubeconfig <name>``: create, or reuse if it still fits."""
    try:
        d = KUBECONFIGS[name]
    except KeyError:
        raise UserError(f"unknown kubeconfig {name!r}",
                        hint="known: " + ", ".join(KUBECONFIGS)) from None
    path = Path(kubeconfig_dir) / d.file
    ca = require_ca(Path(cert_dir), "ca", d.file)
    server = server_url(config, advertise_address, d.local_endpoint)
    spec = d.spec(node_name)
    if path.exists():
        existing = read_kubeconfig(path)
        if existing.ca_pem.strip() != cert_to_pem(ca.cert).strip():
            raise UserError(
                "kubeconfig exists but embeds a different CA than " + str(ca.cert_path),
                where=str(path), hint=f"delete {path.name} to regenerate it",
            )
        if existing.server != server:
            raise UserError(
                f"kubeconfig exists but points at {existing.server}, expected {server}",
                where=str(path), hint=f"delete {path.name} to regenerate it",
            )
        if not same_public_key(existing.key.public_key(), existing.cert.public_key()):
            raise UserError("embedded client certificate does not match its key",
                            where=str(path), hint=f"delete {path.name} to regenerate it")
        problems = problems_with(existing.cert, spec, ca.cert)
        if problems:
            raise UserError(f"embedded client certificate {problems[0]}", where=str(path),
                            hint=fix_hint(problems[0], d.file, path.name))
        return Outcome(name, path, created=False)
    write_kubeconfig(path, cluster_name=config.cluster_name, server=server, ca=ca, spec=spec,
                     validity=config.certificate_validity_period,
                     key=generate_key(config.encryption_algorithm))
    return Outcome(name, path, created=True)


def ensure_kubeconfigs(kubeconfig_dir: str | Path, cert_dir: str | Path, config: ClusterConfig,
                       node_name: str, advertise_address: str) -> list[Outcome]:
    return [ensure_kubeconfig(n, kubeconfig_dir, cert_dir, config, node_name, advertise_address)
            for n in KUBECONFIGS]
