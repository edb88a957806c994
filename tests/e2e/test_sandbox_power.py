"""`sandbox stop` / `sandbox start`: a power cut and a boot with the same IP and disk."""

from __future__ import annotations

import pytest
from e2e_names import sandbox_name
from etcd_helpers import cli

from bootstrap.sandbox import state

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(300)]

NAME = sandbox_name("cupow")


def ssh(cmd: str):
    return cli("sandbox", "ssh", NAME, "1", "--", cmd, timeout=60)


def test_stop_then_start_keeps_ip_and_disk(sandbox_factory):
    sandbox_factory(NAME, 2)
    try:
        _stop_then_start()
    finally:
        sandbox_factory.down(NAME)  # not kept for the session: no later test uses it


def _stop_then_start():
    before = state.load(NAME).hosts[f"{NAME}-1"]
    assert ssh("echo kept > /root/marker && hostname -I").stdout.split() == [before.ip]

    stopped = cli("sandbox", "stop", NAME, "1")
    assert stopped.returncode == 0, stopped.stderr
    s = state.load(NAME)
    assert s.hosts[f"{NAME}-1"].init_pid is None
    assert ssh("true").returncode != 0  # off: nothing answers
    # The other host is untouched and the address stays reserved (netns and veth kept).
    assert cli("sandbox", "ssh", NAME, "2", "--", "true").returncode == 0
    again = cli("sandbox", "stop", NAME, "1")
    assert again.returncode == 0 and "already off" in again.stderr

    started = cli("sandbox", "start", NAME, "1")
    assert started.returncode == 0, started.stderr
    r = ssh("cat /root/marker; hostname -I; systemctl is-system-running")
    assert r.stdout.split()[:2] == ["kept", before.ip]
    assert r.stdout.split()[2] in ("running", "degraded")


@pytest.mark.parametrize("args, needle", [
    (["stop", "nosuchbox", "1"], "no sandbox named"),
    (["start", "nosuchbox", "1"], "no sandbox named"),
    (["stop", "Bad_Name", "1"], "Bad_Name"),
])
def test_bad_names_are_one_line_exit_2(args, needle):
    r = cli("sandbox", *args)
    assert r.returncode == 2 and needle in r.stderr and r.stderr.count("\n") == 1, r.stderr
