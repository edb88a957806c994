"""Command-line flags, named as kube-apiserver's for what we support.

A bad flag or an unreadable file ends the process with one ``error:`` line and
exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import ssl
import sys
from dataclasses import dataclass

from bootstrap.agents.apiserver import admission
from bootstrap.api import tlsconfig
from bootstrap.api.agent import add_version_flag, parse_duration


class FlagError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print usage; we print one line
        raise FlagError(message.replace("unrecognized arguments", "unknown flag"))


@dataclass
class Config:
    etcd_servers: list[str]
    etcd_cafile: str | None
    etcd_certfile: str | None
    etcd_keyfile: str | None
    secure_port: int
    bind_address: str
    advertise_address: str | None
    tls_cert_file: str | None
    tls_private_key_file: str | None
    client_ca_file: str | None
    service_account_key_files: list[str]
    service_account_signing_key_file: str | None
    service_account_issuer: list[str]
    api_audiences: list[str]
    service_cluster_ip_range: str
    authorization_mode: list[str]
    enable_bootstrap_token_auth: bool
    anonymous_auth: bool
    encryption_provider_config: str | None
    audit_log_path: str | None
    profiling: bool
    kubelet_client_certificate: str | None
    kubelet_client_key: str | None
    kubelet_certificate_authority: str | None
    v: int
    cert_dir: str = "/var/run/kubernetes"
    tls_cipher_suites: tuple[str, ...] = tlsconfig.DEFAULT_SUITES
    tls_min_version: str = tlsconfig.DEFAULT_MIN_VERSION
    audit_log_maxage: int = 0
    audit_log_maxbackup: int = 0
    audit_log_maxsize: int = 0
    request_timeout: float = 60.0
    idle_connection_timeout: float = 90.0
    shutdown_delay_duration: float = 0.0
    processes: int = 1
    event_loop: str = "asyncio"
    admission_plugins: frozenset = frozenset()
    admission_warnings: tuple[str, ...] = ()
    # Front proxy (aggregation layer): who may assert users in headers, and which.
    requestheader_client_ca_file: str | None = None
    requestheader_allowed_names: tuple[str, ...] = ()
    requestheader_username_headers: tuple[str, ...] = ()
    requestheader_uid_headers: tuple[str, ...] = ()
    requestheader_group_headers: tuple[str, ...] = ()
    requestheader_extra_headers_prefix: tuple[str, ...] = ()
    # The client pair this server presents to extension API servers (checked at start).
    proxy_client_cert_file: str | None = None
    proxy_client_key_file: str | None = None


EVENT_LOOPS = ("auto", "asyncio", "uvloop")
DEFAULT_EVENT_LOOP = "asyncio"


def _uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def event_loop(requested: str) -> str:
    """The loop --event-loop names: "asyncio" or "uvloop"; "auto" is uvloop when the
    package imports, else asyncio. An explicit uvloop that does not import is an error."""
    if requested == "asyncio":
        return "asyncio"
    available = _uvloop_available()
    if requested == "uvloop" and not available:
        raise FlagError("--event-loop=uvloop: the uvloop package is not installed")
    return "uvloop" if available else "asyncio"


def _bool(v: str) -> bool:
    if v.lower() in ("true", "1", "t", "yes"):
        return True
    if v.lower() in ("false", "0", "f", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {v!r}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="bootstrap-apiserver", add_help=True,
                description="Kubernetes-compatible API server on etcd.")
    add_version_flag(p)
    a = p.add_argument
    a("--etcd-servers", required=True, help="comma-separated etcd client URLs")
    a("--etcd-cafile")
    a("--etcd-certfile")
    a("--etcd-keyfile")
    a("--secure-port", type=int, default=6443)
    a("--bind-address", default="0.0.0.0")
    a("--advertise-address")
    a("--tls-cert-file")
    a("--tls-private-key-file")
    a("--cert-dir", default="/var/run/kubernetes",
      help="where the self-signed serving certificate goes when --tls-cert-file is not given")
    a("--tls-cipher-suites", default=",".join(tlsconfig.DEFAULT_SUITES))
    a("--tls-min-version", default=tlsconfig.DEFAULT_MIN_VERSION)
    a("--client-ca-file")
    a("--service-account-key-file", action="append", default=[])
    a("--service-account-signing-key-file")
    a("--service-account-issuer", action="append", default=[])
    a("--api-audiences", default="")
    a("--service-cluster-ip-range", default="10.96.0.0/12")
    a("--authorization-mode", default="Node,RBAC")
    a("--enable-admission-plugins", default="",
      help="admission plugins to enable in addition to the default-on ones")
    a("--disable-admission-plugins", default="",
      help="admission plugins to disable, even default-on ones")
    a("--enable-bootstrap-token-auth", nargs="?", const="true", default="false", type=_bool)
    a("--anonymous-auth", nargs="?", const="true", default="true", type=_bool)
    a("--encryption-provider-config")
    a("--audit-log-path")
    a("--audit-log-maxage", type=int, default=0, help="days to keep rotated audit logs")
    a("--audit-log-maxbackup", type=int, default=0, help="rotated audit logs to keep")
    a("--audit-log-maxsize", type=int, default=0, help="megabytes before rotation")
    a("--request-timeout", default="1m0s",
      help="deadline of non-long-running requests (Go duration)")
    # Not a kube-apiserver flag: Go's server closes idle connections after 90 s, and a
    # connection that never completes its headers likewise (ReadHeaderTimeout).
    a("--idle-connection-timeout", default="90s")
    a("--shutdown-delay-duration", default="0s",
      help="after SIGTERM: /readyz fails at once, requests are still served this long "
           "(so load balancers take the server out), then the server stops listening and "
           "finishes the requests in flight")
    # Not a kube-apiserver flag: Python serves one core per process, so several worker
    # processes share the secure port (SO_REUSEPORT). All state lives in etcd.
    a("--processes", type=int, default=1, help="worker processes sharing the secure port")
    # Not a kube-apiserver flag: the asyncio event loop each process runs on. "uvloop"
    # (libuv) needs the uvloop package; "auto" takes it when importable.
    a("--event-loop", choices=EVENT_LOOPS, default=DEFAULT_EVENT_LOOP,
      help="event loop of every process: asyncio, uvloop, or auto (uvloop when installed)")
    a("--profiling", nargs="?", const="true", default="true", type=_bool)
    a("--kubelet-client-certificate")
    a("--kubelet-client-key")
    a("--kubelet-certificate-authority")
    a("--requestheader-client-ca-file",
      help="CA of the front-proxy client certificates allowed to assert users in headers")
    a("--requestheader-allowed-names", default="",
      help="comma-separated CNs a front-proxy certificate may have (any when empty)")
    # Upstream's flags default to empty; kubeadm passes the X-Remote-* names.
    a("--requestheader-username-headers", default="")
    a("--requestheader-uid-headers", default="")
    a("--requestheader-group-headers", default="")
    a("--requestheader-extra-headers-prefix", default="")
    a("--proxy-client-cert-file",
      help="client certificate this server presents to extension API servers")
    a("--proxy-client-key-file")
    a("--v", "-v", type=int, default=0)
    return p


_FILES = ("etcd_cafile", "etcd_certfile", "etcd_keyfile", "tls_cert_file",
          "tls_private_key_file", "client_ca_file", "service_account_signing_key_file",
          "encryption_provider_config", "kubelet_client_certificate", "kubelet_client_key",
          "kubelet_certificate_authority", "requestheader_client_ca_file",
          "proxy_client_cert_file", "proxy_client_key_file")


def _header_list(flag: str, value: str) -> tuple[str, ...]:
    if not value:
        return ()
    names = [x.strip() for x in value.split(",")]
    for name in names:
        # An HTTP field name is a token; an empty or spaced one can never match.
        if not name or any(c in name for c in ' \t"(),/:;<=>?@[\\]{}'):
            raise FlagError(f"--{flag}: invalid header name {name!r} in {value!r} "
                            f"(comma-separated names, e.g. X-Remote-User)")
    return tuple(names)


def _front_proxy(ns) -> dict:
    out = {"requestheader_client_ca_file": ns.requestheader_client_ca_file,
           "requestheader_allowed_names": tuple(
               x.strip() for x in ns.requestheader_allowed_names.split(",") if x.strip())}
    for flag in ("username_headers", "uid_headers", "group_headers", "extra_headers_prefix"):
        out[f"requestheader_{flag}"] = _header_list(
            f"requestheader-{flag.replace('_', '-')}", getattr(ns, f"requestheader_{flag}"))
    if ns.requestheader_client_ca_file:
        try:
            from cryptography import x509
            with open(ns.requestheader_client_ca_file, "rb") as f:
                x509.load_pem_x509_certificates(f.read())
        except ValueError:
            raise FlagError(f"--requestheader-client-ca-file: no PEM certificates in "
                            f"{ns.requestheader_client_ca_file}") from None
    if bool(ns.proxy_client_cert_file) != bool(ns.proxy_client_key_file):
        raise FlagError("--proxy-client-cert-file and --proxy-client-key-file must be "
                        "given together")
    if ns.proxy_client_cert_file:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(
                ns.proxy_client_cert_file, ns.proxy_client_key_file)
        except ssl.SSLError as exc:
            raise FlagError(f"--proxy-client-cert-file: {ns.proxy_client_cert_file} and "
                            f"{ns.proxy_client_key_file} are not a certificate and its key "
                            f"({exc.reason or exc})") from None
    out["proxy_client_cert_file"] = ns.proxy_client_cert_file
    out["proxy_client_key_file"] = ns.proxy_client_key_file
    return out


def parse(argv: list[str]) -> Config:
    ns = _parser().parse_args(argv)
    for attr in _FILES:
        path = getattr(ns, attr)
        if path and not os.access(path, os.R_OK):
            raise FlagError(f"--{attr.replace('_', '-')}: cannot read {path}")
    for path in ns.service_account_key_file:
        if not os.access(path, os.R_OK):
            raise FlagError(f"--service-account-key-file: cannot read {path}")
    if ns.audit_log_path and ns.audit_log_path != "-":
        d = os.path.dirname(os.path.abspath(ns.audit_log_path))
        if not os.access(d, os.W_OK):
            raise FlagError(f"--audit-log-path: cannot write to {d}")
    try:
        ipaddress.ip_network(ns.service_cluster_ip_range.split(",")[0], strict=False)
    except ValueError as exc:
        raise FlagError(f"--service-cluster-ip-range: {exc}") from None
    if not 0 < ns.secure_port < 65536:
        raise FlagError("--secure-port: must be between 1 and 65535")
    if bool(ns.tls_cert_file) != bool(ns.tls_private_key_file):
        raise FlagError("--tls-cert-file and --tls-private-key-file must be given together")
    try:
        suites = tlsconfig.parse_cipher_suites(ns.tls_cipher_suites)
    except ValueError as exc:
        raise FlagError(f"--tls-cipher-suites: {exc}") from None
    try:
        tlsconfig.parse_min_version(ns.tls_min_version)
    except ValueError as exc:
        raise FlagError(f"--tls-min-version: {exc}") from None
    durations = {}
    for flag in ("request_timeout", "idle_connection_timeout"):
        try:
            durations[flag] = parse_duration(getattr(ns, flag))
        except ValueError as exc:
            raise FlagError(f"--{flag.replace('_', '-')}: {exc}") from None
        if durations[flag] <= 0:
            raise FlagError(f"--{flag.replace('_', '-')}: must be positive")
    try:
        durations["shutdown_delay_duration"] = parse_duration(ns.shutdown_delay_duration)
    except ValueError as exc:
        raise FlagError(f"--shutdown-delay-duration: {exc}") from None
    if durations["shutdown_delay_duration"] < 0:
        raise FlagError("--shutdown-delay-duration: must not be negative")
    if not 1 <= ns.processes <= 64:
        raise FlagError("--processes: must be between 1 and 64")
    loop = event_loop(ns.event_loop)
    for flag in ("audit_log_maxage", "audit_log_maxbackup", "audit_log_maxsize"):
        if getattr(ns, flag) < 0:
            raise FlagError(f"--{flag.replace('_', '-')}: must not be negative")
    try:
        plugins, plugin_warnings = admission.enabled_plugins(
            [x.strip() for x in ns.enable_admission_plugins.split(",") if x.strip()],
            [x.strip() for x in ns.disable_admission_plugins.split(",") if x.strip()])
    except ValueError as exc:
        raise FlagError(f"--enable-admission-plugins: {exc}") from None
    modes = [m.strip() for m in ns.authorization_mode.split(",") if m.strip()]
    for m in modes:
        if m not in ("Node", "RBAC", "AlwaysAllow", "AlwaysDeny"):
            raise FlagError(f"--authorization-mode: unknown mode {m!r}")
    front_proxy = _front_proxy(ns)
    sa_keys = list(ns.service_account_key_file)
    if not sa_keys and ns.service_account_signing_key_file:
        sa_keys = [ns.service_account_signing_key_file]
    return Config(
        etcd_servers=[s.strip() for s in ns.etcd_servers.split(",") if s.strip()],
        etcd_cafile=ns.etcd_cafile, etcd_certfile=ns.etcd_certfile, etcd_keyfile=ns.etcd_keyfile,
        secure_port=ns.secure_port, bind_address=ns.bind_address,
        advertise_address=ns.advertise_address, tls_cert_file=ns.tls_cert_file,
        tls_private_key_file=ns.tls_private_key_file, client_ca_file=ns.client_ca_file,
        service_account_key_files=sa_keys,
        service_account_signing_key_file=ns.service_account_signing_key_file,
        service_account_issuer=ns.service_account_issuer or ["https://kubernetes.default.svc"],
        api_audiences=[x for x in ns.api_audiences.split(",") if x],
        service_cluster_ip_range=ns.service_cluster_ip_range.split(",")[0],
        authorization_mode=modes, enable_bootstrap_token_auth=ns.enable_bootstrap_token_auth,
        anonymous_auth=ns.anonymous_auth, encryption_provider_config=ns.encryption_provider_config,
        audit_log_path=ns.audit_log_path, profiling=ns.profiling,
        kubelet_client_certificate=ns.kubelet_client_certificate,
        kubelet_client_key=ns.kubelet_client_key,
        kubelet_certificate_authority=ns.kubelet_certificate_authority, v=ns.v,
        cert_dir=ns.cert_dir, tls_cipher_suites=suites, tls_min_version=ns.tls_min_version,
        audit_log_maxage=ns.audit_log_maxage, audit_log_maxbackup=ns.audit_log_maxbackup,
        audit_log_maxsize=ns.audit_log_maxsize, request_timeout=durations["request_timeout"],
        idle_connection_timeout=durations["idle_connection_timeout"], processes=ns.processes,
        event_loop=loop, shutdown_delay_duration=durations["shutdown_delay_duration"],
        admission_plugins=plugins, admission_warnings=tuple(plugin_warnings), **front_proxy)


def parse_or_exit(argv: list[str]) -> Config:
    try:
        return parse(argv)
    except FlagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
