"""kubespray's cluster variables as the cluster configuration.

``effective_config(inventory, config_path)`` is the configuration a run uses.
Precedence, lowest first:

1. bootstrap's defaults (kubeadm's);
2. kubespray variables of the inventory (group_vars/k8s_cluster, all, ...),
   read from the first control-plane host (they are cluster-wide: a variable
   that differs between cluster hosts is an error);
3. the fields the ``--config`` file sets (fields it leaves out keep 2 or 1);
   where both set a field to different values the file wins, with a warning.

Every effective value carries its origin, which ``bootstrap inventory check``
prints. ``{{ other_var }}`` references between variables are rendered (as in
kubespray's sample: ``kube_cert_dir: "{{ kube_config_dir }}/ssl"``); any other
Jinja (filters, lookups) in a variable we read is an error naming it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox

from bootstrap.config import _yaml
from bootstrap.config.cluster import dump_cluster_config, load_cluster_config, parse_document
from bootstrap.config.inventory import Inventory
from bootstrap.config.model import ClusterConfig
from bootstrap.config.serial import DEFAULT_SERIAL, KUBESPRAY_DEFAULT, Serial, parse_serial
from bootstrap.config.validate import is_dns_name, is_ip, parse_port
from bootstrap.errors import UserError

__all__ = ["KUBESPRAY_VARS", "EffectiveConfig", "Setting", "artifacts_dir", "effective_config"]

# variable -> the configuration field it sets (our YAML path; the last four
# are not in the YAML file: they exist only as kubespray settings).
KUBESPRAY_VARS = {
    "cluster_name": "clusterName",
    "kube_service_addresses": "networking.serviceSubnet",
    "kube_pods_subnet": "networking.podSubnet",
    "dns_domain": "networking.dnsDomain",
    "kube_network_node_prefix": "controllerManager.extraArgs.node-cidr-mask-size",
    "etcd_data_dir": "etcd.local.dataDir",
    "kube_cert_dir": "certificatesDir",
    "kube_apiserver_port": "localAPIEndpoint.bindPort",
    "loadbalancer_apiserver": "controlPlaneEndpoint",
    "apiserver_loadbalancer_domain_name": "controlPlaneEndpoint",
    "supplementary_addresses_in_ssl_keys": "apiServer.certSANs",
    "kube_config_dir": "kubeConfigDir",
    "loadbalancer_apiserver_localhost": "localhostLoadBalancer",
    "kube_network_plugin": "networkPlugin",
    "serial": "upgradeSerial",  # upgrade-cluster.yml's workers; `cluster upgrade --serial`
}
# kubespray variables bootstrap reads only to say what it does instead (one note each,
# in the warnings `cluster up` and `inventory check` print): var -> (applies, note).
NOTED_VARS = {
    # kubespray's cluster.yml upgrades with it; ours never does.
    "upgrade_cluster_setup": (
        lambda value: _bool(value),
        "is true: cluster up does not upgrade; upgrades are done by "
        "`bootstrap cluster upgrade -i {inventory} --to VERSION`"),
}
NETWORK_PLUGINS = ("cni",)  # the standard bridge plugin, configured by our kubelet
DEFAULT_LB_DOMAIN = "lb-apiserver.kubernetes.local"  # kubespray's default


@dataclass(frozen=True)
class Setting:
    value: Any
    source: str  # "default", "--config FILE[:LINE]" or "VAR (FILE:LINE)"


@dataclass(frozen=True)
class EffectiveConfig:
    config: ClusterConfig
    # Where kubespray keeps kubeconfigs and manifests (kube_config_dir); bootstrap
    # installs under /etc/kubernetes, so a different value needs the flows to use it.
    kube_config_dir: str = "/etc/kubernetes"
    # kubespray's loadbalancer_apiserver_localhost: an haproxy on 127.0.0.1 on
    # every node in front of all API servers (true unless an external LB is named).
    localhost_load_balancer: bool = True
    network_plugin: str = "cni"
    # kubespray's serial (upgrade-cluster.yml's workers per batch); `cluster upgrade
    # --serial` wins. Our default is 1 host, kubespray's 20%.
    upgrade_serial: Serial = DEFAULT_SERIAL
    sources: dict[str, Setting] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _read(inv: Inventory) -> dict[str, tuple[Any, str]]:
    """The kubespray variables set for the cluster: var -> (value, where)."""
    hosts = [h.name for h in inv.control_plane] or list(inv.hosts)
    first = hosts[0]
    values = inv.vars_for(first)
    where = inv.vars_where(first)
    out: dict[str, tuple[Any, str]] = {}
    unset = object()
    for var in KUBESPRAY_VARS:
        mine = values.get(var, unset)
        for other in inv.groups.get("k8s_cluster", []):
            theirs = inv.vars_for(other).get(var, unset)
            if theirs != mine:
                shown = "unset" if mine is unset else repr(mine)
                at = inv.vars_where(other).get(var) or where.get(var) or str(inv.path)
                raise UserError(f"{var} is {'unset' if theirs is unset else repr(theirs)} for "
                                f"host {other} but {shown} for {first}", where=at,
                                hint="cluster-wide settings must be the same on every host; "
                                "set it in group_vars/k8s_cluster")
        if mine is not unset:
            out[var] = (_render(var, mine, values, where.get(var)), where.get(var, "?"))
    return out


_ENV = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined)


def _render(var: str, value: Any, context: dict[str, Any], where: str | None) -> Any:
    for _ in range(10):
        if not isinstance(value, str) or ("{{" not in value and "{%" not in value):
            return value
        try:
            value = _ENV.from_string(value).render(context)
        except jinja2.TemplateError as exc:
            raise UserError(f"{var}: {value!r} is a Jinja expression bootstrap cannot evaluate "
                            f"({exc})", where=where, hint="write the literal value") from None
    raise UserError(f"{var}: references nest too deep", where=where)


def _origin(var: str, where: str) -> str:
    return f"{var} ({where})"


def effective_config(inv: Inventory, config_path: str | None = None) -> EffectiveConfig:
    """The configuration a run uses: defaults < kubespray variables < --config file."""
    kv = _read(inv)
    doc: dict[str, Any] = {}
    origins: dict[str, str] = {}
    warnings: list[str] = []

    def put(path: str, value: Any, var: str) -> None:
        node = doc
        *head, last = path.split(".")
        for key in head:
            node = node.setdefault(key, {})
        node[last] = value
        origins.setdefault(path, _origin(var, kv[var][1]))

    def fail(var: str, message: str, hint: str | None = None) -> UserError:
        return UserError(f"{var}: {message}", where=kv[var][1], hint=hint)

    plugin = "cni"
    if "kube_network_plugin" in kv:
        plugin = str(kv["kube_network_plugin"][0])
        if plugin not in NETWORK_PLUGINS:
            raise fail("kube_network_plugin", f"{plugin!r} is not supported by bootstrap",
                       hint="set kube_network_plugin: cni, the standard bridge plugin "
                       "that bootstrap configures")
    for var, path in (("cluster_name", "clusterName"),
                      ("kube_service_addresses", "networking.serviceSubnet"),
                      ("kube_pods_subnet", "networking.podSubnet"),
                      ("dns_domain", "networking.dnsDomain"),
                      ("etcd_data_dir", "etcd.local.dataDir"),
                      ("kube_cert_dir", "certificatesDir")):
        if var in kv:
            put(path, str(kv[var][0]), var)
    if "cluster_name" in kv and "dns_domain" not in kv:
        # kubespray's default: dns_domain: "{{ cluster_name }}"
        put("networking.dnsDomain", str(kv["cluster_name"][0]), "cluster_name")
    if "kube_network_node_prefix" in kv:
        put("controllerManager.extraArgs", [{"name": "node-cidr-mask-size",
                                             "value": str(kv["kube_network_node_prefix"][0])}],
            "kube_network_node_prefix")
    bind_port = 6443
    if "kube_apiserver_port" in kv:
        try:
            bind_port = parse_port(kv["kube_apiserver_port"][0])
        except ValueError as exc:
            raise fail("kube_apiserver_port", str(exc)) from None
    sans: list[str] = []
    lb = kv.get("loadbalancer_apiserver", (None, ""))[0]
    if lb is not None:
        if not isinstance(lb, dict) or not lb.get("address"):
            raise fail("loadbalancer_apiserver", "needs an address (and optionally a port)",
                       hint="e.g. loadbalancer_apiserver: {address: 10.0.0.10, port: 6443}")
        address = str(lb["address"])
        if not (is_ip(address) or is_dns_name(address)):
            raise fail("loadbalancer_apiserver", f"address {address!r} is neither an IP "
                       "address nor a host name")
        try:
            port = parse_port(lb.get("port", bind_port))
        except ValueError as exc:
            raise fail("loadbalancer_apiserver", f"port: {exc}") from None
        # kubespray reaches the balancer by apiserver_loadbalancer_domain_name, which
        # it writes into /etc/hosts; we name the domain only when the user set one.
        name = kv.get("apiserver_loadbalancer_domain_name", (None, ""))[0]
        host = str(name) if name else address
        put("controlPlaneEndpoint", f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
            "apiserver_loadbalancer_domain_name" if name else "loadbalancer_apiserver")
        sans += [address] + ([str(name)] if name else [])
    elif kv.get("apiserver_loadbalancer_domain_name", (None, ""))[0]:
        # Without a balancer kubespray still puts the name in the API server's SANs.
        sans.append(str(kv["apiserver_loadbalancer_domain_name"][0]))
    extra = kv.get("supplementary_addresses_in_ssl_keys", (None, ""))[0]
    if extra is not None:
        if isinstance(extra, str) or not isinstance(extra, list):
            raise fail("supplementary_addresses_in_ssl_keys", "must be a list of names or "
                       "addresses", hint="e.g. [10.0.0.1, api.example.com]")
        sans += [str(s) for s in extra]
    if sans:
        put("apiServer.certSANs", list(dict.fromkeys(sans)),
            "supplementary_addresses_in_ssl_keys" if extra is not None
            else "loadbalancer_apiserver" if lb is not None
            else "apiserver_loadbalancer_domain_name")

    # The --config file's own fields win over the inventory's.
    file_doc: dict[str, Any] = {}
    file_cfg: ClusterConfig | None = None
    if config_path is not None:
        file_cfg = load_cluster_config(config_path, log_warnings=False)
        warnings += list(file_cfg.warnings)
        file_doc = _cluster_doc(config_path, file_cfg)
    if "etcd" in file_doc:  # local and external exclude each other: the file decides
        doc.pop("etcd", None)
    explicit = set(_paths(file_doc))
    merged = _merge(doc, file_doc)
    for path in sorted(set(_paths(doc)) & explicit):
        mine, theirs = _get(doc, path), _get(file_doc, path)
        if mine != theirs:
            warnings.append(f"{path}: --config {config_path} sets {theirs!r}, overriding "
                            f"{origins.get(path, path)} = {mine!r}")
    source = config_path or str(inv.path)
    merged.setdefault("apiVersion", "bootstrap.dev/v1alpha1")
    merged.setdefault("kind", "ClusterConfiguration")
    try:
        cfg = parse_document(merged, source)
    except UserError as exc:
        var = next((v for v, p in KUBESPRAY_VARS.items() if v in kv and exc.message.startswith(
            p.split(".extraArgs")[0])), None)
        if var is None:
            raise
        raise UserError(f"{var}: {exc.message}", where=kv[var][1], hint=exc.hint) from None
    bind_origin = None
    if file_cfg is not None and file_cfg.bind_port != ClusterConfig().bind_port:
        bind_port = file_cfg.bind_port  # the file's InitConfiguration.localAPIEndpoint
        bind_origin = f"--config {config_path}"
    cfg = dataclasses.replace(cfg, bind_port=bind_port)

    kube_config_dir = str(kv.get("kube_config_dir", ("/etc/kubernetes", ""))[0])
    if not kube_config_dir.startswith("/"):
        raise fail("kube_config_dir", f"{kube_config_dir!r} is not an absolute path")
    # It becomes a link to /etc/kubernetes: one inside it would point at itself.
    if kube_config_dir.rstrip("/").startswith("/etc/kubernetes/"):
        raise fail("kube_config_dir", f"{kube_config_dir!r} is inside /etc/kubernetes")
    localhost_lb = lb is None
    if "loadbalancer_apiserver_localhost" in kv:
        raw = kv["loadbalancer_apiserver_localhost"][0]
        localhost_lb = _bool(raw)
    serial = DEFAULT_SERIAL
    if "serial" in kv:
        try:
            serial = parse_serial(kv["serial"][0])
        except ValueError as exc:
            raise fail("serial", str(exc), hint=f"e.g. serial: 2, or serial: {KUBESPRAY_DEFAULT} "
                       "as kubespray's default") from None

    warnings += _notes(inv)

    sources: dict[str, Setting] = {}
    flat = _paths(merged)
    defaults = _paths(_default_doc())
    for path in sorted(set(flat) | set(defaults)):
        if path in ("apiVersion", "kind"):
            continue
        if path in explicit:
            origin = f"--config {config_path}"
        else:
            origin = origins.get(path) or next(
                (o for p, o in origins.items() if path.startswith(p + ".")), "default")
        sources[path] = Setting(_get(merged, path) if path in flat else defaults[path], origin)
    for path, var, value, default in (
            ("localAPIEndpoint.bindPort", "kube_apiserver_port", bind_port, 6443),
            ("kubeConfigDir", "kube_config_dir", kube_config_dir, "/etc/kubernetes"),
            ("localhostLoadBalancer", "loadbalancer_apiserver_localhost", localhost_lb, True),
            ("networkPlugin", "kube_network_plugin", plugin, "cni"),
            ("upgradeSerial", "serial", str(serial), str(DEFAULT_SERIAL))):
        origin = _origin(var, kv[var][1]) if var in kv else "default"
        if path == "localAPIEndpoint.bindPort" and bind_origin:
            origin = bind_origin
        if var not in kv and path == "localhostLoadBalancer" and lb is not None:
            origin = _origin("loadbalancer_apiserver", kv["loadbalancer_apiserver"][1])
        sources[path] = Setting(value if origin != "default" else default, origin)
    return EffectiveConfig(config=cfg, kube_config_dir=kube_config_dir,
                           localhost_load_balancer=localhost_lb, network_plugin=plugin,
                           upgrade_serial=serial, sources=sources, warnings=warnings)


def _notes(inv: Inventory) -> list[str]:
    """One line for each NOTED_VARS variable the cluster sets (first control-plane host)."""
    hosts = [h.name for h in inv.control_plane] or list(inv.hosts)
    if not hosts:
        return []
    values, where = inv.vars_for(hosts[0]), inv.vars_where(hosts[0])
    return [f"{var} ({where.get(var, inv.path)}) "
            + note.format(inventory=inv.path)
            for var, (applies, note) in NOTED_VARS.items()
            if var in values and applies(values[var])]


def _bool(raw: Any) -> bool:
    """An Ansible boolean as YAML or INI gives it (true, "yes", "1", ...)."""
    return raw if isinstance(raw, bool) else str(raw).lower() in ("true", "yes", "1")


def _cluster_doc(path: str, cfg: ClusterConfig) -> dict:
    """The fields the file's ClusterConfiguration sets, as ours (kubeadm's
    documents mapped, unimplemented fields left out)."""
    import yaml

    docs = [d for d in _yaml.load_all(_yaml.read_text(path, "config file"), str(path))
            if isinstance(d, dict) and d.get("kind") == "ClusterConfiguration"]
    if not docs:
        return {}
    ours = yaml.safe_load(dump_cluster_config(cfg))
    out: dict[str, Any] = {}
    for p in _paths(docs[0]):
        if p in ("apiVersion", "kind"):
            continue
        try:
            value = _get(ours, p)
        except (KeyError, TypeError):
            continue  # not a field bootstrap implements (a warning named it)
        node = out
        *head, last = p.split(".")
        for key in head:
            node = node.setdefault(key, {})
        node[last] = value
    return out


def _default_doc() -> dict:
    import yaml

    from bootstrap.config.cluster import default_config
    return yaml.safe_load(dump_cluster_config(default_config()))


def _paths(doc: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf paths of a document; lists and extraArgs count as leaves."""
    out: dict[str, Any] = {}
    if not isinstance(doc, dict):
        return out
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key != "extraArgs":
            out.update(_paths(value, path + "."))
        else:
            out[path] = value
    return out


