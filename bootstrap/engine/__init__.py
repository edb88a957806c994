"""Ansible-style role runner: tasks -> operations -> commands, over Connections.

Roles live in roles/<role>/{tasks,handlers,defaults,templates}; a task names
one operation (file, copy, template, systemd, package, command, wait_for,
plus set_fact/debug/assert/fail/meta). Operations read facts from the host
and yield commands only where it differs from the wanted state, so dry-run,
diff and "second run changes nothing" all come from one design.

    recap = run_play(Play("etcd", hosts=["etcd"], roles=["etcd"], serial=1),
                     inventory, connections, extra_vars={}, dry_run=False)
    recap.raise_on_failure()
"""

from bootstrap.engine.model import Failure, HostStats, Play, PlayFailed, Recap, Task
from bootstrap.engine.runner import run_play

__all__ = ["Failure", "HostStats", "Play", "PlayFailed", "Recap", "Task", "run_play"]
