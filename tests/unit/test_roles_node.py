"""roles/containerd and roles/registry where they do not apply: only a mask, nothing else."""

from __future__ import annotations

import io

from rich.console import Console
from test_engine import inventory  # same dir: pytest puts it on sys.path

from bootstrap.engine import Play, run_play
from bootstrap.remote import Result
from bootstrap.remote.fake import FakeConnection

ENABLED_UNIT = Result(0, "LoadState=loaded\nUnitFileState=enabled\nActiveState=active\n"
                         "NeedDaemonReload=no\n", "")


def _run(roles, inv, conns):
    return run_play(Play("node", list(conns), roles), inv, conns, extra_vars={},
                    console=Console(file=io.StringIO(), width=200))


def test_hosts_outside_kubernetes_get_containerd_stopped_and_masked():
    # h1 is a node; h2 only runs etcd (external topology): no containerd there.
    inv = inventory(2, kube_node=["h1"], kube_control_plane=[], etcd=["h2"])
    etcd_only = FakeConnection("h2", {r"systemctl show": ENABLED_UNIT})
    recap = _run(["containerd"], inv, {"h2": etcd_only})
    recap.raise_on_failure()
    changes = [c for c in etcd_only.commands if not c.startswith("systemctl show")]
    assert changes == ["systemctl stop -- containerd.service",
                       "systemctl mask -- containerd.service"]


def test_registry_runs_only_on_the_registry_host():
    inv = inventory(2, kube_control_plane=["h1"], kube_node=["h1", "h2"])
    other = FakeConnection("h2", {r"systemctl show": ENABLED_UNIT})
    recap = _run(["registry"], inv, {"h2": other})
    recap.raise_on_failure()
    changes = [c for c in other.commands if not c.startswith("systemctl show")]
    assert changes == ["systemctl stop -- docker-registry.service",
                       "systemctl mask -- docker-registry.service"]
