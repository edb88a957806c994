"""KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) and kube-proxy's flags.

Field names and defaults are upstream's; a field this proxy does not implement
(ipvs, nftables, winkernel, detectLocal modes other than ClusterCIDR) is refused
with a clear message rather than silently ignored, and so is an unknown field
(upstream decodes strictly).
"""

from __future__ import annotations

import argparse
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bootstrap.api.agent import add_version_flag
from bootstrap.config.duration import parse_duration
from bootstrap.errors import UserError

API_VERSION = "kubeproxy.config.k8s.io/v1alpha1"
KIND = "KubeProxyConfiguration"

# Known fields: those we act on, and those upstream has that we accept but ignore
# because they tune parts we do not have (say so in docs/proxy.md).
_TOP = {"apiVersion", "kind", "clientConnection", "mode", "clusterCIDR", "hostnameOverride",
        "bindAddress", "healthzBindAddress", "metricsBindAddress", "iptables",
        "nodePortAddresses", "conntrack", "configSyncPeriod", "featureGates", "logging",
        "bindAddressHardFail", "enableProfiling", "showHiddenMetricsForVersion", "oomScoreAdj",
        "portRange", "detectLocalMode", "detectLocal", "ipvs", "nftables", "winkernel",
        "windowsRunAsService", "syncPeriod", "minSyncPeriod"}
_IPTABLES = {"masqueradeBit", "masqueradeAll", "syncPeriod", "minSyncPeriod",
             "localhostNodePorts"}
_CONNTRACK = {"maxPerCore", "min", "tcpEstablishedTimeout", "tcpCloseWaitTimeout",
              "tcpBeLiberal", "udpTimeout", "udpStreamTimeout"}
_CLIENT = {"kubeconfig", "acceptContentTypes", "contentType", "qps", "burst"}


@dataclass
class ProxyConfig:
    kubeconfig: str = ""
    mode: str = "iptables"
    cluster_cidr: str = ""
    hostname_override: str = ""
    bind_address: str = "0.0.0.0"
    healthz_bind_address: str = "0.0.0.0:10256"
    metrics_bind_address: str = "127.0.0.1:10249"
    masquerade_bit: int = 14
    masquerade_all: bool = False
    sync_period: float = 30.0
    min_sync_period: float = 1.0
    localhost_nodeports: bool = True
    nodeport_addresses: list[str] = field(default_factory=list)
    conntrack_tcp_be_liberal: bool = False
    # bootstrap's own (not upstream's): the node routes loop, docs/adr/0005.
    pod_routes: bool = True
    non_masquerade_cidrs: list[str] = field(default_factory=list)
    verbosity: int = 0
    cleanup: bool = False


def _where(path: str | None, field_: str) -> str:
    return f"{path}: {field_}" if path else field_


def _check_keys(obj: dict, allowed: set[str], path: str, prefix: str) -> None:
    for k in obj:
        if k not in allowed:
            raise UserError(f'strict decoding error: unknown field "{prefix}{k}"', where=path,
                            hint=f"see {KIND} {API_VERSION} for the field names")


def _duration(value, where: str) -> float:
    try:
        return parse_duration(str(value)).total_seconds()
    except ValueError as exc:
        raise UserError(f"invalid duration {value!r}: {exc}", where=where,
                        hint="use Go durations such as 30s, 1m, 500ms") from None


