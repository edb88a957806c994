"""The operations a task can name, by their task-file key."""

from __future__ import annotations

from collections.abc import Callable

from bootstrap.engine.ops.base import (
    Command,
    Diff,
    HostState,
    OpContext,
    OpError,
    OpGen,
    Upload,
)
from bootstrap.engine.ops.containerd import op_containerd_image
from bootstrap.engine.ops.etcd import op_etcd_member
from bootstrap.engine.ops.files import op_copy, op_file, op_template
from bootstrap.engine.ops.system import op_command, op_package, op_systemd
from bootstrap.engine.ops.users import op_group, op_user
from bootstrap.engine.ops.wait import op_wait_for

OPS: dict[str, Callable[[OpContext, dict], OpGen]] = {
    "file": op_file,
    "copy": op_copy,
    "template": op_template,
    "systemd": op_systemd,
    "service": op_systemd,
    "package": op_package,
    "apt": op_package,
    "command": op_command,
    "shell": op_command,
    "wait_for": op_wait_for,
    "user": op_user,
    "group": op_group,
    "containerd_image": op_containerd_image,
    "etcd_member": op_etcd_member,
}

# Handled by the runner itself: they touch play state, not the host.
CONTROL_OPS = {"set_fact", "fail", "assert", "debug", "meta"}

__all__ = [
    "CONTROL_OPS", "OPS", "Command", "Diff", "HostState", "OpContext", "OpError", "OpGen", "Upload",
]
