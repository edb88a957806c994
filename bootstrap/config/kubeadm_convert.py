"""``config migrate`` (kubeadm v1beta3 -> v1beta4) and the ``config print`` defaults.

Migration does what kubeadm's v1beta3->v1beta4 conversion does to the fields
a file sets: every ``extraArgs`` map (etcd.local, apiServer,
controllerManager, scheduler) and ``nodeRegistration.kubeletExtraArgs``
becomes a list of ``{name, value}`` sorted by name;
``apiServer.timeoutForControlPlane`` moves to
``timeouts.controlPlaneComponentHealthCheck`` of the InitConfiguration (added
if the file has none) and of the JoinConfiguration; ``discovery.timeout``
moves to ``JoinConfiguration.timeouts.discovery``. Component configs pass
through. Unlike kubeadm, unset fields are not filled with defaults, and
comments are not kept.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from bootstrap.config import _yaml
from bootstrap.config._kubeadm_schema import KUBELET_API, PROXY_API, V1BETA3, V1BETA4
from bootstrap.config.cluster import default_config, dump_cluster_config
from bootstrap.config.model import API_VERSION
from bootstrap.errors import UserError

__all__ = ["COMPONENT_CONFIGS", "DEFAULTS", "migrate", "print_defaults"]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _args_list(args: Any) -> Any:
    if isinstance(args, dict):
        return [{"name": str(k), "value": str(v)} for k, v in sorted(args.items())]
    return args


def migrate(text: str, source: str) -> str:
    docs = [d for d in _yaml.load_all(text, source) if d is not None]
    if not docs:
        raise UserError("the file is empty", where=source)
    out: list[dict] = []
    timeout = None
    for doc in docs:
        if not isinstance(doc, dict):
            raise UserError("expected a mapping with apiVersion and kind",
                            where=_yaml.where(source, doc))
        api = doc.get("apiVersion")
        if api == API_VERSION:
            raise UserError(f"already bootstrap's own {API_VERSION}; nothing to migrate",
                            where=_yaml.where(source, doc, "apiVersion"))
        if api not in (V1BETA3, V1BETA4, KUBELET_API, PROXY_API):
            raise UserError(f"apiVersion {api!r} cannot be migrated",
                            where=_yaml.where(source, doc, "apiVersion"),
                            hint=f"give a {V1BETA3} file")
        d = copy.deepcopy(_plain(doc))
        if api == V1BETA3:
            d["apiVersion"] = V1BETA4
            kind = d.get("kind")
            if kind == "ClusterConfiguration":
                api_server = d.get("apiServer") or {}
                timeout = api_server.pop("timeoutForControlPlane", None)
                for comp in ("apiServer", "controllerManager", "scheduler"):
                    if isinstance(d.get(comp), dict) and "extraArgs" in d[comp]:
                        d[comp]["extraArgs"] = _args_list(d[comp]["extraArgs"])
                local = (d.get("etcd") or {}).get("local")
                if isinstance(local, dict) and "extraArgs" in local:
                    local["extraArgs"] = _args_list(local["extraArgs"])
            elif kind in ("InitConfiguration", "JoinConfiguration"):
                reg = d.get("nodeRegistration")
                if isinstance(reg, dict) and "kubeletExtraArgs" in reg:
                    reg["kubeletExtraArgs"] = _args_list(reg["kubeletExtraArgs"])
                discovery = d.get("discovery")
                if kind == "JoinConfiguration" and isinstance(discovery, dict) \
                        and "timeout" in discovery:
                    d.setdefault("timeouts", {})["discovery"] = discovery.pop("timeout")
        out.append(d)
    if timeout is not None:
        kinds = [d.get("kind") for d in out]
        if "InitConfiguration" not in kinds:
            out.insert(0, {"apiVersion": V1BETA4, "kind": "InitConfiguration"})
        for d in out:
            if d.get("kind") in ("InitConfiguration", "JoinConfiguration"):
                d.setdefault("timeouts", {})["controlPlaneComponentHealthCheck"] = timeout
    return "---\n".join(yaml.safe_dump(d, sort_keys=False, default_flow_style=False)
                        for d in out)


# What `config print *-defaults` shows: the fields bootstrap implements, with
# its defaults (kubeadm's where they agree).
_TOKEN = "abcdef.0123456789abcdef"
DEFAULTS = {
    "init": {"apiVersion": V1BETA4, "kind": "InitConfiguration",
             "bootstrapTokens": [{"token": _TOKEN}],
             "localAPIEndpoint": {"advertiseAddress": "1.2.3.4", "bindPort": 6443},
             "nodeRegistration": {"name": "node"}, "skipPhases": []},
    "join": {"apiVersion": V1BETA4, "kind": "JoinConfiguration",
             "discovery": {"bootstrapToken": {"apiServerEndpoint": "kube-apiserver:6443",
                                              "token": _TOKEN,
                                              "unsafeSkipCAVerification": True},
                           "tlsBootstrapToken": _TOKEN},
             "nodeRegistration": {"name": "node"}, "skipPhases": []},
    "reset": {"apiVersion": V1BETA4, "kind": "ResetConfiguration",
              "certificatesDir": "/etc/kubernetes/pki", "force": False, "skipPhases": []},
    "upgrade": {"apiVersion": V1BETA4, "kind": "UpgradeConfiguration",
                "apply": {"certificateRenewal": True, "etcdUpgrade": True, "skipPhases": []}},
}


def _component_defaults() -> dict[str, dict]:
    net = default_config().networking
    dns = str(net.service_networks[0].network_address + 10)  # kubeadm's clusterDNS
    return {
        "KubeletConfiguration": {"apiVersion": KUBELET_API, "kind": "KubeletConfiguration",
                                 "clusterDNS": [dns], "clusterDomain": net.dns_domain,
                                 "rotateCertificates": True,
                                 "staticPodPath": "/etc/kubernetes/manifests"},
        "KubeProxyConfiguration": {"apiVersion": PROXY_API, "kind": "KubeProxyConfiguration",
                                   "mode": "iptables", "clusterCIDR": net.pod_subnet},
    }


COMPONENT_CONFIGS = tuple(_component_defaults())


def print_defaults(which: str, components: list[str]) -> str:
    """``init`` prints our ClusterConfiguration and kubeadm's InitConfiguration."""
    comps = _component_defaults()
    for name in components:
        if name not in comps:
            raise UserError(f"--component-configs: unknown component config {name!r}",
                            hint=f"use {', '.join(comps)}")
    parts = []
    if which == "init":
        parts.append(dump_cluster_config(default_config()))
    parts.append(yaml.safe_dump(DEFAULTS[which], sort_keys=False))
    parts += [yaml.safe_dump(comps[name], sort_keys=False) for name in components]
    return "---\n".join(parts)