def _cidr(value: str, where: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise UserError(f"invalid CIDR {value!r}", where=where,
                        hint="for example 10.244.0.0/16") from None


def _host_port(value: str, where: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UserError(f"invalid address {value!r}", where=where,
                        hint="use IP:port, for example 0.0.0.0:10256")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise UserError(f"invalid address {value!r}", where=where,
                        hint="the host part must be an IP address") from None
    return value


def load_file(path: str, cfg: ProxyConfig) -> ProxyConfig:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise UserError(f"cannot read config: {exc.strerror}", where=path,
                        hint="pass --config with a readable KubeProxyConfiguration file") from None
    except yaml.YAMLError as exc:
        raise UserError(f"not YAML: {str(exc).splitlines()[0]}", where=path) from None
    if not isinstance(data, dict):
        raise UserError("expected a KubeProxyConfiguration mapping", where=path)
    if data.get("kind") != KIND or data.get("apiVersion") != API_VERSION:
        raise UserError(f"expected kind {KIND} apiVersion {API_VERSION}, got "
                        f"{data.get('kind')!r} {data.get('apiVersion')!r}", where=path)
    _check_keys(data, _TOP, path, "")
    for name, allowed in (("iptables", _IPTABLES), ("conntrack", _CONNTRACK),
                          ("clientConnection", _CLIENT)):
        sub = data.get(name) or {}
        if not isinstance(sub, dict):
            raise UserError(f"{name} must be a mapping", where=path)
        _check_keys(sub, allowed, path, f"{name}.")
    mode = data.get("mode") or "iptables"
    if mode != "iptables":
        raise UserError(f'mode "{mode}" is not supported', where=_where(path, "mode"),
                        hint='this kube-proxy implements mode "iptables" only')
    detect = data.get("detectLocalMode") or "ClusterCIDR"
    if detect != "ClusterCIDR":
        raise UserError(f'detectLocalMode "{detect}" is not supported',
                        where=_where(path, "detectLocalMode"), hint="use ClusterCIDR")
    cc = data.get("clientConnection") or {}
    cfg.kubeconfig = cc.get("kubeconfig") or cfg.kubeconfig
    if data.get("clusterCIDR"):
        cfg.cluster_cidr = _cidr(data["clusterCIDR"], _where(path, "clusterCIDR"))
    cfg.hostname_override = data.get("hostnameOverride") or cfg.hostname_override
    if data.get("bindAddress"):
        cfg.bind_address = str(data["bindAddress"])
    for key, attr in (("healthzBindAddress", "healthz_bind_address"),
                      ("metricsBindAddress", "metrics_bind_address")):
        if data.get(key) == "":
            setattr(cfg, attr, "")          # upstream: empty disables the server
        elif data.get(key):
            setattr(cfg, attr, _host_port(str(data[key]), _where(path, key)))
    ipt = data.get("iptables") or {}
    if "masqueradeBit" in ipt:
        bit = ipt["masqueradeBit"]
        if not isinstance(bit, int) or not 0 <= bit <= 31:
            raise UserError(f"masqueradeBit {bit!r} must be in the range 0-31",
                            where=_where(path, "iptables.masqueradeBit"))
        cfg.masquerade_bit = bit
    cfg.masquerade_all = bool(ipt.get("masqueradeAll", cfg.masquerade_all))
    if "localhostNodePorts" in ipt:
        cfg.localhost_nodeports = bool(ipt["localhostNodePorts"])
    for key, attr in (("syncPeriod", "sync_period"), ("minSyncPeriod", "min_sync_period")):
        if ipt.get(key) is not None:
            setattr(cfg, attr, _duration(ipt[key], _where(path, f"iptables.{key}")))
    if cfg.sync_period <= 0:
        raise UserError("iptables.syncPeriod must be greater than 0",
                        where=_where(path, "iptables.syncPeriod"))
    if cfg.min_sync_period > cfg.sync_period:
        raise UserError("iptables.minSyncPeriod must be at most iptables.syncPeriod",
                        where=_where(path, "iptables.minSyncPeriod"))
    npa = data.get("nodePortAddresses") or []
    if not isinstance(npa, list):
        raise UserError("nodePortAddresses must be a list", where=path)
    cfg.nodeport_addresses = [a if a == "primary" else
                              _cidr(a, _where(path, "nodePortAddresses")) for a in npa]
    cfg.conntrack_tcp_be_liberal = bool((data.get("conntrack") or {}).get("tcpBeLiberal"))
    return cfg


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        # One line, exit 2, as every bootstrap command reports bad input.
        raise UserError(message, where=self.prog, hint=f"see {self.prog} --help")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="bootstrap-kube-proxy",
                                description="kube-proxy: Services as iptables rules")
    add_version_flag(p)
    p.add_argument("--config", help="KubeProxyConfiguration file")
    p.add_argument("--kubeconfig", help="kubeconfig (overrides clientConnection.kubeconfig)")
    p.add_argument("--hostname-override", help="node name (default: the hostname)")
    p.add_argument("--cluster-cidr", help="pod network CIDR (off-cluster traffic is masqueraded)")
    p.add_argument("--pod-routes", default=None, choices=["true", "false"],
                   help="route other nodes' podCIDRs and masquerade pod egress "
                        "(bootstrap's node routes loop; default true)")
    p.add_argument("--non-masquerade-cidr", action="append", default=[],
                   help="extra destination CIDR pods reach without NAT (repeatable)")
    p.add_argument("--cleanup", action="store_true",
                   help="remove kube-proxy's rules and chains, then exit")
    p.add_argument("-v", "--v", type=int, default=0, dest="verbosity", help="log verbosity")
    return p


def from_args(argv: list[str] | None) -> ProxyConfig:
    args = parser().parse_args(argv)
    cfg = ProxyConfig()
    if args.config:
        load_file(args.config, cfg)
    if args.kubeconfig:
        cfg.kubeconfig = args.kubeconfig
    if args.hostname_override:
        cfg.hostname_override = args.hostname_override
    if args.cluster_cidr:
        cfg.cluster_cidr = _cidr(args.cluster_cidr, "--cluster-cidr")
    if args.pod_routes is not None:
        cfg.pod_routes = args.pod_routes == "true"
    cfg.non_masquerade_cidrs = [_cidr(c, "--non-masquerade-cidr")
                                for c in args.non_masquerade_cidr]
    cfg.verbosity = args.verbosity
    cfg.cleanup = args.cleanup
    if not cfg.kubeconfig and not cfg.cleanup:
        raise UserError("no kubeconfig", where="--kubeconfig",
                        hint="pass --kubeconfig or set clientConnection.kubeconfig in --config")
    return cfg
