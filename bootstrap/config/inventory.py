"""kubespray inventories, read unchanged, resolved into cluster roles.

``load_inventory(path)`` reads an Ansible inventory (INI or YAML) and the
``group_vars/`` and ``host_vars/`` beside it, resolves variables with Ansible's
precedence and gives kubespray's groups their meaning: ``kube_control_plane``,
``kube_node``, ``etcd`` and ``k8s_cluster``, which is defined as kubespray's
dynamic_groups role defines it when the inventory does not declare it (and
the deprecated names are folded into the current ones). ``bastion`` makes
its first host the SSH jump host of all others. Other groups are ignored
with a note. An executable file is an inventory script (``--list``).

etcd may run on any hosts: each host's ``etcd`` placement says whether it is
a control-plane host with a local member, an etcd member without a control
plane (its own host or a worker), or a control-plane host using the remote
members; ``Inventory.etcd_members`` is the whole member list the API servers
are given. Anything a cluster cannot be built from is a one-line ``UserError``
naming the file (and line) and the host or group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bootstrap.config import _yaml
from bootstrap.config._connection import (
    LOCAL,
    SSH,
    ConnectionError_,
    JumpHost,
    become,
    connection_type,
    jump_from_args,
    refuse_passwords,
)
from bootstrap.config._ini import parse_ini
from bootstrap.config._inv_yaml import parse_yaml_inventory
from bootstrap.config._raw import ALL, UNGROUPED, InventorySyntaxError, RawInventory, Vars
from bootstrap.config._script import is_script, parse_script
from bootstrap.config._vars_files import load_vars_dir
from bootstrap.config.validate import is_dns_name, is_dns_subdomain, is_ip, parse_port
from bootstrap.errors import UserError

__all__ = ["CONTROL_PLANE", "ETCD", "ETCD_LOCAL", "ETCD_MEMBER", "ETCD_REMOTE", "K8S_CLUSTER",
           "LOCAL", "NODE", "SSH", "EtcdMember", "Host", "Inventory", "JumpHost",
           "load_inventory"]

CONTROL_PLANE = "kube_control_plane"
NODE = "kube_node"
ETCD = "etcd"
K8S_CLUSTER = "k8s_cluster"
CALICO_RR = "calico_rr"
BASTION = "bastion"
# A host's etcd placement (Host.etcd):
ETCD_LOCAL = "local-member"  # control-plane host running an etcd member itself
ETCD_MEMBER = "member"  # etcd member without a control plane (etcd-only host or a worker)
ETCD_REMOTE = "remote-members"  # control-plane host whose API server uses other hosts' members
ETCD_CLIENT_PORT, ETCD_PEER_PORT = 2379, 2380
# Names older kubespray releases used; still accepted, as kubespray did for a while.
LEGACY_GROUPS = {"kube-master": CONTROL_PLANE, "kube_master": CONTROL_PLANE,
                 "kube-node": NODE, "k8s-cluster": K8S_CLUSTER}
_USED_GROUPS = {ALL, UNGROUPED, CONTROL_PLANE, NODE, ETCD, K8S_CLUSTER, BASTION, *LEGACY_GROUPS}
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
    # etcd placement: ETCD_LOCAL, ETCD_MEMBER, ETCD_REMOTE, or None (a worker without a member).
    etcd: str | None = None
    # "ssh", or "local" (ansible_connection=local: run on this machine without SSH).
    connection: str = SSH
    # Privilege escalation the remote layer applies to every change: with become,
    # commands run as become_user through ``sudo -n`` (keys and passwordless sudo only).
    become: bool = False
    become_user: str | None = None
    # Reach the host through this SSH jump host (ProxyJump), from
    # ansible_ssh_common_args/extra_args or kubespray's bastion group.
    jump_host: JumpHost | None = None

    @property
    def node_ip(self) -> str:
        """The address cluster components bind to and advertise (kubespray's rule)."""
        return self.ip or self.access_ip or self.address


@dataclass(frozen=True)
class EtcdMember:
    """One member of the cluster's etcd, as the API servers and peers address it."""

    name: str
    host: str
    ip: str

    @property
    def client_url(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"https://{host}:{ETCD_CLIENT_PORT}"

    @property
    def peer_url(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"https://{host}:{ETCD_PEER_PORT}"


class Inventory:
    """A resolved inventory. ``hosts`` holds the cluster hosts (members of
    kube_control_plane, kube_node or etcd) in the order the file first lists them."""

    def __init__(self, *, path: Path, hosts: dict[str, Host], groups: dict[str, list[str]],
                 host_groups: dict[str, list[str]], host_vars: dict[str, dict[str, Any]],
                 warnings: list[str], vars_where: dict[str, dict[str, str]] | None = None):
        self.path = path
        self.dir = path.parent
        self.hosts = hosts
        # Ansible's `groups` magic variable, restricted to cluster hosts, with the
        # kubespray names always present (legacy names folded in).
        self.groups = groups
        self.warnings = warnings
        self._host_groups = host_groups
        self._host_vars = host_vars
        self._vars_where = vars_where or {}
        self.control_plane = [hosts[n] for n in groups[CONTROL_PLANE]]
        self.workers = [hosts[n] for n in groups[NODE]]
        self.etcd = [hosts[n] for n in groups[ETCD]]
        cp, members = set(groups[CONTROL_PLANE]), set(groups[ETCD])
        # A summary of the per-host placements, for display and for callers that
        # only handle the two uniform layouts: "stacked" (the etcd hosts are
        # exactly the control-plane hosts), "external" (disjoint), else "mixed".
        self.topology = "stacked" if cp == members else \
            "external" if not cp & members else "mixed"

    @property
    def etcd_members(self) -> list[EtcdMember]:
        """Every etcd member in inventory order; the API servers get all of them."""
        return [EtcdMember(h.etcd_member_name or h.name, h.name, h.node_ip) for h in self.etcd]

    @property
    def etcd_servers(self) -> str:
        """The API servers' ``--etcd-servers``: every member's client URL."""
        return ",".join(m.client_url for m in self.etcd_members)

    @property
    def artifacts_dir(self) -> Path:
        """The cluster's state dir on the control machine (PKI, kubeconfigs, token):
        kubespray's ``artifacts_dir``, by default ``artifacts/`` beside the inventory."""
        from bootstrap.config.kubespray_vars import artifacts_dir

        return artifacts_dir(self)

    def vars_for(self, host_name: str) -> dict[str, Any]:
        """All variables of a host: group_vars all < groups < host_vars (Ansible's order)."""
        return dict(self._vars(host_name))

    def vars_where(self, host_name: str) -> dict[str, str]:
        """For each of the host's variables, the ``file:line`` that set its value."""
        self._vars(host_name)
        return dict(self._vars_where.get(host_name, {}))

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
    try:
        if is_script(file):
            raw = parse_script(file)
        else:
            raw = _parse(_yaml.read_text(file, "inventory"), str(file))
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
        self._dynamic_groups()
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
        # Ansible's reconcile: ungrouped holds exactly the hosts of no other group
        # (an INI file's hosts before the first section are only provisionally there).
        grouped = {h for g in groups if g not in (ALL, UNGROUPED) for h in members[g]}
        groups[UNGROUPED].hosts = [h for h in self.raw.hosts if h not in grouped]
        members[UNGROUPED] = list(groups[UNGROUPED].hosts)
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
        left_out = [h for h in self.raw.hosts if h not in in_cluster
                    and h not in members.get(BASTION, [])]
        if left_out:
            self.warnings.append(f"host{'s' if len(left_out) > 1 else ''} {', '.join(left_out)} "
                                 "in no cluster group (kube_control_plane, kube_node, etcd); "
                                 "ignored")
        self._check_roles(role_members)
        bastion = self._bastion(members.get(BASTION, []), vars_)
        placement = self._etcd_placement(role_members)
        hosts = {h: self._host(h, vars_[h].values, vars_[h].where, etcd=placement.get(h),
                               bastion=bastion) for h in order}
        self._check_unique(hosts, vars_, set(role_members[ETCD]))
        groups_var = {g: [h for h in members[g] if h in in_cluster] for g in groups}
        groups_var.update({role: [h for h in hs if h in in_cluster]
                           for role, hs in role_members.items()})
        host_groups = {h: sorted(g for g in host_groups_all[h] if g not in (ALL, UNGROUPED))
                       for h in order}
        return Inventory(path=self.file, hosts=hosts, groups=groups_var,
                         host_groups=host_groups, host_vars={h: vars_[h].values for h in order},
                         warnings=self.warnings,
                         vars_where={h: vars_[h].where for h in order})

    # -- group graph ---------------------------------------------------------
    def _dynamic_groups(self) -> None:
        """kubespray's dynamic_groups role, applied before anything is resolved:
        a deprecated group becomes a child of its current name, and k8s_cluster
        holds kube_control_plane, kube_node and calico_rr when the inventory does
        not declare it (so group_vars/k8s_cluster applies as in kubespray)."""
        groups = self.raw.groups
        declared_k8s = K8S_CLUSTER in groups or any(
            LEGACY_GROUPS.get(g) == K8S_CLUSTER for g in groups)
        for old, new in LEGACY_GROUPS.items():
            if old in groups and not self._descends(old, new):
                self.raw.group(new, groups[old].where).add_child(old)
        wanted = [g for g in (CONTROL_PLANE, NODE, CALICO_RR) if g in groups]
        if not declared_k8s:
            k8s = self.raw.group(K8S_CLUSTER, self.path)
            for g in wanted:
                k8s.add_child(g)
            return
        inside = self._hosts_of(K8S_CLUSTER)
        missing = [g for g in wanted if not self._descends(g, K8S_CLUSTER)
                   and not self._hosts_of(g) <= inside]
        for g in missing:
            groups[K8S_CLUSTER].add_child(g)
        if missing:
            self.warnings.append(f"k8s_cluster does not include {', '.join(missing)}; added, as "
                                 "kubespray's dynamic_groups does")

    def _hosts_of(self, name: str) -> set[str]:
        hosts: set[str] = set()
        todo, seen = [name], set()
        while todo:
            g = todo.pop()
            if g in seen or g not in self.raw.groups:
                continue
            seen.add(g)
            hosts.update(self.raw.groups[g].hosts)
            todo.extend(self.raw.groups[g].children)
        return hosts

    def _descends(self, ancestor: str, name: str) -> bool:
        """Whether ``name`` is ``ancestor`` or one of its descendants."""
        todo, seen = [ancestor], set()
        while todo:
            g = todo.pop()
            if g == name:
                return True
            if g in seen or g not in self.raw.groups:
                continue
            seen.add(g)
            todo.extend(self.raw.groups[g].children)
        return False

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
    def _host(self, name: str, values: dict[str, Any], where: dict[str, str], *,
              etcd: str | None = None, bastion: JumpHost | None = None) -> Host:
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
        user = text("ansible_user", "ansible_ssh_user") or "root"
        try:
            refuse_passwords(values)
            connection = connection_type(values.get("ansible_connection"))
            escalate, escalate_to = become(values, user)
            jump = bastion
            for var in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
                args = text(var)
                if not args:
                    continue
                own, unused = jump_from_args(var, args)
                jump = own or jump
                if unused:
                    self.warnings.append(f"host {name}: {var} options {' '.join(unused)} are "
                                         "not applied (only ProxyJump/-J/ProxyCommand are)")
        except ConnectionError_ as exc:
            raise fail(exc.var, exc.message, exc.hint) from None
        if connection == LOCAL:
            jump = None
        return Host(
            name=name, address=address, port=port, user=user,
            key_file=os.path.expanduser(key_file) if key_file else None,
            ip=ips["ip"], access_ip=ips["access_ip"],
            etcd_member_name=text("etcd_member_name"), vars=dict(values),
            etcd=etcd, connection=connection, become=escalate, become_user=escalate_to,
            jump_host=jump,
        )

    def _bastion(self, bastion_hosts: list[str], vars_: dict[str, Vars]) -> JumpHost | None:
        """kubespray's bastion: its first host, with its own user, port and key."""
        if not bastion_hosts:
            return None
        name = bastion_hosts[0]
        b = self._host(name, vars_[name].values, vars_[name].where)
        user = b.vars.get("ansible_user") or b.vars.get("ansible_ssh_user")
        return JumpHost(b.address, b.port, str(user) if user else None, b.key_file)

    @staticmethod
    def _etcd_placement(roles: dict[str, list[str]]) -> dict[str, str]:
        cp, members = set(roles[CONTROL_PLANE]), set(roles[ETCD])
        out = {h: ETCD_LOCAL if h in cp else ETCD_MEMBER for h in members}
        out.update({h: ETCD_REMOTE for h in cp if h not in members})
        return out

    def _check_roles(self, roles: dict[str, list[str]]) -> None:
        for role in (CONTROL_PLANE, ETCD):
            if not roles[role]:
                where = self.raw.groups[role].where if role in self.raw.groups else self.path
                raise UserError(f"group {role} has no hosts", where=where,
                                hint=f"a cluster needs at least one {role} host")
        etcd = roles[ETCD]
        if len(etcd) % 2 == 0:
            self.warnings.append(f"etcd has {len(etcd)} members; an odd number tolerates as many "
                                 f"failures with one member less ({len(etcd) - 1} or "
                                 f"{len(etcd) + 1})")
        for name in dict.fromkeys((*roles[CONTROL_PLANE], *roles[NODE])):
            if not is_dns_subdomain(name):
                raise UserError(f"host {name}: not a valid Kubernetes node name",
                                where=self.raw.host_where[name],
                                hint="use lowercase letters, digits, '-' and '.'")

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
