"""The molecule scenario end to end: create, converge, idempotence, verify, destroy."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_names import sandbox_name
from etcd_helpers import cli_env, freeze_wheelhouse

from bootstrap import sandbox

pytestmark = [pytest.mark.slow, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NAME = sandbox_name("etcmol")  # molecule/default/molecule.yml


@pytest.mark.skipif(not (BIN / "molecule").exists(), reason="molecule not installed")
def test_molecule_default_scenario(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("sandbox hosts need root")
    freeze_wheelhouse(tmp_path / "wheelhouse")
    env = {**cli_env(), "PATH": f"{BIN}:{os.environ['PATH']}",
           "BOOTSTRAP": str(BIN / "bootstrap"), "LC_ALL": "C.UTF-8",
           # Molecule's ephemeral files stay in this test's temp dir.
           "MOLECULE_EPHEMERAL_DIRECTORY": str(tmp_path / "molecule"),
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp")}
    try:
        proc = subprocess.run([str(BIN / "molecule"), "test"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
        # The verify step really ran the testinfra checks.
        assert re.search(r"collected [1-9]\d* items", proc.stdout + proc.stderr)
    finally:
        sandbox.down(NAME)
        shutil.rmtree(tmp_path / "molecule", ignore_errors=True)
