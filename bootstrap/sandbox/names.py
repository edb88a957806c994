"""Names and addresses of a sandbox, derived from its name alone.

Every kernel object a sandbox creates (bridge, veths, netns, cgroup dirs) is
named by a pure function of the sandbox and host names, so ``down`` can find
and remove them even when the state file was never written.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass

from bootstrap.errors import UserError

# Host names are ``<name>-<n>`` and ``<name>-etcd<m>``; 20 leaves room for
# the suffix inside a 63-char DNS label and keeps paths short.
MAX_NAME = 20
MAX_HOSTS = 50
MAX_ETCD_HOSTS = 9
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

SANDBOX_NET = ipaddress.IPv4Network("10.250.0.0/16")
CGROUP_ROOT = "bootstrap-sandbox"
# Host i gets .(HOST_BASE + i); the bridge (the machine's leg) is .1.
HOST_BASE = 10


def validate_name(name: str) -> str:
    if not name or len(name) > MAX_NAME or not _LABEL.match(name):
        raise UserError(
            f"invalid sandbox name {name!r}",
            where="sandbox",
            hint=f"use a DNS-1123 label: lowercase letters, digits and '-', at most {MAX_NAME} chars",
        )
    return name


@dataclass(frozen=True)
class HostPlan:
    name: str
    ip: str
    groups: tuple[str, ...]  # kubespray groups the host is a direct member of


def _short_hash(*parts: str, n: int = 8) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:n]


def bridge_name(sandbox: str) -> str:
    # IFNAMSIZ is 16 incl. NUL: 15 usable chars.
    candidate = f"bs-{sandbox}"
    return candidate if len(candidate) <= 15 else f"bs-{_short_hash(sandbox, n=12)}"


def veth_name(sandbox: str, host: str) -> str:
    return f"bsv{_short_hash(sandbox, host, n=12)}"


def netns_name(sandbox: str, host: str) -> str:
    # '.' never occurs in a DNS label, so names of different sandboxes cannot collide.
    return f"bs.{sandbox}.{host}"


def cgroup_relpath(sandbox: str, host: str | None = None) -> str:
    return f"{CGROUP_ROOT}/{sandbox}" + (f"/{host}" if host else "")


def plan_hosts(
    sandbox: str, hosts: int, etcd_hosts: int = 0, control_plane: int | None = None,
    subnet: str = "10.250.1.0/24",
) -> list[HostPlan]:
    """Lay out the hosts of a sandbox as in kubespray's sample inventory.

    The first ``control_plane`` (default min(3, hosts)) hosts run the control
    plane; every Kubernetes host is a node; etcd runs on the control-plane hosts
    (stacked) unless ``etcd_hosts`` separate hosts are asked for (external).
    """
    if not 1 <= hosts <= MAX_HOSTS:
        raise UserError(f"--hosts must be 1..{MAX_HOSTS}, got {hosts}", where="sandbox")
    if not 0 <= etcd_hosts <= MAX_ETCD_HOSTS:
        raise UserError(f"--etcd-hosts must be 0..{MAX_ETCD_HOSTS}, got {etcd_hosts}", where="sandbox")
    cp = min(3, hosts) if control_plane is None else control_plane
    if not 1 <= cp <= hosts:
        raise UserError(f"--control-plane must be 1..{hosts}, got {cp}", where="sandbox")
    net = ipaddress.IPv4Network(subnet)
    plans: list[HostPlan] = []
    for i in range(1, hosts + 1):
        groups = ["kube_node"]
        if i <= cp:
            groups.insert(0, "kube_control_plane")
            if etcd_hosts == 0:
                groups.append("etcd")
        plans.append(HostPlan(f"{sandbox}-{i}", str(net[HOST_BASE + i]), tuple(groups)))
    for j in range(1, etcd_hosts + 1):
        plans.append(HostPlan(f"{sandbox}-etcd{j}", str(net[HOST_BASE + MAX_HOSTS + j]), ("etcd",)))
    return plans


def allocate_subnet(used: set[str]) -> str:
    """The first /24 of 10.250.0.0/16 (skipping .0.0/24) that nothing else uses."""
    used_nets = [ipaddress.IPv4Network(u, strict=False) for u in used]
    for candidate in list(SANDBOX_NET.subnets(new_prefix=24))[1:]:
        if not any(candidate.overlaps(u) for u in used_nets):
            return str(candidate)
    raise UserError("no free /24 left in 10.250.0.0/16", where="sandbox",
                    hint="remove unused sandboxes with `bootstrap sandbox down`")


def bridge_cidr(subnet: str) -> str:
    net = ipaddress.IPv4Network(subnet)
    return f"{net[1]}/{net.prefixlen}"
