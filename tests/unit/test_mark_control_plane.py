"""mark-control-plane waits for the node while the kubelet is coming up.

A kubelet that starts before its API server answers exits and is restarted by
systemd: `systemctl is-active` then says "activating", not "active". Treating
that as "no kubelet" skipped the marking on a slow first run, and the next
`cluster up` marked the node and reported a change.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bootstrap.flows import init_cluster
from bootstrap.remote.fake import FakeConnection
from bootstrap.remote.result import Result


class FakeAPI:
    def __init__(self, node_after: int):
        self.gets = 0
        self.node_after = node_after
        self.patches = []

    def get(self, resource, name, namespace=None):
        self.gets += 1
        if self.gets <= self.node_after:
            return None
        return {"metadata": {"name": name, "labels": {}}, "spec": {}}

    def wait(self, probe, timeout, interval=1.0, clock=None, sleep=None):
        deadline = clock() + timeout
        while not probe():
            if clock() >= deadline:
                return False
            sleep(interval)
        return True

    def patch(self, resource, name, body, namespace=None, patch_type="merge"):
        self.patches.append((name, body))


def _ctx(state: str, api: FakeAPI):
    conn = FakeConnection(responses={r"systemctl is-active kubelet": Result(3 if state != "active" else 0,
                                                                            state + "\n", "")})
    return SimpleNamespace(node_name="cp-2", dry_run=False, api=api, connection=conn, params={},
                           echo=lambda *_: None, changed=0)


@pytest.mark.parametrize("state", ["active", "activating", "reloading"])
def test_waits_for_a_kubelet_that_is_starting(state):
    now = [0.0]
    api = FakeAPI(node_after=5)
    ctx = _ctx(state, api)
    init_cluster.run_mark_control_plane(ctx, clock=lambda: now[0],
                                        sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert api.patches and api.patches[0][0] == "cp-2"
    assert ctx.changed == 1


@pytest.mark.parametrize("state", ["inactive", "failed", ""])
def test_does_not_wait_without_a_kubelet(state):
    now = [0.0]
    api = FakeAPI(node_after=10**6)
    ctx = _ctx(state, api)
    init_cluster.run_mark_control_plane(ctx, clock=lambda: now[0],
                                        sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert not api.patches and now[0] == 0.0
