"""The molecule scenarios end to end: destroy, create, converge, idempotence, verify, destroy.

Each scenario is a whole `cluster up` from bare sandbox hosts plus a second,
no-change run, about as much again as its topology in test_cluster_up.py.
"""

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

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# The sandbox names in molecule/<scenario>/molecule.yml.
SCENARIOS = {"stacked": sandbox_name("most"), "external": sandbox_name("moex")}


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory):
    freeze_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))


@pytest.mark.skipif(not (BIN / "molecule").exists(), reason="molecule not installed")
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_molecule_scenario(scenario, wheelhouse, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("sandbox hosts need root")
    # Molecule's ephemeral files stay in this test's temp dir.
    ephemeral = tmp_path / "molecule"
    env = {**cli_env(), "PATH": f"{BIN}:{os.environ['PATH']}",
           "BOOTSTRAP": str(BIN / "bootstrap"), "LC_ALL": "C.UTF-8",
           "MOLECULE_EPHEMERAL_DIRECTORY": str(ephemeral),
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp")}
    try:
        proc = subprocess.run([str(BIN / "molecule"), "test", "-s", scenario], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=1100)
        out = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
        first_failure = out.find("= FAILURES =")
        assert proc.returncode == 0, (out[first_failure:first_failure + 5000]
                                      if first_failure >= 0 else "") + out[-5000:]
        # The idempotence step ran (its converge reported bootstrap's 0-changed line),
        # and the verify step really ran the testinfra checks, none failing.
        assert "idempotence: Executed: Successful" in out, out[-4000:]
        assert re.search(r"collected [1-9]\d* items", out), out[-4000:]
        assert re.search(r"\d+ passed", out) and not re.search(r"\d+ failed", out)
    finally:
        sandbox.down(SCENARIOS[scenario])
        shutil.rmtree(ephemeral, ignore_errors=True)
