"""Shared e2e fixtures: sandbox hosts that are always torn down.

``sandbox_factory(name, hosts, etcd_hosts=0, control_plane=None) -> Path`` brings
a sandbox up (a no-op if it is already up) and returns its inventory path;
every sandbox it made is removed at the end of the session, on failure too.
``sandbox_factory.down(name)`` removes one earlier.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bootstrap import sandbox

# The shared e2e steps assert in a helper module; keep pytest's detailed messages there.
pytest.register_assert_rewrite("etcd_helpers")


class SandboxFactory:
    def __init__(self) -> None:
        self.made: list[str] = []

    def __call__(self, name: str, hosts: int, etcd_hosts: int = 0,
                 control_plane: int | None = None) -> Path:
        if name not in self.made:
            # Record first: a failing up may still leave something to remove.
            self.made.append(name)
        return sandbox.up(name, hosts, etcd_hosts, control_plane)

    def down(self, name: str) -> None:
        sandbox.down(name)
        if name in self.made:
            self.made.remove(name)

    def teardown(self) -> None:
        errors = []
        for name in reversed(self.made):
            try:
                sandbox.down(name)
            except Exception as exc:  # keep tearing the others down
                errors.append(f"{name}: {exc}")
        self.made.clear()
        if errors:
            raise RuntimeError("sandbox teardown failed: " + "; ".join(errors))


@pytest.fixture(scope="session")
def sandbox_factory():
    if os.geteuid() != 0:
        pytest.skip("sandbox hosts need root")
    factory = SandboxFactory()
    try:
        yield factory
    finally:
        factory.teardown()
