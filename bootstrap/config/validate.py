"""Small syntactic checks shared by the cluster config and inventory readers."""

from __future__ import annotations

import ipaddress
import re

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_LABEL_ANY_CASE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def is_dns_subdomain(name: str) -> bool:
    """RFC 1123 subdomain, lowercase, as Kubernetes validates names and domains."""
    return 0 < len(name) <= 253 and all(_LABEL.match(p) for p in name.split("."))


def is_dns_name(name: str, *, wildcard: bool = False) -> bool:
    """A host name (any case, as DNS is case-insensitive); ``*.`` first label if allowed."""
    if wildcard and name.startswith("*."):
        name = name[2:]
    name = name.rstrip(".") if name.endswith(".") and len(name) > 1 else name
    return 0 < len(name) <= 253 and all(_LABEL_ANY_CASE.match(p) for p in name.split("."))


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_port(value: object) -> int:
    """A TCP port from an int or decimal string; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a port number")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"{value!r} is not a port number (1-65535)")
    return value


def split_host_port(text: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address; ValueError if not."""
    host, port = text, None
    if text.startswith("["):
        m = re.match(r"^\[([^\]]+)\](?::(.*))?$", text)
        if not m:
            raise ValueError(f"{text!r} has an unclosed '['")
        host = m.group(1)
        if m.group(2) is not None:
            port = parse_port(m.group(2))
        if not is_ip(host) or ipaddress.ip_address(host).version != 6:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address")
        return host, port
    if text.count(":") == 1:
        host, raw = text.split(":")
        port = parse_port(raw)
    elif text.count(":") > 1:
        if not is_ip(text):
            raise ValueError(f"{text!r} is not a host (write IPv6 with a port as [addr]:port)")
        return text, None
    if not (is_ip(host) or is_dns_name(host)):
        raise ValueError(f"{host!r} is neither an IP address nor a DNS name")
    return host, port
