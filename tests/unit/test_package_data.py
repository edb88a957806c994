"""roles/ and templates/ ship as package data and are found through importlib.resources."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bootstrap.engine.roles import default_roles_path, package_data_dir, shared_templates_dir

ROOT = Path(__file__).resolve().parents[2]


def test_default_roles_are_the_package_data(monkeypatch):
    monkeypatch.delenv("BOOTSTRAP_ROLES_PATH", raising=False)
    [roles] = default_roles_path()
    assert Path(roles) == package_data_dir("roles")
    assert Path(roles).parts[-3:] == ("bootstrap", "_data", "roles")
    assert (Path(roles) / "etcd" / "tasks" / "main.yml").is_file()
    assert Path(shared_templates_dir([roles])[0]) == package_data_dir("templates")


def test_checkout_keeps_top_level_roles_and_templates():
    # The package dirs are links to the top-level ones: one copy of every file.
    for name in ("roles", "templates"):
        assert (ROOT / "bootstrap" / "_data" / name).resolve() == (ROOT / name).resolve()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_wheel_carries_roles_and_templates(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "tests"))
    out = tmp_path / "wheel"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                           "--wheel-dir", str(out), str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [wheel] = out.glob("bootstrap-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for role in (ROOT / "roles").iterdir():
        for f in role.rglob("*"):
            if f.is_file():
                assert f"bootstrap/_data/roles/{f.relative_to(ROOT / 'roles')}" in names
    assert any(n.startswith("bootstrap/_data/templates/") for n in names)
