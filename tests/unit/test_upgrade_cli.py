"""`bootstrap upgrade ...` bad input: one line, non-zero, no traceback; the second
version's wheel source (the version rewritten in a copy, never in the checkout)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bootstrap.errors import UserError
from bootstrap.flows import wheelhouse, wheelhouse_version


def run(*args: str, **env) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "bootstrap", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})


@pytest.mark.parametrize("args,message", [
    (("upgrade", "apply"), "upgrade apply needs the version to upgrade to"),
    (("upgrade", "apply", "latest"), "'latest' is not a version"),
    (("upgrade", "apply", "v1.32.0-bootstrap.0.2.0"), "is not a version"),
    (("upgrade", "apply", "0.2.0", "--health-timeout", "0"), "--health-timeout must be more"),
    (("upgrade", "node", "--to", "1.2"), "'1.2' is not a version"),
    (("upgrade", "apply", "0.2.0", "--health-timeout", "soon"), "--health-timeout"),
])
def test_bad_input_is_one_line(args, message):
    r = run(*args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_help_documents_phases_and_the_fault_hook():
    out = run("upgrade", "apply", "--help").stdout
    for phase in ("preflight", "backup", "control-plane", "node", "upload-config", "finalize"):
        assert phase in out
    assert "BOOTSTRAP_UPGRADE_FAIL_HEALTH" in out and "--health-timeout" in out
    assert "kubelet-and-agents" in run("upgrade", "node", "--help").stdout
    phase = run("upgrade", "apply", "phase", "backup", "--help")
    assert phase.returncode == 0 and "--to VERSION" in phase.stdout


def test_the_version_copy_rewrites_only_the_copy(tmp_path):
    root = wheelhouse.project_root()
    before = (root / "pyproject.toml").read_text()
    wheelhouse_version._copy_tree(root, tmp_path, "7.8.9")
    assert 'version = "7.8.9"' in (tmp_path / "pyproject.toml").read_text()
    assert (root / "pyproject.toml").read_text() == before
    data = tmp_path / "bootstrap" / "_data" / "roles"
    assert data.is_dir() and not data.is_symlink()
    assert (data / "agent-switch" / "tasks" / "main.yml").is_file()
    assert not list(Path(tmp_path).rglob("__pycache__"))


def test_requested_version(monkeypatch):
    assert wheelhouse_version.requested_version("0.2.0") == "0.2.0"
    monkeypatch.setenv(wheelhouse_version.ENV, "0.3.1")
    assert wheelhouse_version.requested_version() == "0.3.1"
    for bad in ("v0.2.0", "0.2", "x"):
        with pytest.raises(UserError, match="is not a version"):
            wheelhouse_version.requested_version(bad)
