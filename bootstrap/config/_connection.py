"""How to reach and act on a host, from Ansible's connection variables.

Ansible's names are read as kubespray users write them: ``ansible_connection``
(``ssh``/``smart``/``paramiko`` are SSH, ``local`` is the control machine),
``ansible_become``/``ansible_become_user``/``ansible_become_method`` (sudo
only), ``ansible_ssh_common_args``/``ansible_ssh_extra_args`` (ProxyJump,
``-J`` and ``ProxyCommand ssh -W`` become a jump host) and kubespray's
``bastion`` group (every other host is reached through its first host, as
kubespray's bastion-ssh-config role writes ``ssh-bastion.conf``). Passwords
are refused: bootstrap authenticates with keys only.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from bootstrap.config.validate import split_host_port

SSH, LOCAL = "ssh", "local"
_SSH_CONNECTIONS = {"ssh": SSH, "smart": SSH, "paramiko": SSH, "paramiko_ssh": SSH,
                    "local": LOCAL}
PASSWORD_VARS = ("ansible_password", "ansible_ssh_pass", "ansible_ssh_password",
                 "ansible_become_password", "ansible_become_pass", "ansible_sudo_pass")
_TRUE = {"true", "yes", "on", "1", "y", "t"}
_FALSE = {"false", "no", "off", "0", "n", "f", ""}


@dataclass(frozen=True)
class JumpHost:
    """An SSH jump host (ProxyJump): connect to it first, then to the host."""

    address: str
    port: int = 22
    user: str | None = None  # None: the target host's user, as ssh -J does
    key_file: str | None = None  # None: the target host's key

    def spec(self) -> str:
        """``user@host:port`` as ``ssh -J`` takes it."""
        user = f"{self.user}@" if self.user else ""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{user}{host}:{self.port}"


class ConnectionError_(ValueError):
    """(variable, message, hint) for the inventory resolver to place."""

    def __init__(self, var: str, message: str, hint: str | None = None):
        super().__init__(message)
        self.var, self.message, self.hint = var, message, hint


def to_bool(var: str, value: object) -> bool:
    """Ansible's boolean conversion for inventory values."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConnectionError_(var, f"{var} {value!r} is not a boolean", hint="use true or false")


def connection_type(value: object) -> str:
    if value is None or value == "":
        return SSH
    kind = _SSH_CONNECTIONS.get(str(value))
    if kind is None:
        raise ConnectionError_("ansible_connection", f"ansible_connection {value!r} is not "
                               "supported", hint="use ssh (the default) or local")
    return kind


def refuse_passwords(values: dict) -> None:
    for var in PASSWORD_VARS:
        if values.get(var) not in (None, ""):
            raise ConnectionError_(var, f"{var} is set: bootstrap authenticates with SSH keys "
                                   "only", hint="remove it, set ansible_ssh_private_key_file "
                                   "and allow passwordless sudo for ansible_user")


def become(values: dict, user: str) -> tuple[bool, str | None]:
    """(become, become_user). kubespray is run with ``--become``, so a non-root
    ``ansible_user`` becomes root through sudo unless ``ansible_become`` is false."""
    raw = values.get("ansible_become", values.get("ansible_sudo"))
    on = to_bool("ansible_become", raw) if raw is not None else user != "root"
    method = values.get("ansible_become_method") or "sudo"
    if on and method != "sudo":
        raise ConnectionError_("ansible_become_method", f"ansible_become_method {method!r} is "
                               "not supported", hint="use sudo (the default)")
    target = str(values.get("ansible_become_user") or "root")
    return on, (target if on else None)


# Host-key options the SSH layer reads from the same variable itself
# (bootstrap.remote.pool: UserKnownHostsFile and StrictHostKeyChecking).
_APPLIED_ELSEWHERE = frozenset({"userknownhostsfile", "stricthostkeychecking"})


def jump_from_args(var: str, args: str) -> tuple[JumpHost | None, list[str]]:
    """The jump host named in ssh arguments, and the options we do not apply."""
    try:
        words = shlex.split(args)
    except ValueError as exc:
        raise ConnectionError_(var, f"{var}: cannot split {args!r}: {exc}") from None
    jump: JumpHost | None = None
    unused: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else None
        if word == "-J" and nxt:
            jump, i = _jump_spec(var, nxt.split(",")[-1]), i + 2
            continue
        if word == "-o" and nxt:
            option, i = nxt, i + 2
        elif word.startswith("-o") and len(word) > 2:
            option, i = word[2:], i + 1
        else:
            unused.append(word)
            i += 1
            continue
        key, _, value = option.replace("=", " ", 1).partition(" ")
        if key.lower() == "proxyjump":
            spec = value.strip().split(",")[-1]
            jump = None if spec.lower() == "none" else _jump_spec(var, spec)
        elif key.lower() == "proxycommand":
            jump = _proxy_command(var, value.strip())
        elif key.lower() not in _APPLIED_ELSEWHERE:
            unused.append(f"-o {option}")
    return jump, unused


def _jump_spec(var: str, spec: str) -> JumpHost:
    user, _, hostport = spec.rpartition("@")
    try:
        host, port = split_host_port(hostport)
    except ValueError as exc:
        raise ConnectionError_(var, f"{var}: jump host {spec!r}: {exc}") from None
    return JumpHost(host, port or 22, user or None)


def _proxy_command(var: str, command: str) -> JumpHost:
    # The classic bastion form: ssh [-W %h:%p] [-p port] [-i key] [-q] user@bastion
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise ConnectionError_(var, f"{var}: ProxyCommand {command!r}: {exc}") from None
    if not words or words[0] not in ("ssh", "/usr/bin/ssh") or "-W" not in words:
        raise ConnectionError_(var, f"{var}: ProxyCommand {command!r} is not 'ssh -W %h:%p "
                               "... bastion'", hint="use -o ProxyJump=user@bastion or the "
                               "kubespray bastion group")
    port, key, target = 22, None, None
    i = 1
    while i < len(words):
        w = words[i]
        if w in ("-W", "-p", "-i", "-F", "-l") and i + 1 < len(words):
            if w == "-p":
                port = int(words[i + 1]) if words[i + 1].isdigit() else port
            elif w == "-i":
                key = words[i + 1]
            i += 2
        elif w == "-o" and i + 1 < len(words):
            i += 2
        elif w.startswith("-"):
            i += 1
        else:
            target = w
            i += 1
    if target is None:
        raise ConnectionError_(var, f"{var}: ProxyCommand {command!r} names no bastion host")
    jump = _jump_spec(var, target)
    return JumpHost(jump.address, jump.port if jump.port != 22 else port, jump.user, key)
