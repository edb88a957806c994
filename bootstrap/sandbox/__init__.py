"""Sandbox hosts: machines made of Linux namespaces on this machine.

Public API::

    up(name, hosts, etcd_hosts=0, control_plane=None, *, log=None) -> Path   # inventory
    down(name, *, log=None) -> bool                                          # True if removed
    list_sandboxes() -> list[SandboxInfo(name, hosts, network, state)]
    paths(name) -> {"dir", "key", "known_hosts", "inventory", "hosts"}

Each host has its own network namespace on the sandbox's bridge, an overlay
root over the machine's ``/``, its own hostname and machine-id, systemd as
PID 1 inside PID and cgroup namespaces, and sshd that accepts the key in
``paths(name)["key"]``. See docs/sandbox.md.
"""

from bootstrap.sandbox.lifecycle import SandboxInfo, down, list_sandboxes, paths, up

__all__ = ["SandboxInfo", "down", "list_sandboxes", "paths", "up"]
