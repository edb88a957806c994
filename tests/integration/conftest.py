"""The cluster most integration modules share: one API server on a real etcd per module."""

from __future__ import annotations

import pytest

from .cluster import running_cluster


@pytest.fixture(scope="module")
def cluster():
    """A started cluster with ``admin``, a system:masters kubeconfig. Modules that need
    more (extra server flags, seed objects) override this fixture."""
    with running_cluster() as c:
        yield c
