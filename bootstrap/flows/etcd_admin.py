"""``bootstrap etcd ...``: status and snapshots for the etcd of an inventory.

Loads the inventory, connects to its etcd hosts and calls ``bootstrap.flows.etcd``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bootstrap.config.cluster import load_cluster_config
from bootstrap.config.inventory import load_inventory
from bootstrap.errors import UserError
from bootstrap.flows import etcd as ops
from bootstrap.flows.plan import etcd_hosts, etcd_nodes
from bootstrap.remote.pool import close_all, connect_all, parallel_map


class _Cluster:
    """The etcd hosts of an inventory, connected for the length of a ``with`` block."""

    def __init__(self, inventory_path: str, connect: Callable | None = None):
        self.inventory = load_inventory(inventory_path)
        self.nodes = etcd_nodes(self.inventory, check_size=False)
        self._connect = connect or connect_all
        self.conns: dict = {}

    def __enter__(self) -> _Cluster:
        self.conns = self._connect(etcd_hosts(self.inventory))
        return self

    def __exit__(self, *exc) -> None:
        close_all(self.conns)


def status(inventory_path: str, *, connect: Callable | None = None) -> list[ops.MemberStatus]:
    with _Cluster(inventory_path, connect) as c:
        return ops.status_on_any(c.conns, c.nodes)


def _verify_local(path: Path) -> dict | None:
    """``etcdctl snapshot status`` on this machine, when etcdctl is installed here."""
    if not shutil.which("etcdctl"):
        return None
    r = subprocess.run(["etcdctl", "--write-out=json", "snapshot", "status", str(path)],
                       capture_output=True, text=True, env={**os.environ, "ETCDCTL_API": "3"})
    if r.returncode != 0:
        raise UserError(f"not a valid etcd snapshot: {r.stderr.strip()[-200:]}", where=str(path))
    return json.loads(r.stdout)


def snapshot_save(inventory_path: str, path: str, *,
                  connect: Callable | None = None) -> dict:
    """Save a snapshot to ``path`` on this machine; its status (hash, revision, keys, size)."""
    dest = Path(path)
    if dest.is_dir():
        raise UserError("is a directory", where=str(dest), hint="give a file name")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _Cluster(inventory_path, connect) as c:
        data, remote_status = ops.snapshot_save(c.conns, c.nodes)
    # Written beside the target and renamed, so PATH is never a partial snapshot.
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o600)
        local = _verify_local(Path(tmp))
        if local is not None and local.get("hash") != remote_status.get("hash"):
            raise UserError("snapshot changed in transfer (hash differs)", where=str(dest),
                            hint="save it again")
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return remote_status


def snapshot_restore(inventory_path: str, path: str, *, config_path: str | None = None,
                     connect: Callable | None = None,
                     progress: Callable[[str], None] = lambda _m: None) -> list[ops.MemberStatus]:
    src = Path(path)
    if not src.is_file():
        raise UserError("no such snapshot file", where=str(src))
    _verify_local(src)
    config = load_cluster_config(config_path)
    if config.etcd.local is None:
        raise UserError("the cluster config uses an external etcd; restore it with its own tools",
                        where=config.source)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    with _Cluster(inventory_path, connect) as c:
        return ops.snapshot_restore(
            c.conns, c.nodes, src.read_bytes(), data_dir=config.etcd.local.data_dir,
            token=f"{config.cluster_name}-etcd-restore-{stamp}", stamp=stamp,
            parallel=lambda fn, items: parallel_map(fn, items), progress=progress)
