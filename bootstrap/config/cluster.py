"""Load, default, validate and dump the cluster configuration file.

The file is kubeadm's v1beta4 ClusterConfiguration (same camelCase field names,
same Go durations, v1beta4's ``extraArgs`` as a list of ``{name, value}``) under
our own ``apiVersion``. Every problem is one ``UserError`` naming the file, the
line when known, the field path and what to do about it.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import os
import re
from datetime import timedelta
from typing import Any

import yaml

from bootstrap.config import _yaml
from bootstrap.config.duration import format_duration, parse_duration
from bootstrap.config.model import (
    API_VERSION,
    ENCRYPTION_ALGORITHMS,
    KIND,
    APIServer,
    ClusterConfig,
    ControllerManager,
    Etcd,
    ExternalEtcd,
    LocalEtcd,
    Networking,
)
from bootstrap.config.validate import is_dns_name, is_dns_subdomain, is_ip, split_host_port
from bootstrap.errors import UserError

__all__ = ["default_config", "dump_cluster_config", "load_cluster_config", "parse_cluster_config",
           "parse_document"]

_TOP = ("apiVersion", "kind", "clusterName", "kubernetesVersion", "controlPlaneEndpoint",
        "networking", "etcd", "apiServer", "certificateValidityPeriod",
        "caCertificateValidityPeriod", "encryptionAlgorithm", "controllerManager",
        "certificatesDir")
# kubeadm fields we deliberately do not implement: say so instead of "unknown".
_KUBEADM_ONLY = frozenset({
    "imageRepository", "dns", "proxy", "scheduler", "featureGates", "metadata",
})
_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
# The apiserver refuses service ranges with more than 20 host bits; one /24 per
# node has to fit in an IPv4 pod subnet (/64 for IPv6), as with kubeadm defaults.
_MAX_SERVICE_HOST_BITS = 20
_NODE_MASK = {4: 24, 6: 64}


def default_config() -> ClusterConfig:
    return ClusterConfig()


def load_cluster_config(path: str | os.PathLike | None, *,
                        log_warnings: bool = True) -> ClusterConfig:
    """The configuration in ``path``, defaults filled in; ``None`` gives the defaults.
    kubeadm fields bootstrap does not implement are logged as warnings (shown on
    stderr even without logging configured) and kept in ``.warnings``."""
    if path is None:
        return default_config()
    text = _yaml.read_text(path, "config file")
    cfg = parse_cluster_config(text, str(path))
    if log_warnings:
        for note in cfg.warnings:
            logging.getLogger("bootstrap.config").warning("warning: %s", note)
    return cfg


def parse_cluster_config(text: str, source: str = "<string>") -> ClusterConfig:
    """The cluster configuration of a ``--config`` file: ours, or kubeadm's
    documents mapped onto it (``bootstrap.config.kubeadm``; its warnings are in
    ``ClusterConfig.warnings`` and logged)."""
    from bootstrap.config.kubeadm import parse_config_text

    return parse_config_text(text, source).cluster


def parse_document(doc: Any, source: str) -> ClusterConfig:
    """One already-loaded ClusterConfiguration document (a mapping)."""
    return _Parser(source).top(doc)


def dump_cluster_config(cfg: ClusterConfig) -> str:
    """YAML that ``load_cluster_config`` reads back into an equal ``ClusterConfig``."""
    etcd: dict[str, Any]
    if cfg.etcd.external is not None:
        ext = cfg.etcd.external
        etcd = {"external": {"endpoints": list(ext.endpoints), "caFile": ext.ca_file,
                             "certFile": ext.cert_file, "keyFile": ext.key_file}}
    else:
        local = cfg.etcd.local or LocalEtcd()
        etcd = {"local": {"dataDir": local.data_dir, "extraArgs": _args_out(local.extra_args)}}
    doc = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "clusterName": cfg.cluster_name,
        "kubernetesVersion": cfg.kubernetes_version,
        "controlPlaneEndpoint": cfg.control_plane_endpoint,
        "networking": {"podSubnet": cfg.networking.pod_subnet,
                       "serviceSubnet": cfg.networking.service_subnet,
                       "dnsDomain": cfg.networking.dns_domain},
        "etcd": etcd,
        "apiServer": {"certSANs": list(cfg.api_server.cert_sans),
                      "extraArgs": _args_out(cfg.api_server.extra_args)},
        "certificateValidityPeriod": format_duration(cfg.certificate_validity_period),
        "caCertificateValidityPeriod": format_duration(cfg.ca_certificate_validity_period),
        "encryptionAlgorithm": cfg.encryption_algorithm,
        "controllerManager": {"extraArgs": _args_out(cfg.controller_manager.extra_args)},
        "certificatesDir": cfg.certificates_dir,
    }
    text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
    if cfg.bind_port != ClusterConfig().bind_port:
        # Our format has only ClusterConfiguration; the port is kubeadm's InitConfiguration's.
        text += "---\n" + yaml.safe_dump({
            "apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "InitConfiguration",
            "localAPIEndpoint": {"bindPort": cfg.bind_port}}, sort_keys=False)
    return text


def _args_out(args: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in args.items()]


def _suggest(key: str, known: tuple[str, ...]) -> str | None:
    norm = {k.lower().replace("_", "").replace("-", ""): k for k in known}
    hit = norm.get(str(key).lower().replace("_", "").replace("-", ""))
    if hit:
        return hit
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    return close[0] if close else None


class _Parser:
    """Walks one document; ``self.fail`` turns a problem into the one-line error."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, container: Any, key: Any, field: str, message: str,
             hint: str | None = None) -> UserError:
        return UserError(f"{field}: {message}" if field else message,
                         where=_yaml.where(self.source, container, key), hint=hint)

    def mapping(self, value: Any, parent: Any, key: Any, field: str,
                known: tuple[str, ...]) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(parent, key, field,
                            f"must be a mapping, got {_kind(value)}")
        for k in value:
            if k not in known:
                path = f"{field}.{k}" if field else str(k)
                if not field and k in _KUBEADM_ONLY:
                    raise self.fail(value, k, path, "is a kubeadm field bootstrap does not "
                                    "support", hint="remove it")
                guess = _suggest(k, known)
                hint = f"did you mean {guess!r}?" if guess else \
                    f"known fields: {', '.join(known)}"
                raise self.fail(value, k, path, "unknown field", hint=hint)
        return value

    def string(self, m: dict, key: str, field: str, default: str) -> str:
        if key not in m or m[key] is None:
            return default
        value = m[key]
        if not isinstance(value, str):
            raise self.fail(m, key, field, f"must be a string, got {_kind(value)} {value!r}",
                            hint="quote the value")
        return value.strip()

    def top(self, doc: Any) -> ClusterConfig:
        if not isinstance(doc, dict):
            raise UserError(f"expected a mapping with apiVersion: {API_VERSION} and kind: {KIND}, "
                            f"got {_kind(doc)}", where=self.source)
        m = self.mapping(doc, None, None, "", _TOP)
        api_version = m.get("apiVersion")
        if api_version != API_VERSION:
            hint = f"set apiVersion: {API_VERSION}"
            if isinstance(api_version, str) and api_version.startswith("kubeadm.k8s.io/"):
                hint += " (the field names are kubeadm's v1beta4 ones)"
            what = "is missing" if api_version is None else f"is {api_version!r}"
            raise self.fail(m, "apiVersion", "apiVersion", what, hint=hint)
        if m.get("kind") != KIND:
            what = "is missing" if "kind" not in m else f"is {m.get('kind')!r}"
            raise self.fail(m, "kind", "kind", what, hint=f"set kind: {KIND}")
        d = ClusterConfig()
        cluster_name = self.string(m, "clusterName", "clusterName", d.cluster_name)
        if not _CLUSTER_NAME.match(cluster_name):
            raise self.fail(m, "clusterName", "clusterName",
                            f"{cluster_name!r} is not a valid name",
                            hint="use letters, digits, '.', '-' or '_', at most 63 characters")
        version = self.string(m, "kubernetesVersion", "kubernetesVersion", d.kubernetes_version)
        if version and not _VERSION.match(version):
            raise self.fail(m, "kubernetesVersion", "kubernetesVersion",
                            f"{version!r} is not a version", hint="use e.g. v1.32.0, or leave "
                            "it empty for the version of this toolkit's agents")
        endpoint = self.string(m, "controlPlaneEndpoint", "controlPlaneEndpoint",
                               d.control_plane_endpoint)
        if endpoint:
            try:
                split_host_port(endpoint)
            except ValueError as exc:
                raise self.fail(m, "controlPlaneEndpoint", "controlPlaneEndpoint", str(exc),
                                hint="use host or host:port, e.g. lb.example.com:6443") from None
        cfg = ClusterConfig(
            cluster_name=cluster_name,
            kubernetes_version=version,
            control_plane_endpoint=endpoint,
            networking=self.networking(m, self.controller_manager(m).node_cidr_mask_size),
            etcd=self.etcd(m),
            api_server=self.api_server(m),
            certificate_validity_period=self.duration(
                m, "certificateValidityPeriod", d.certificate_validity_period),
            ca_certificate_validity_period=self.duration(
                m, "caCertificateValidityPeriod", d.ca_certificate_validity_period),
            encryption_algorithm=self.algorithm(m, d.encryption_algorithm),
            controller_manager=self.controller_manager(m),
            certificates_dir=self.abs_path(m, "certificatesDir", d.certificates_dir),
            source=self.source,
        )
        if cfg.certificate_validity_period > cfg.ca_certificate_validity_period:
            raise self.fail(m, "certificateValidityPeriod", "certificateValidityPeriod",
                            f"{format_duration(cfg.certificate_validity_period)} is longer than "
                            f"caCertificateValidityPeriod "
                            f"{format_duration(cfg.ca_certificate_validity_period)}",
                            hint="a certificate cannot outlive the CA that signs it")
        return cfg

    def networking(self, top: dict, node_mask: int | None = None) -> Networking:
        d = Networking()
        m = self.mapping(top.get("networking"), top, "networking", "networking",
                         ("podSubnet", "serviceSubnet", "dnsDomain"))
        pod = self.string(m, "podSubnet", "networking.podSubnet", d.pod_subnet)
        svc = self.string(m, "serviceSubnet", "networking.serviceSubnet", d.service_subnet)
        dns = self.string(m, "dnsDomain", "networking.dnsDomain", d.dns_domain)
        pods = self.cidrs(m, "podSubnet", pod)
        services = self.cidrs(m, "serviceSubnet", svc)
        for net in services:
            if net.max_prefixlen - net.prefixlen > _MAX_SERVICE_HOST_BITS:
                raise self.fail(m, "serviceSubnet", "networking.serviceSubnet",
                                f"{net} is too large", hint="use at most "
                                f"{_MAX_SERVICE_HOST_BITS} host bits (/12 for IPv4, /108 for IPv6)")
            if net.num_addresses < 4:
                raise self.fail(m, "serviceSubnet", "networking.serviceSubnet",
                                f"{net} is too small", hint="use e.g. 10.96.0.0/12")
        for net in pods:
            mask = node_mask if node_mask is not None and net.version == 4 else \
                _NODE_MASK[net.version]
            if net.prefixlen > mask:
                raise self.fail(m, "podSubnet", "networking.podSubnet",
                                f"{net} is too small to give each node a "
                                f"/{mask}" + (" (node-cidr-mask-size)" if node_mask else ""),
                                hint="use e.g. 10.244.0.0/16")
        for p in pods:
            for s in services:
                if p.version == s.version and p.overlaps(s):
                    raise self.fail(m, "serviceSubnet", "networking.serviceSubnet",
                                    f"{s} overlaps networking.podSubnet {p}",
                                    hint="pod and service subnets must be disjoint")
        if not is_dns_subdomain(dns):
            raise self.fail(m, "dnsDomain", "networking.dnsDomain",
                            f"{dns!r} is not a DNS domain",
                            hint="use lowercase labels separated by dots, e.g. cluster.local")
        return Networking(pod_subnet=pod, service_subnet=svc, dns_domain=dns)

    def cidrs(self, m: dict, key: str, value: str) -> list:
        field = f"networking.{key}"
        parts = [p.strip() for p in value.split(",")]
        nets = []
        for part in parts:
            try:
                nets.append(ipaddress.ip_network(part, strict=True))
            except ValueError as exc:
                hint = "use CIDR notation, e.g. 10.244.0.0/16"
                if "host bits set" in str(exc):
                    hint = f"did you mean {ipaddress.ip_network(part, strict=False)}?"
                raise self.fail(m, key, field, f"{part!r} is not a valid CIDR",
                                hint=hint) from None
        if len(nets) > 2 or (len(nets) == 2 and nets[0].version == nets[1].version):
            raise self.fail(m, key, field, f"{value!r}: at most one IPv4 and one IPv6 CIDR",
                            hint="dual-stack is 'IPv4CIDR,IPv6CIDR'")
        return nets

    def etcd(self, top: dict) -> Etcd:
        m = self.mapping(top.get("etcd"), top, "etcd", "etcd", ("local", "external"))
        has_local = m.get("local") is not None
        has_external = m.get("external") is not None
        if has_local and has_external:
            raise self.fail(m, "external", "etcd",
                            "both etcd.local and etcd.external are set",
                            hint="keep exactly one: local (stacked) or external")
        if has_external:
            return Etcd(local=None, external=self.external_etcd(m))
        lm = self.mapping(m.get("local"), m, "local", "etcd.local", ("dataDir", "extraArgs"))
        data_dir = self.string(lm, "dataDir", "etcd.local.dataDir", LocalEtcd().data_dir)
        if not data_dir.startswith("/"):
            raise self.fail(lm, "dataDir", "etcd.local.dataDir",
                            f"{data_dir!r} is not an absolute path", hint="e.g. /var/lib/etcd")
        args = self.extra_args(lm, "etcd.local.extraArgs")
        return Etcd(local=LocalEtcd(data_dir=data_dir, extra_args=args), external=None)

    def external_etcd(self, m: dict) -> ExternalEtcd:
        fields = ("endpoints", "caFile", "certFile", "keyFile")
        em = self.mapping(m.get("external"), m, "external", "etcd.external", fields)
        for f in fields:
            if em.get(f) in (None, "", []):
                raise self.fail(em, None, f"etcd.external.{f}", "is required",
                                hint="external etcd needs endpoints, caFile, certFile and "
                                "keyFile (mTLS, as kubeadm)")
        endpoints = em["endpoints"]
        if isinstance(endpoints, str) or not isinstance(endpoints, list):
            raise self.fail(em, "endpoints", "etcd.external.endpoints",
                            f"must be a list of URLs, got {_kind(endpoints)}",
                            hint="e.g. [https://10.0.0.1:2379]")
        for i, url in enumerate(endpoints):
            field = f"etcd.external.endpoints[{i}]"
            if not isinstance(url, str):
                raise self.fail(em, "endpoints", field, f"must be a string, got {_kind(url)}")
            mt = re.match(r"^https://([^/]+?)/?$", url)
            if not mt:
                raise self.fail(em, "endpoints", field, f"{url!r} is not an https:// URL",
                                hint="e.g. https://10.0.0.1:2379")
            try:
                split_host_port(mt.group(1))
            except ValueError as exc:
                raise self.fail(em, "endpoints", field, f"{url!r}: {exc}") from None
        paths = {}
        for f in fields[1:]:
            value = self.string(em, f, f"etcd.external.{f}", "")
            if not value.startswith("/"):
                raise self.fail(em, f, f"etcd.external.{f}", f"{value!r} is not an absolute path")
            paths[f] = value
        return ExternalEtcd(endpoints=tuple(endpoints), ca_file=paths["caFile"],
                            cert_file=paths["certFile"], key_file=paths["keyFile"])

    def controller_manager(self, top: dict) -> ControllerManager:
        m = self.mapping(top.get("controllerManager"), top, "controllerManager",
                         "controllerManager", ("extraArgs",))
        args = self.extra_args(m, "controllerManager.extraArgs")
        size = args.get("node-cidr-mask-size")
        if size is not None and not (size.isdigit() and 8 <= int(size) <= 128):
            raise self.fail(m, "extraArgs", "controllerManager.extraArgs.node-cidr-mask-size",
                            f"{size!r} is not a prefix length", hint="e.g. \"24\"")
        return ControllerManager(extra_args=args)

    def abs_path(self, m: dict, key: str, default: str) -> str:
        value = self.string(m, key, key, default)
        if not value.startswith("/"):
            raise self.fail(m, key, key, f"{value!r} is not an absolute path")
        return value.rstrip("/") or "/"

    def api_server(self, top: dict) -> APIServer:
        m = self.mapping(top.get("apiServer"), top, "apiServer", "apiServer",
                         ("certSANs", "extraArgs"))
        sans = m.get("certSANs") or []
        if not isinstance(sans, list):
            raise self.fail(m, "certSANs", "apiServer.certSANs",
                            f"must be a list, got {_kind(sans)}", hint="e.g. [lb.example.com]")
        out = []
        for i, san in enumerate(sans):
            field = f"apiServer.certSANs[{i}]"
            if not isinstance(san, str):
                raise self.fail(m, "certSANs", field, f"must be a string, got {_kind(san)}")
            if not (is_ip(san) or is_dns_name(san, wildcard=True)):
                raise self.fail(m, "certSANs", field, f"{san!r} is neither an IP address nor "
                                "a DNS name")
            out.append(san)
        return APIServer(cert_sans=tuple(out), extra_args=self.extra_args(m, "apiServer.extraArgs"))

    def extra_args(self, m: dict, field: str) -> dict[str, str]:
        value = m.get("extraArgs")
        if value is None:
            return {}
        hint = "use a list of {name: flag, value: \"...\"} (kubeadm v1beta4)"
        items: list[tuple[Any, Any]]
        if isinstance(value, dict):  # v1beta3's map form, still the natural way to write it
            items = list(value.items())
        elif isinstance(value, list):
            items = []
            for i, entry in enumerate(value):
                if not isinstance(entry, dict) or set(entry) != {"name", "value"}:
                    raise self.fail(m, "extraArgs", f"{field}[{i}]",
                                    "must have exactly the keys name and value", hint=hint)
                items.append((entry["name"], entry["value"]))
        else:
            raise self.fail(m, "extraArgs", field, f"must be a list, got {_kind(value)}",
                            hint=hint)
        args: dict[str, str] = {}
        for name, val in items:
            if not isinstance(name, str) or not re.match(r"^[a-z0-9][a-z0-9-]*$", name):
                raise self.fail(m, "extraArgs", field, f"{name!r} is not a flag name",
                                hint="write the flag without dashes, e.g. name: audit-log-path")
            if not isinstance(val, str):
                raise self.fail(m, "extraArgs", f"{field}.{name}",
                                f"must be a string, got {_kind(val)} {val!r}",
                                hint="quote the value")
            if name in args:
                raise self.fail(m, "extraArgs", f"{field}.{name}", "is given twice")
            args[name] = val
        return args

    def duration(self, m: dict, key: str, default: timedelta) -> timedelta:
        if m.get(key) is None:
            return default
        raw = m[key]
        if not isinstance(raw, str):
            raise self.fail(m, key, key, f"must be a Go duration string, got {_kind(raw)} {raw!r}",
                            hint="e.g. \"8760h0m0s\" for one year")
        try:
            value = parse_duration(raw)
        except ValueError as exc:
            raise self.fail(m, key, key, str(exc)) from None
        if value <= timedelta(0):
            raise self.fail(m, key, key, f"{raw!r} must be positive", hint="e.g. 8760h0m0s")
        return value

    def algorithm(self, m: dict, default: str) -> str:
        value = self.string(m, "encryptionAlgorithm", "encryptionAlgorithm", default)
        if value not in ENCRYPTION_ALGORITHMS:
            raise self.fail(m, "encryptionAlgorithm", "encryptionAlgorithm",
                            f"{value!r} is not supported",
                            hint=f"use one of {', '.join(ENCRYPTION_ALGORITHMS)}")
        return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    for typ, name in ((bool, "a boolean"), (dict, "a mapping"), (list, "a list"),
                      (int, "a number"), (float, "a number"), (str, "a string")):
        if isinstance(value, typ):
            return name
    return type(value).__name__
