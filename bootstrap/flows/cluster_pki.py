"""The cluster's PKI on the control machine: shared CAs plus per-node leaves.

Kept in ``<state dir>/pki``, the state dir being kubespray's ``artifacts_dir``
(``artifacts/`` beside the inventory unless the inventory names one): CAs and
the service-account key at the top, each node's own leaves under
``nodes/<host>/`` with kubeadm's names, so the pki role can copy exactly the
files a host needs (``bootstrap.flows.plan.pki_files``). Every call is
idempotent: bootstrap.pki reuses valid files and only fills in what is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

from bootstrap import pki
from bootstrap.flows.plan import etcd_hosts, node_pki_dir

# Per control-plane node; kubeadm's `init phase certs all` minus the etcd ones.
CONTROL_PLANE_LEAVES = ("apiserver", "apiserver-kubelet-client", "front-proxy-client",
                        "apiserver-etcd-client")
ETCD_MEMBER_LEAVES = ("etcd-server", "etcd-peer", "etcd-healthcheck-client")


def artifacts_dir(inventory) -> Path:
    return Path(inventory.artifacts_dir)


def pki_dir(inventory) -> Path:
    return artifacts_dir(inventory) / "pki"


def ensure_cluster_pki(inventory, config, state: Path | None = None) -> tuple[Path, int]:
    """Generate what is missing in ``state`` (the inventory's state dir unless
    given: a dry run passes a scratch copy); (pki dir, number of files created)."""
    state = artifacts_dir(inventory) if state is None else Path(state)
    root = state / "pki"
    # The CA keys live here: only the invoking user may read them.
    for d in (state, root):
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
    outcomes = list(pki.ensure_cas(root, config))
    outcomes.append(pki.ensure_sa_key(root, config))
    local_etcd = config.etcd.external is None
    for host in inventory.control_plane:
        for name in CONTROL_PLANE_LEAVES:
            if name == "apiserver-etcd-client" and not local_etcd:
                continue  # an external etcd comes with its own client files
            outcomes.append(pki.ensure_leaf(name, node_pki_dir(root, host.name), root, config,
                                            node_name=host.name,
                                            advertise_address=host.node_ip))
    if local_etcd:
        for host in etcd_hosts(inventory):
            for name in ETCD_MEMBER_LEAVES:
                outcomes.append(pki.ensure_leaf(name, node_pki_dir(root, host.name), root,
                                                config, node_name=host.name,
                                                advertise_address=host.node_ip))
    return root, sum(1 for o in outcomes if o.created)
