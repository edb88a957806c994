"""kubespray inventories, read unchanged, resolved into cluster roles.

``load_inventory(path)`` reads an Ansible inventory (INI or YAML) and the
``group_vars/`` and ``host_vars/`` beside it, resolves variables with Ansible's
precedence and gives kubespray's groups their meaning: ``kube_control_plane``,
``kube_node``, ``etcd`` and ``k8s_cluster``. Other groups are ignored with a
note. Anything a cluster cannot be built from is a one-line ``UserError``
naming the file (and line) and the host or group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bootstrap.config import _yaml
from bootstrap.config._ini import parse_ini
from bootstrap.config._inv_yaml import parse_yaml_inventory
from bootstrap.config._raw import ALL, UNGROUPED, InventorySyntaxError, RawInventory, Vars
from bootstrap.config._vars_files import load_vars_dir
from bootstrap.config.validate import is_dns_name, is_dns_subdomain, is_ip, parse_port
from bootstrap.errors import UserError

__all__ = ["CONTROL_PLANE", "ETCD", "K8S_CLUSTER", "NODE", "Host", "Inventory", "load_inventory"]

CONTROL_PLANE = "kube_control_plane"
NODE = "kube_node"
ETCD = "etcd"
K8S_CLUSTER = "k8s_cluster"
# Names older kubespray releases used; still accepted, as kubespray did for a while.
LEGACY_GROUPS = {"kube-master": CONTROL_PLANE, "kube_master": CONTROL_PLANE,
                 "kube-node": NODE, "k8s-cluster": K8S_CLUSTER}
_USED_GROUPS = {ALL, UNGROUPED, CONTROL_PLANE, NODE, ETCD, K8S_CLUSTER, *LEGACY_GROUPS}
# Files `-i DIR` may mean, in the order kubespray's docs use them.
_DIR_CANDIDATES = ("hosts.yaml", "hosts.yml", "inventory.ini", "hosts.ini", "hosts",
                   "inventory.yaml", "inventory.yml")


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    port: int = 22
    user: str = "root"
    key_file: str | None = None
    ip: str | None = None
    access_ip: str | None = None
    etcd_member_name: str | None = None
    vars: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def node_ip(self) -> str:
        """The address cluster components bind to and advertise (kubespray's rule)."""
        return self.ip or self.access_ip or self.address


class Inventory:
    """A resolved inventory. ``hosts`` holds the cluster hosts (members of
    kube_control_plane, kube_node or etcd) in the order the file first lists them."""

    def __init__(self, *, path: Path, hosts: dict[str, Host], groups: dict[str, list[str]],
                 host_groups: dict[str, list[str]], host_vars: dict[str, dict[str, Any]],
                 warnings: list[str]):
        self.path = path
        self.dir = path.parent
        self.hosts = hosts
        # Ansible's `groups` magic variable, restricted to cluster hosts, with the
        # kubespray names always present (legacy names folded in).
        self.groups = groups
        self.warnings = warnings
        self._host_groups = host_groups
        self._host_vars = host_vars
        self.control_plane = [hosts[n] for n in groups[CONTROL_PLANE]]
        self.workers = [hosts[n] for n in groups[NODE]]
        self.etcd = [hosts[n] for n in groups[ETCD]]
        cp = set(groups[CONTROL_PLANE])
        self.topology = "stacked" if all(h.name in cp for h in self.etcd) else "external"

    @property
    def artifacts_dir(self) -> Path:
        """Cluster state kept beside the inventory, as kubespray's ``artifacts/``."""
        return self.dir / "artifacts"

    def vars_for(self, host_name: str) -> dict[str, Any]:
        """All variables of a host: group_vars all < groups < host_vars (Ansible's order)."""
        return dict(self._vars(host_name))

    def group_names(self, host_name: str) -> list[str]:
        """Ansible's ``group_names``: the host's groups, sorted, without all/ungrouped."""
        self._vars(host_name)
        return list(self._host_groups[host_name])

    def roles(self, host_name: str) -> list[str]:
        """The kubespray roles a host has, in a fixed order."""
        return [g for g in (CONTROL_PLANE, ETCD, NODE) if host_name in self.groups[g]]

    def _vars(self, host_name: str) -> dict[str, Any]:
        if host_name not in self._host_vars:
            raise KeyError(f"no host {host_name!r} in inventory {self.path}")
        return self._host_vars[host_name]


def load_inventory(path: str | os.PathLike) -> Inventory:
    """Read and resolve a kubespray inventory file (or a directory holding one)."""
    file = _inventory_file(Path(path))
    text = _yaml.read_text(file, "inventory")
    try:
        raw = _parse(text, str(file))
        return _Resolver(raw, file).resolve()
    except InventorySyntaxError as exc:
        raise UserError(exc.message, where=exc.where, hint=exc.hint) from None


def _inventory_file(path: Path) -> Path:
    if not path.exists():
        raise UserError("inventory not found", where=str(path), hint="check the -i path")
    if not path.is_dir():
        return path
    found = [path / n for n in _DIR_CANDIDATES if (path / n).is_file()]
    if len(found) != 1:
        what = "no inventory file" if not found else \
            f"several inventory files ({', '.join(f.name for f in found)})"
        raise UserError(f"{what} in this directory", where=str(path),
                        hint="pass the inventory file itself, e.g. -i DIR/hosts.yaml")
    return found[0]


def _parse(text: str, path: str) -> RawInventory:
    suffix = Path(path).suffix.lower()
    if suffix in (".yaml", ".yml", ".json"):
        return parse_yaml_inventory(text, path)
    if suffix in (".ini", ".cfg"):
        return parse_ini(text, path)
    # No telling extension (e.g. kubespray's old `hosts`): INI starts with a
    # section or a host line; YAML inventories start with a mapping key.
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("["):
            return parse_ini(text, path)
        if stripped.endswith(":") or stripped.startswith("---") or ": " in stripped:
            return parse_yaml_inventory(text, path)
        return parse_ini(text, path)
    return parse_ini(text, path)


class _Resolver:
    def __init__(self, raw: RawInventory, file: Path):
        self.raw = raw
        self.file = file
        self.path = str(file)
        self.warnings: list[str] = []

    def resolve(self) -> Inventory:
        groups = self.raw.groups
        parents: dict[str, list[str]] = {g: [] for g in groups}
        for g in groups.values():
            for child in g.children:
                parents[child].append(g.name)
        for name in groups:
            if name != ALL and not parents[name]:
                groups[ALL].add_child(name)
                parents[name].append(ALL)
        self._check_cycles()
        members = {g: self._members(g, set()) for g in groups}
        for host in self.raw.hosts:
            if not any(host in members[g] for g in groups if g not in (ALL, UNGROUPED)):
                groups[UNGROUPED].add_host(host)
                members[UNGROUPED].append(host)
        members[ALL] = list(self.raw.hosts)
        depth = self._depths(parents)
        host_groups_all = {h: [g for g in groups if h in members[g]] for h in self.raw.hosts}
        vars_ = {h: self._host_vars(h, host_groups_all[h], depth) for h in self.raw.hosts}

        role_members = {role: [] for role in (CONTROL_PLANE, NODE, ETCD, K8S_CLUSTER)}
        for name in groups:
            role = LEGACY_GROUPS.get(name, name)
            if role in role_members:
                for h in members[name]:
                    if h not in role_members[role]:
                        role_members[role].append(h)
                if name in LEGACY_GROUPS:
                    self.warnings.append(f"group {name!r} is deprecated; rename it to {role!r} "
                                         "(read as that for now)")
        ignored = [g for g in groups if g not in _USED_GROUPS]
        if ignored:
            self.warnings.append(f"group{'s' if len(ignored) > 1 else ''} "
                                 f"{', '.join(ignored)} not used by bootstrap; ignored")
        in_cluster = set(role_members[CONTROL_PLANE]) | set(role_members[NODE]) | \
            set(role_members[ETCD])
        order = [h for h in self.raw.hosts if h in in_cluster]
        left_out = [h for h in self.raw.hosts if h not in in_cluster]
        if left_out:
            self.warnings.append(f"host{'s' if len(left_out) > 1 else ''} {', '.join(left_out)} "
                                 "in no cluster group (kube_control_plane, kube_node, etcd); "
                                 "ignored")
        hosts = {h: self._host(h, vars_[h].values, vars_[h].where) for h in order}
        self._check_roles(role_members, hosts)
        self._check_unique(hosts, vars_, set(role_members[ETCD]))
        groups_var = {g: [h for h in members[g] if h in in_cluster] for g in groups}
        groups_var.update({role: [h for h in hs if h in in_cluster]
                           for role, hs in role_members.items()})
        host_groups = {h: sorted(g for g in host_groups_all[h] if g not in (ALL, UNGROUPED))
                       for h in order}
        return Inventory(path=self.file, hosts=hosts, groups=groups_var,
                         host_groups=host_groups, host_vars={h: vars_[h].values for h in order},
                         warnings=self.warnings)

    # -- group graph ---------------------------------------------------------
    def _check_cycles(self) -> None:
        state: dict[str, int] = {}  # 1 visiting, 2 done

        def visit(name: str, trail: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = trail[trail.index(name):] + [name]
                raise InventorySyntaxError(self.raw.groups[name].where,
                                           f"group {name!r} is its own descendant: "
                                           f"{' -> '.join(cycle)}",
                                           hint="remove one of these children entries")
            state[name] = 1
            for child in self.raw.groups[name].children:
                visit(child, trail + [name])
            state[name] = 2

        for name in self.raw.groups:
            visit(name, [])

    def _members(self, name: str, seen: set[str]) -> list[str]:
        # Ansible's order: the group's own hosts, then its descendants' hosts.
        group = self.raw.groups[name]
        result = list(group.hosts)
        for child in group.children:
            if child in seen:
                continue
            seen.add(child)
            for h in self._members(child, seen):
                if h not in result:
                    result.append(h)
        return result

    def _depths(self, parents: dict[str, list[str]]) -> dict[str, int]:
        depth: dict[str, int] = {}

        def of(name: str) -> int:
            if name not in depth:
                depth[name] = 0 if name == ALL else 1 + max(of(p) for p in parents[name])
            return depth[name]

        for name in parents:
            of(name)
        return depth

    # -- variables -----------------------------------------------------------
    def _host_vars(self, host: str, host_groups: list[str], depth: dict[str, int]) -> Vars:
        """Ansible's precedence: inventory vars of all < group_vars/all < inventory
        vars of the other groups < group_vars/<group> (both by depth, priority,
        name) < the host's inventory vars < host_vars/<host>."""
        base = self.file.parent
        groups = self.raw.groups
        result = Vars()
        result.update(_inline_group_vars(groups[ALL].vars))
        result.update(self._group_file_vars(base, ALL))
        others = [g for g in host_groups if g != ALL]
        others.sort(key=lambda g: (depth[g], _priority(groups[g].vars), g))
        for g in others:
            result.update(_inline_group_vars(groups[g].vars))
        for g in others:
            result.update(self._group_file_vars(base, g))
        result.update(self.raw.hosts[host])
        result.update(load_vars_dir(base / "host_vars", host))
        return result

    def _group_file_vars(self, base: Path, group: str) -> Vars:
        cache = self.__dict__.setdefault("_gv_cache", {})
        if group not in cache:
            cache[group] = load_vars_dir(base / "group_vars", group)
        return cache[group]

    # -- hosts ---------------------------------------------------------------
    def _host(self, name: str, values: dict[str, Any], where: dict[str, str]) -> Host:
        def fail(key: str | None, message: str, hint: str | None = None) -> UserError:
            at = where.get(key, self.raw.host_where[name]) if key else self.raw.host_where[name]
            return UserError(f"host {name}: {message}", where=at, hint=hint)

        def text(*keys: str) -> str | None:
            for key in keys:
                value = values.get(key)
                if value is None or value == "":
                    continue
                if not isinstance(value, str | int) or isinstance(value, bool):
                    raise fail(key, f"{key} must be a string, got {value!r}")
                if isinstance(value, str) and ("{{" in value or "{%" in value):
                    # Connection facts are needed before any play runs, so
                    # there is nothing to render the template against yet.
                    raise fail(key, f"{key} {value!r} is a Jinja template",
                               hint="write the literal value for connection variables")
                return str(value)
            return None

        address = text("ansible_host", "ansible_ssh_host") or name
        if not (is_ip(address) or is_dns_name(address)):
            raise fail("ansible_host", f"ansible_host {address!r} is neither an IP address nor "
                       "a host name")
        port = 22
        port_key = "ansible_port" if "ansible_port" in values else "ansible_ssh_port"
        if values.get(port_key) is not None:
            try:
                port = parse_port(values[port_key])
            except ValueError as exc:
                raise fail(port_key, f"{port_key}: {exc}") from None
        ips = {}
        for key in ("ip", "access_ip"):
            ips[key] = text(key)
            if ips[key] is not None and not is_ip(ips[key]):
                raise fail(key, f"{key} {ips[key]!r} is not an IP address",
                           hint="kubespray's ip/access_ip take addresses, not names")
        key_file = text("ansible_ssh_private_key_file", "ansible_private_key_file")
        return Host(
            name=name, address=address, port=port,
            user=text("ansible_user", "ansible_ssh_user") or "root",
            key_file=os.path.expanduser(key_file) if key_file else None,
            ip=ips["ip"], access_ip=ips["access_ip"],
            etcd_member_name=text("etcd_member_name"), vars=dict(values),
        )

    def _check_roles(self, roles: dict[str, list[str]], hosts: dict[str, Host]) -> None:
        for role in (CONTROL_PLANE, ETCD):
            if not roles[role]:
                where = self.raw.groups[role].where if role in self.raw.groups else self.path
                raise UserError(f"group {role} has no hosts", where=where,
                                hint=f"a cluster needs at least one {role} host")
        cp, etcd = set(roles[CONTROL_PLANE]), roles[ETCD]
        inside = [h for h in etcd if h in cp]
        outside = [h for h in etcd if h not in cp]
        if inside and outside:
            raise UserError(f"group etcd mixes control-plane hosts ({', '.join(inside)}) with "
                            f"others ({', '.join(outside)})", where=self._group_where(ETCD),
                            hint="stacked etcd: every etcd host in kube_control_plane; "
                            "external etcd: none of them")
        if len(etcd) % 2 == 0:
            self.warnings.append(f"etcd has {len(etcd)} members; an odd number tolerates as many "
                                 f"failures with one member less ({len(etcd) - 1} or "
                                 f"{len(etcd) + 1})")
        if K8S_CLUSTER not in roles or not roles[K8S_CLUSTER]:
            self.warnings.append("group k8s_cluster is missing; kubespray defines it with "
                                 "children kube_control_plane and kube_node "
                                 "(group_vars/k8s_cluster will not apply)")
        else:
            missing = [h for h in (*roles[CONTROL_PLANE], *roles[NODE])
                       if h not in roles[K8S_CLUSTER]]
            if missing:
                self.warnings.append(f"hosts {', '.join(dict.fromkeys(missing))} are not in "
                                     "k8s_cluster (group_vars/k8s_cluster will not apply)")
        for name in dict.fromkeys((*roles[CONTROL_PLANE], *roles[NODE])):
            if not is_dns_subdomain(name):
                raise UserError(f"host {name}: not a valid Kubernetes node name",
                                where=self.raw.host_where[name],
                                hint="use lowercase letters, digits, '-' and '.'")

    def _group_where(self, role: str) -> str:
        for name, group in self.raw.groups.items():
            if LEGACY_GROUPS.get(name, name) == role:
                return group.where
        return self.path

    def _check_unique(self, hosts: dict[str, Host], vars_: dict[str, Vars],
                      etcd: set[str]) -> None:
        checks = (("address", lambda h: (h.address, h.port), "ansible_host"),
                  ("ip", lambda h: h.ip, "ip"),
                  ("etcd_member_name",
                   lambda h: h.etcd_member_name if h.name in etcd else None,
                   "etcd_member_name"))
        for label, key_of, var in checks:
            seen: dict[Any, str] = {}
            for host in hosts.values():
                key = key_of(host)
                if key is None:
                    continue
                if key in seen:
                    shown = f"{key[0]}:{key[1]}" if isinstance(key, tuple) else key
                    at = vars_[host.name].where.get(var, self.raw.host_where[host.name])
                    raise UserError(f"host {host.name}: {label} {shown} is also used by host "
                                    f"{seen[key]}", where=at,
                                    hint="every host needs its own")
                seen[key] = host.name


def _priority(group_vars: Vars) -> int:
    try:
        return int(group_vars.values.get("ansible_group_priority", 1))
    except (TypeError, ValueError):
        return 1


def _inline_group_vars(group_vars: Vars) -> Vars:
    # Ansible turns ansible_group_priority into the group's sort priority, not a variable.
    if "ansible_group_priority" not in group_vars.values:
        return group_vars
    result = Vars()
    result.update(group_vars)
    del result.values["ansible_group_priority"], result.where["ansible_group_priority"]
    return result
