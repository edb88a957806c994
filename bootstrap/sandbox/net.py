"""The sandbox network: one bridge per sandbox, one veth + netns per host.

The machine holds the bridge's .1 so the toolkit can SSH to hosts. Hosts get
no default route, and two FORWARD rules drop anything routed between the
bridge and the machine's other interfaces, so nothing leaves the machine.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from pathlib import Path

NETNS_DIR = Path("/run/netns")


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def link_exists(name: str, netns: str | None = None) -> bool:
    cmd = ["ip"] + (["-n", netns] if netns else []) + ["link", "show", "dev", name]
    return _run(*cmd, check=False).returncode == 0


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def _addrs(dev: str, netns: str | None = None) -> set[str]:
    cmd = ["ip"] + (["-n", netns] if netns else []) + ["-j", "-4", "addr", "show", "dev", dev]
    proc = _run(*cmd, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        return set()
    return {f"{a['local']}/{a['prefixlen']}" for i in json.loads(proc.stdout) for a in i.get("addr_info", [])}


def machine_ipv4_networks() -> set[str]:
    """Every IPv4 network configured on the machine, to avoid clashing subnets."""
    proc = _run("ip", "-j", "-4", "addr", "show", check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        return set()
    out = set()
    for iface in json.loads(proc.stdout):
        for a in iface.get("addr_info", []):
            out.add(str(ipaddress.IPv4Network(f"{a['local']}/{a['prefixlen']}", strict=False)))
    return out


def _forward_rules(bridge: str) -> list[list[str]]:
    return [
        ["FORWARD", "-i", bridge, "!", "-o", bridge, "-j", "DROP"],
        ["FORWARD", "-o", bridge, "!", "-i", bridge, "-j", "DROP"],
    ]


def ensure_bridge(bridge: str, cidr: str) -> None:
    if not link_exists(bridge):
        _run("ip", "link", "add", "name", bridge, "type", "bridge")
    if cidr not in _addrs(bridge):
        _run("ip", "addr", "add", cidr, "dev", bridge)
    _run("ip", "link", "set", bridge, "up")
    for rule in _forward_rules(bridge):
        if _run("iptables", "-w", "-C", *rule, check=False).returncode != 0:
            _run("iptables", "-w", "-I", *rule)


def delete_bridge(bridge: str) -> None:
    for rule in _forward_rules(bridge):
        while _run("iptables", "-w", "-C", *rule, check=False).returncode == 0:
            _run("iptables", "-w", "-D", *rule)
    if link_exists(bridge):
        _run("ip", "link", "del", bridge)


def ensure_host_net(netns: str, veth: str, bridge: str, cidr: str) -> None:
    """netns with lo up and eth0 = ``cidr``, its peer ``veth`` on the bridge."""
    if not netns_exists(netns):
        _run("ip", "netns", "add", netns)
    if not link_exists("eth0", netns):
        if link_exists(veth):
            _run("ip", "link", "del", veth)  # a half-made pair from a crashed up
        _run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
    _run("ip", "link", "set", veth, "master", bridge, "up")
    if cidr not in _addrs("eth0", netns):
        _run("ip", "-n", netns, "addr", "add", cidr, "dev", "eth0")
    _run("ip", "-n", netns, "link", "set", "lo", "up")
    _run("ip", "-n", netns, "link", "set", "eth0", "up")


def netns_inode(netns: str) -> int | None:
    try:
        return os.stat(NETNS_DIR / netns).st_ino
    except OSError:
        return None


def delete_host_net(netns: str, veth: str) -> None:
    # Deleting one end of a veth pair deletes both, even if the netns lingers
    # because some process still holds it.
    if link_exists(veth):
        _run("ip", "link", "del", veth, check=False)
    if netns_exists(netns):
        _run("ip", "netns", "del", netns)


def list_netns(prefix: str) -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))


def bridge_ports(bridge: str) -> list[str]:
    proc = _run("ip", "-j", "link", "show", "master", bridge, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        return []
    return [i["ifname"] for i in json.loads(proc.stdout)]
