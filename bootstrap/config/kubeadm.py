"""``--config`` files: ours, and kubeadm's own (v1beta3 and v1beta4).

One multi-document YAML may hold bootstrap's ClusterConfiguration
(``bootstrap.dev/v1alpha1``) or kubeadm's ``InitConfiguration``,
``ClusterConfiguration``, ``JoinConfiguration``, ``ResetConfiguration``,
``UpgradeConfiguration`` (the last two v1beta4 only), plus a
``KubeletConfiguration`` and a ``KubeProxyConfiguration``. kubeadm documents
are mapped onto ours; every field bootstrap does not implement is named in a
warning (never silently ignored); an unknown field is a warning too, as
kubeadm's own strict decoding reports it. ``extraArgs`` must have its
version's shape: a map in v1beta3, a list of ``{name, value}`` in v1beta4.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any

from bootstrap.config import _yaml
from bootstrap.config._kubeadm_schema import (
    COMPONENT_KINDS,
    KUBEADM_KINDS,
    NOT,
    V1BETA3,
    V1BETA4,
)
from bootstrap.config.model import API_VERSION, KIND, ClusterConfig
from bootstrap.config.validate import parse_port
from bootstrap.errors import UserError

__all__ = ["ConfigFile", "InitSettings", "JoinSettings", "ResetSettings", "UpgradeSettings",
           "load_config_file", "parse_config_text"]

# What the init/join/reset/upgrade documents say, for the flows to apply
# (the flows take the same settings from flags today; wiring is the integrator's).
@dataclass(frozen=True)
class InitSettings:
    node_name: str | None = None
    advertise_address: str | None = None
    skip_phases: tuple[str, ...] = ()
    bootstrap_tokens: tuple[str, ...] = ()  # bootstrapTokens[].token, "abcdef.0123456789abcdef"


@dataclass(frozen=True)
class JoinSettings:
    node_name: str | None = None
    token: str | None = None  # discovery.bootstrapToken.token
    tls_bootstrap_token: str | None = None
    api_server_endpoint: str | None = None
    ca_cert_hashes: tuple[str, ...] = ()
    unsafe_skip_ca_verification: bool = False
    discovery_file: str | None = None
    control_plane: bool = False  # a controlPlane section makes it a control-plane join
    advertise_address: str | None = None
    bind_port: int | None = None
    skip_phases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResetSettings:
    force: bool = False
    skip_phases: tuple[str, ...] = ()
    certificates_dir: str | None = None


@dataclass(frozen=True)
class UpgradeSettings:
    kubernetes_version: str | None = None
    certificate_renewal: bool = True
    etcd_upgrade: bool = True
    skip_phases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConfigFile:
    cluster: ClusterConfig
    api_version: str  # of the kubeadm documents, or ours
    init: InitSettings | None = None
    join: JoinSettings | None = None
    reset: ResetSettings | None = None
    upgrade: UpgradeSettings | None = None
    # The implemented fields of the component configs, ready to hand to the
    # kubelet's and kube-proxy's --config (None when the file has none).
    kubelet: dict | None = None
    kube_proxy: dict | None = None
    warnings: tuple[str, ...] = ()


def load_config_file(path: str) -> ConfigFile:
    return parse_config_text(_yaml.read_text(path, "config file"), str(path))


def parse_config_text(text: str, source: str) -> ConfigFile:
    from bootstrap.config.cluster import parse_document

    docs = [d for d in _yaml.load_all(text, source) if d is not None]
    if not docs:
        raise UserError("the file is empty", where=source,
                        hint="see `bootstrap config print init-defaults`")
    r = _Reader(source)
    by_kind: dict[str, Any] = {}
    kubeadm_version: str | None = None
    for doc in docs:
        if not isinstance(doc, dict):
            raise UserError(f"expected a mapping with apiVersion: {API_VERSION} and kind: "
                            f"{KIND}, got {_kind(doc)}", where=_yaml.where(source, doc))
        api, kind = doc.get("apiVersion"), doc.get("kind")
        if kind in by_kind:
            raise UserError(f"2 {kind} documents", where=_yaml.where(source, doc, "kind"),
                            hint="keep one")
        if api == API_VERSION:
            if kind != KIND:
                raise UserError(f"kind: is {kind!r} (set kind: {KIND})",
                                where=_yaml.where(source, doc, "kind"),
                                hint=f"{API_VERSION} has only {KIND}; use kubeadm.k8s.io/"
                                "v1beta4 for the other kinds")
        elif api in (V1BETA3, V1BETA4):
            if kind not in KUBEADM_KINDS:
                raise UserError(f"kind {kind!r} is not a kubeadm kind",
                                where=_yaml.where(source, doc, "kind"),
                                hint=f"use one of {', '.join(KUBEADM_KINDS)}")
            version = api.rsplit("/", 1)[1]
            if version not in KUBEADM_KINDS[kind][1]:
                raise UserError(f"{kind} is not in {api}", where=_yaml.where(source, doc, "kind"),
                                hint="use kubeadm.k8s.io/v1beta4 (bootstrap config migrate "
                                "converts a v1beta3 file)")
            if kubeadm_version not in (None, api):
                raise UserError(f"apiVersion {api} mixed with {kubeadm_version}",
                                where=_yaml.where(source, doc, "apiVersion"),
                                hint="convert the file with bootstrap config migrate")
            kubeadm_version = api
        elif kind in COMPONENT_KINDS:
            want = COMPONENT_KINDS[kind][0]
            if api != want:
                raise UserError(f"{kind} apiVersion is {api!r}",
                                where=_yaml.where(source, doc, "apiVersion"),
                                hint=f"set apiVersion: {want}")
        else:
            what = "is missing" if api is None else f"is {api!r}"
            hint = f"set apiVersion: {API_VERSION}, {V1BETA4} or {V1BETA3}"
            raise UserError(f"apiVersion: {what}", where=_yaml.where(source, doc, "apiVersion"),
                            hint=hint)
        by_kind[kind] = doc
    version = (kubeadm_version or "").rsplit("/", 1)[-1]

    cluster_doc = by_kind.get(KIND)
    if cluster_doc is not None and cluster_doc.get("apiVersion") != API_VERSION:
        cluster_doc = r.walk(cluster_doc, KUBEADM_KINDS[KIND][0], KIND, version)
        cluster_doc["apiVersion"], cluster_doc["kind"] = API_VERSION, KIND
    if cluster_doc is None:
        cluster_doc = _yaml.MarkedDict(apiVersion=API_VERSION, kind=KIND)
    cfg = parse_document(cluster_doc, source)

    settings: dict[str, Any] = {}
    for kind, build in (("InitConfiguration", r.init), ("JoinConfiguration", r.join),
                        ("ResetConfiguration", r.reset),
                        ("UpgradeConfiguration", r.upgrade)):
        if kind in by_kind:
            kept = r.walk(by_kind[kind], KUBEADM_KINDS[kind][0], kind, version)
            settings[kind] = build(kept)
    init = settings.get("InitConfiguration")
    if init is not None and r.bind_port is not None:
        cfg = dataclasses.replace(cfg, bind_port=r.bind_port)
    components: dict[str, dict] = {}
    for kind, (_api, schema) in COMPONENT_KINDS.items():
        if kind in by_kind:
            components[kind] = _plain(r.walk(by_kind[kind], schema, kind, ""))
    r.check_components(cfg, components, by_kind)
    cfg = dataclasses.replace(cfg, warnings=tuple(r.warnings))
    return ConfigFile(cluster=cfg, api_version=kubeadm_version or API_VERSION, init=init,
                      join=settings.get("JoinConfiguration"),
                      reset=settings.get("ResetConfiguration"),
                      upgrade=settings.get("UpgradeConfiguration"),
                      kubelet=components.get("KubeletConfiguration"),
                      kube_proxy=components.get("KubeProxyConfiguration"),
                      warnings=tuple(r.warnings))


class _Reader:
    def __init__(self, source: str):
        self.source = source
        self.warnings: list[str] = []
        self.bind_port: int | None = None

    def where(self, m: Any, key: Any = None) -> str:
        return _yaml.where(self.source, m, key)

    def warn(self, m: Any, key: Any, message: str) -> None:
        self.warnings.append(f"{self.where(m, key)}: {message}")

    def walk(self, doc: Any, schema: dict, path: str, version: str) -> Any:
        """The implemented part of ``doc``, keeping line numbers; warnings for the rest."""
        if not isinstance(doc, dict):
            return doc
        kept = _yaml.MarkedDict()
        kept.line = getattr(doc, "line", None)
        for key, value in doc.items():
            if path in KUBEADM_KINDS or path in COMPONENT_KINDS:
                if key in ("apiVersion", "kind"):
                    continue
            spec = schema.get(key)
            here = f"{path}.{key}"
            if isinstance(spec, tuple):
                only, spec = spec
                if version and only != version:
                    hint = _MOVED.get(here.split(".", 1)[1] if "." in here else here, "")
                    self.warn(doc, key, f"{here}: not a {version} field; ignored{hint}")
                    continue
            if spec is None:
                close = difflib.get_close_matches(str(key), list(schema), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.warn(doc, key, f"{here}: unknown field; ignored{hint}")
                continue
            if spec == NOT:
                self.warn(doc, key, f"{here}: not implemented by bootstrap; ignored")
                continue
            if key == "extraArgs" and version:
                self.check_extra_args(doc, key, here, value, version)
            if isinstance(spec, dict) and isinstance(value, dict):
                value = self.walk(value, spec, here, version)
                # Nothing implemented left (e.g. scheduler with only extraArgs): drop
                # it, but a controlPlane section means "join as control plane" even empty.
                if not value and doc[key] and key != "controlPlane":
                    continue
            kept[key] = value
            if hasattr(doc, "key_lines") and key in doc.key_lines:
                kept.key_lines[key] = doc.key_lines[key]
        return kept

    def check_extra_args(self, m: Any, key: str, path: str, value: Any, version: str) -> None:
        if version == "v1beta3" and isinstance(value, list):
            raise UserError(f"{path}: v1beta3 extraArgs is a map of flag: value",
                            where=self.where(m, key), hint="write {flag: value}, or use "
                            "kubeadm.k8s.io/v1beta4 for the list form")
        if version == "v1beta4" and isinstance(value, dict):
            raise UserError(f"{path}: v1beta4 extraArgs is a list of name/value",
                            where=self.where(m, key), hint="write [{name: flag, value: "
                            "\"...\"}], or convert with bootstrap config migrate")

    # -- settings of the node-local kinds ----------------------------------
    def _str(self, m: Any, key: str, path: str) -> str | None:
        value = m.get(key) if isinstance(m, dict) else None
        if value is None:
            return None
        if not isinstance(value, str):
            raise UserError(f"{path}: must be a string, got {_kind(value)}",
                            where=self.where(m, key), hint="quote the value")
        return value

    def _phases(self, m: Any, path: str) -> tuple[str, ...]:
        value = m.get("skipPhases") or []
        if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
            raise UserError(f"{path}.skipPhases: must be a list of phase names",
                            where=self.where(m, "skipPhases"))
        return tuple(value)

    def _bool(self, m: Any, key: str, path: str, default: bool) -> bool:
        value = m.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise UserError(f"{path}.{key}: must be true or false, got {value!r}",
                            where=self.where(m, key))
        return value

    def _port(self, m: Any, key: str, path: str) -> int | None:
        if not isinstance(m, dict) or m.get(key) is None:
            return None
        try:
            return parse_port(m[key])
        except ValueError as exc:
            raise UserError(f"{path}.{key}: {exc}", where=self.where(m, key)) from None

    def init(self, m: dict) -> InitSettings:
        ep = m.get("localAPIEndpoint") or {}
        self.bind_port = self._port(ep, "bindPort", "InitConfiguration.localAPIEndpoint")
        tokens = []
        for i, t in enumerate(m.get("bootstrapTokens") or []):
            token = t.get("token") if isinstance(t, dict) else None
            if not isinstance(token, str):
                raise UserError(f"InitConfiguration.bootstrapTokens[{i}].token: is required",
                                where=self.where(m, "bootstrapTokens"),
                                hint="e.g. token: abcdef.0123456789abcdef")
            for extra in sorted(set(t) - {"token"}):
                self.warn(t, extra, f"InitConfiguration.bootstrapTokens[{i}].{extra}: not "
                          "implemented by bootstrap; ignored")
            tokens.append(token)
        return InitSettings(
            node_name=self._str(m.get("nodeRegistration") or {}, "name",
                                "InitConfiguration.nodeRegistration.name"),
            advertise_address=self._str(ep, "advertiseAddress",
                                        "InitConfiguration.localAPIEndpoint.advertiseAddress"),
            skip_phases=self._phases(m, "InitConfiguration"), bootstrap_tokens=tuple(tokens))

    def join(self, m: dict) -> JoinSettings:
        d = m.get("discovery") or {}
        bt = d.get("bootstrapToken") or {}
        cp = m.get("controlPlane")
        ep = (cp or {}).get("localAPIEndpoint") or {}
        hashes = bt.get("caCertHashes") or []
        if not isinstance(hashes, list):
            raise UserError("JoinConfiguration.discovery.bootstrapToken.caCertHashes: must be "
                            "a list", where=self.where(bt, "caCertHashes"))
        p = "JoinConfiguration.discovery"
        return JoinSettings(
            node_name=self._str(m.get("nodeRegistration") or {}, "name",
                                "JoinConfiguration.nodeRegistration.name"),
            token=self._str(bt, "token", f"{p}.bootstrapToken.token"),
            tls_bootstrap_token=self._str(d, "tlsBootstrapToken", f"{p}.tlsBootstrapToken"),
            api_server_endpoint=self._str(bt, "apiServerEndpoint",
                                          f"{p}.bootstrapToken.apiServerEndpoint"),
            ca_cert_hashes=tuple(str(h) for h in hashes),
            unsafe_skip_ca_verification=self._bool(bt, "unsafeSkipCAVerification",
                                                   f"{p}.bootstrapToken", False),
            discovery_file=self._str(d.get("file") or {}, "kubeConfigPath",
                                     f"{p}.file.kubeConfigPath"),
            control_plane=cp is not None,
            advertise_address=self._str(ep, "advertiseAddress",
                                        "JoinConfiguration.controlPlane.localAPIEndpoint."
                                        "advertiseAddress"),
            bind_port=self._port(ep, "bindPort", "JoinConfiguration.controlPlane."
                                 "localAPIEndpoint"),
            skip_phases=self._phases(m, "JoinConfiguration"))

    def reset(self, m: dict) -> ResetSettings:
        return ResetSettings(force=self._bool(m, "force", "ResetConfiguration", False),
                             skip_phases=self._phases(m, "ResetConfiguration"),
                             certificates_dir=self._str(m, "certificatesDir",
                                                        "ResetConfiguration.certificatesDir"))

    def upgrade(self, m: dict) -> UpgradeSettings:
        a = m.get("apply") or {}
        p = "UpgradeConfiguration.apply"
        return UpgradeSettings(
            kubernetes_version=self._str(a, "kubernetesVersion", f"{p}.kubernetesVersion"),
            certificate_renewal=self._bool(a, "certificateRenewal", p, True),
            etcd_upgrade=self._bool(a, "etcdUpgrade", p, True),
            skip_phases=self._phases(a, p))

    def check_components(self, cfg: ClusterConfig, comps: dict[str, dict],
                         docs: dict[str, Any]) -> None:
        kubelet = comps.get("KubeletConfiguration")
        if kubelet and kubelet.get("clusterDomain") not in (None, cfg.networking.dns_domain):
            self.warn(docs["KubeletConfiguration"], "clusterDomain",
                      f"KubeletConfiguration.clusterDomain {kubelet['clusterDomain']!r} differs "
                      f"from networking.dnsDomain {cfg.networking.dns_domain!r}")
        proxy = comps.get("KubeProxyConfiguration")
        if proxy:
            mode = proxy.get("mode") or "iptables"
            if mode != "iptables":
                raise UserError(f"KubeProxyConfiguration.mode {mode!r} is not supported",
                                where=self.where(docs["KubeProxyConfiguration"], "mode"),
                                hint="bootstrap's kube-proxy implements mode iptables only")
            cidr = proxy.get("clusterCIDR")
            if cidr not in (None, "", cfg.networking.pod_subnet):
                self.warn(docs["KubeProxyConfiguration"], "clusterCIDR",
                          f"KubeProxyConfiguration.clusterCIDR {cidr!r} differs from "
                          f"networking.podSubnet {cfg.networking.pod_subnet!r}")


_MOVED = {
    "apiServer.timeoutForControlPlane":
        " (v1beta4 moved it to InitConfiguration.timeouts.controlPlaneComponentHealthCheck)",
    "discovery.timeout": " (v1beta4 moved it to JoinConfiguration.timeouts.discovery)",
}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _kind(value: Any) -> str:
    for typ, name in ((bool, "a boolean"), (dict, "a mapping"), (list, "a list"),
                      (int, "a number"), (float, "a number"), (str, "a string")):
        if isinstance(value, typ):
            return name
    return "null" if value is None else type(value).__name__
