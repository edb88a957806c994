"""kubeadm-grade PKI: CAs, leaf certificates, kubeconfigs, tokens, expiry, renewal.

A leaf library: it takes a ``bootstrap.config.model.ClusterConfig`` (never a
file path) and directories, and raises ``bootstrap.errors.UserError`` for
anything a user must fix. Files follow kubeadm's names and layout under a cert
dir (default /etc/kubernetes/pki): ``ca``, ``apiserver``,
``apiserver-kubelet-client``, ``front-proxy-ca``, ``front-proxy-client``,
``etcd/ca``, ``etcd/server``, ``etcd/peer``, ``etcd/healthcheck-client``,
``apiserver-etcd-client`` (each ``.crt`` 0644 + ``.key`` 0600), ``sa.key`` +
``sa.pub``. Existing valid files are reused; invalid ones are errors, never
silently overwritten. A CA whose ``.crt`` is present without its ``.key`` is an
external CA: leaves it should sign must already exist.

Public API (all paths may be ``str`` or ``Path``; every ``ensure_*`` returns an
``Outcome(name, path, created)``):

Certificates (``bootstrap.pki.store``)
    ensure_cas(ca_dir, config) -> list[Outcome]
        ca, front-proxy-ca, and etcd-ca unless ``config.etcd.external``.
    ensure_ca(name, ca_dir, config) -> Outcome
    ensure_leaf(name, cert_dir, ca_dir, config, node_name=None, advertise_address=None) -> Outcome
        ``name`` is kubeadm's phase name (``apiserver``, ``etcd-server``, ...). The
        CA comes from ``ca_dir`` (None: ``cert_dir``), the leaf goes to ``cert_dir``:
        the multi-host play makes every node's leaves on one machine this way.
        apiserver, etcd-server and etcd-peer need node_name and advertise_address.
    ensure_sa_key(cert_dir, config) -> Outcome
    ensure_cert(name, cert_dir, config, node_name=None, advertise_address=None, ca_dir=None)
        any catalogue entry by phase name, CAs and ``sa`` included.
    ensure_all(cert_dir, config, node_name, advertise_address, ca_dir=None) -> list[Outcome]
        kubeadm's ``init phase certs all``.
    load_ca(ca_dir, name) -> CA | None   (CA.cert, CA.key or None if external)

Kubeconfigs (``bootstrap.pki.kubeconfig``)
    ensure_kubeconfig(name, kubeconfig_dir, cert_dir, config, node_name, advertise_address)
        name in admin, super-admin, kubelet, controller-manager, scheduler.
    ensure_kubeconfigs(kubeconfig_dir, cert_dir, config, node_name, advertise_address)
    write_kubeconfig(path, *, cluster_name, server, ca, spec, validity, key=None,
                     algorithm="ECDSA-P256")
        any client kubeconfig, e.g. for kube-proxy: ``spec = CertSpec(cn, (org,), (CLIENT_AUTH,))``.
    read_kubeconfig(path) -> Parsed(server, ca_pem, cert, key, cluster_name, user)
    server_url(config, advertise_address, local=False) -> "https://host:6443"

Join helpers (``bootstrap.pki.tokens``)
    generate_token() -> "abcdef.0123456789abcdef"; parse_token(t) -> (id, secret);
    is_valid_token(t) -> bool; TOKEN_RE
    ca_cert_hash(ca_cert_path) -> "sha256:<hex>" over the DER SubjectPublicKeyInfo
    generate_certificate_key() -> 64 hex chars; encrypt(data, key) / decrypt(sealed, key)
        (AES-256-GCM, nonce prefixed); pack_shared_certs(cert_dir, key) -> {relpath: b64};
        unpack_shared_certs(packed, key, cert_dir) -> written paths.

Expiry and renewal (``bootstrap.pki.expiry``)
    check_expiration(cert_dir, kubeconfig_dir) -> (rows, ca_rows) of ExpiryRow(name, path,
        expires, ca, externally_managed; .missing, .residual)
    renew(name, cert_dir, kubeconfig_dir, config=None, new_key=False) -> Path
    renew_all(cert_dir, kubeconfig_dir, config=None, new_key=False) -> (renewed, skipped)
    RENEWABLE (kubeadm's renew names), short_duration(timedelta) -> "364d"

Catalogue (``bootstrap.pki.catalog``): CAS, LEAVES, ORDER, leaf_spec(name, config, Node),
    apiserver_sans, etcd_sans, first_service_ip, split_host_port.
"""

from bootstrap.pki.catalog import CAS, LEAVES, ORDER, Node
from bootstrap.pki.certs import CLIENT_AUTH, SERVER_AUTH, CertSpec
from bootstrap.pki.expiry import RENEWABLE, ExpiryRow, check_expiration, renew, renew_all
from bootstrap.pki.kubeconfig import (
    KUBECONFIGS,
    ensure_kubeconfig,
    ensure_kubeconfigs,
    read_kubeconfig,
    server_url,
    write_kubeconfig,
)
from bootstrap.pki.store import (
    CA,
    Outcome,
    ensure_all,
    ensure_ca,
    ensure_cas,
    ensure_cert,
    ensure_leaf,
    ensure_sa_key,
    load_ca,
)
from bootstrap.pki.tokens import (
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

__all__ = [
    "CA", "CAS", "CLIENT_AUTH", "KUBECONFIGS", "LEAVES", "ORDER", "RENEWABLE", "SERVER_AUTH",
    "CertSpec", "ExpiryRow", "Node", "Outcome", "ca_cert_hash", "check_expiration", "decrypt",
    "encrypt", "ensure_all", "ensure_ca", "ensure_cas", "ensure_cert", "ensure_kubeconfig",
    "ensure_kubeconfigs", "ensure_leaf", "ensure_sa_key", "generate_certificate_key",
    "generate_token", "is_valid_token", "load_ca", "pack_shared_certs", "parse_token",
    "read_kubeconfig", "renew", "renew_all", "server_url", "unpack_shared_certs",
    "write_kubeconfig",
]
