"""``bootstrap etcd ...``: status and snapshots for the etcd of an inventory.

Loads the inventory, connects to its etcd hosts and calls ``bootstrap.flows.etcd``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bootstrap.config.inventory import load_inventory
from bootstrap.config.kubespray_vars import effective_config
from bootstrap.errors import UserError
from bootstrap.flows import etcd as ops
from bootstrap.flows import etcd_backup as backup
from bootstrap.flows import etcd_restore
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


def snapshot_save(inventory_path: str, path: str | None = None, *,
                  directory: str | None = None, retention: int = backup.DEFAULT_RETENTION,
                  connect: Callable | None = None,
                  now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> backup.Saved:
    """A snapshot from one healthy member, saved on this machine with its sha256 and status.

    Without ``path`` it goes into ``directory`` (default: the inventory's
    artifacts/backups) under a UTC-stamped name, and only the newest
    ``retention`` snapshots there are kept; an explicit ``path`` is just written.
    """
    backup.check_retention(retention)
    if path is not None and directory is not None:
        raise UserError("give either a snapshot PATH or --dir, not both")
    inventory = load_inventory(inventory_path)
    taken_at = now()
    if path is not None:
        dest = Path(path)
        if dest.is_dir():
            raise UserError("is a directory", where=str(dest), hint="give a file name, or --dir")
    else:
        folder = Path(directory) if directory else backup.default_dir(inventory)
        if folder.exists() and not folder.is_dir():
            raise UserError("not a directory", where=str(folder))
        dest = folder / backup.snapshot_name(taken_at)
    if dest.exists():
        raise UserError("already exists; not overwriting a snapshot", where=str(dest))
    with _Cluster(inventory_path, connect) as c:
        data, status, member = ops.snapshot_save(c.conns, c.nodes)
    saved = backup.write_snapshot(dest, data, status, member=member.name,
                                  endpoint=member.client_url, taken_at=taken_at)
    if path is None:
        saved.removed = backup.apply_retention(dest.parent, retention)
    return saved


def snapshot_restore(inventory_path: str, path: str, *, config_path: str | None = None,
                     connect: Callable | None = None,
                     progress: Callable[[str], None] = lambda _m: None,
                     confirm: Callable[[], None] = lambda: None) -> etcd_restore.Outcome:
    """Every member from the snapshot at ``path``, the control plane stopped around it.

    ``confirm`` is asked once the snapshot, the inventory and the config have been
    checked here, before any host is contacted (it raises to stop)."""
    src = Path(path)
    backup.check_checksum(src)
    backup.verify_local(src)
    inventory = load_inventory(inventory_path)
    # As cluster up reads it: kubespray's variables (etcd_data_dir, kube_apiserver_port)
    # with the --config file's fields winning.
    config = effective_config(inventory, config_path).config
    if config.etcd.local is None:
        raise UserError("the cluster config uses an external etcd; restore it with its own tools",
                        where=config.source)
    nodes = etcd_nodes(inventory, check_size=False)
    control_plane = [h.name for h in inventory.control_plane]
    stamp = datetime.now(UTC).strftime(backup.STAMP_FORMAT)
    hosts = {h.name: h for h in [*etcd_hosts(inventory), *inventory.control_plane]}
    confirm()
    conns = (connect or connect_all)(list(hosts.values()))
    try:
        return etcd_restore.run(
            conns, nodes, control_plane, src.read_bytes(), data_dir=config.etcd.local.data_dir,
            token=f"{config.cluster_name}-etcd-restore-{stamp}", stamp=stamp,
            api_port=config.bind_port,
            parallel=lambda fn, items: parallel_map(fn, items), progress=progress)
    finally:
        close_all(conns)