def _get(doc: dict, path: str) -> Any:
    node: Any = doc
    for key in path.split("."):
        node = node[key]
    return node


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "extraArgs":
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def artifacts_dir(inv: Inventory) -> Path:
    """The cluster's state dir on the control machine: kubespray's ``artifacts_dir``
    (its default, ``{{ inventory_dir }}/artifacts``, is ours too). A relative path
    is taken from the inventory's directory, as Ansible does with ``inventory_dir``."""
    hosts = [h.name for h in inv.control_plane] or list(inv.hosts)
    default = Path(inv.dir) / "artifacts"
    if not hosts:
        return default
    values = inv.vars_for(hosts[0])
    raw = values.get("artifacts_dir")
    if raw is None:
        path = default
    else:
        where = inv.vars_where(hosts[0]).get("artifacts_dir")
        context = {**values, "inventory_dir": str(inv.dir)}
        text = _render("artifacts_dir", raw, context, where)
        if not isinstance(text, str) or not text.strip():
            raise UserError("artifacts_dir: must be a directory path", where=where)
        path = Path(os.path.expanduser(text.strip()))
        if not path.is_absolute():
            path = Path(inv.dir) / path
    # The package may be read-only or replaced by an upgrade: state never lives there.
    package = Path(__file__).resolve().parents[1]
    resolved = path.resolve()
    if resolved == package or package in resolved.parents:
        raise UserError(f"the cluster's state dir {path} is inside the bootstrap package",
                        where=str(inv.path), hint="set artifacts_dir to a directory of your own")
    return path
