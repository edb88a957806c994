"""Sandbox names for e2e tests, with an optional prefix.

``BOOTSTRAP_E2E_PREFIX=fix`` turns ``etcst`` into ``fixetcst``, so two test
runs on one machine (e.g. a CI checkout and a work tree) never share a
sandbox. The molecule scenario reads the same variable (molecule.yml).
"""

from __future__ import annotations

import os

PREFIX = os.environ.get("BOOTSTRAP_E2E_PREFIX", "")


def sandbox_name(base: str) -> str:
    return PREFIX + base
