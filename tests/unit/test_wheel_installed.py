"""Wheels rebuilt from installed distributions (the pip-installed toolkit's wheelhouse)."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as md
import subprocess
import sys
import zipfile

import pytest

from bootstrap.flows import wheel_installed as wi
from bootstrap.flows import wheelhouse


def test_closure_is_bootstrap_its_requirements_and_pip_at_the_installed_versions():
    dists = {d.metadata["Name"].lower(): d.version for d in wi.closure()}
    assert {"bootstrap", "pip", "click", "aiohttp", "cryptography", "grpcio"} <= set(dists)
    # Extras are followed: pyjwt[crypto] needs cryptography; test extras are not.
    assert "pytest" not in dists and "ruff" not in dists
    assert dists["click"] == md.version("click")


def test_rewheel_has_every_installed_file_with_a_fresh_record(tmp_path):
    dist = md.distribution("click")
    whl = wi.rewheel(dist, tmp_path)
    assert whl.name == f"click-{dist.version}-py3-none-any.whl"
    with zipfile.ZipFile(whl) as zf:
        names = set(zf.namelist())
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        record = zf.read(f"{info}/RECORD").decode().splitlines()
        for line in record:
            path, digest, size = line.rsplit(",", 2)
            if path.endswith("/RECORD"):
                continue
            body = zf.read(path)
            want = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=")
            assert digest == "sha256=" + want.decode() and int(size) == len(body)
    assert {ln.rsplit(",", 2)[0] for ln in record} == names
    assert "click/core.py" in names
    assert not any(n.endswith(".pyc") or n.endswith("/INSTALLER") for n in names)
    # The same installed files give the same bytes (the manifest digest stays put).
    again = tmp_path / "again"
    again.mkdir()
    assert wi.rewheel(dist, again).read_bytes() == whl.read_bytes()


def test_binary_wheels_keep_their_platform_tags(tmp_path):
    whl = wi.rewheel(md.distribution("pyyaml"), tmp_path)
    assert whl.name.startswith(f"pyyaml-{md.version('pyyaml')}-cp3")
    assert "manylinux" in whl.name or "linux" in whl.name


def test_console_scripts_are_left_for_pip_to_write_again(tmp_path):
    with zipfile.ZipFile(wi.rewheel(md.distribution("pip"), tmp_path)) as zf:
        assert not any(".data/scripts/" in n for n in zf.namelist())
        assert any(n.endswith("entry_points.txt") for n in zf.namelist())


@pytest.mark.timeout(300)
def test_rewheeled_wheels_install_offline_into_a_fresh_venv(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for name in ("click", "pyyaml", "pip"):
        wi.rewheel(md.distribution(name), wheels)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pip = next(wheels.glob("pip-*.whl"))
    r = subprocess.run([str(venv / "bin" / "python"), f"{pip}/pip", "install", "-q",
                        "--no-index", "--no-cache-dir", "--find-links", str(wheels),
                        "click", "pyyaml"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(venv / "bin" / "python"), "-c",
                        "import click, yaml; print(click.__name__, yaml.__with_libyaml__)"],
                       capture_output=True, text=True)
    assert r.stdout.split() == ["click", "True"], r.stderr  # the C extension came along


def test_a_dist_without_record_is_refused_by_rewheel(tmp_path):
    class NoRecord:
        files = None

    with pytest.raises(ValueError):
        wi.rewheel(NoRecord(), tmp_path)


def test_installed_mode_builds_once_and_dry_run_peeks_without_writing(tmp_path, monkeypatch):
    # Pretend the toolkit is pip-installed (no pyproject beside the package), with
    # a small closure so the test stays quick.
    monkeypatch.setattr(wheelhouse, "has_source_tree", lambda: False)
    monkeypatch.delenv("BOOTSTRAP_WHEELHOUSE", raising=False)
    small = [md.distribution("click"), md.distribution("pip")]
    monkeypatch.setattr(wi, "closure", lambda root=wi.ROOT: small)
    assert wheelhouse.peek_wheelhouse(tmp_path) is None
    assert not any(tmp_path.iterdir())  # peeking wrote nothing
    built = wheelhouse.build_wheelhouse(tmp_path)
    assert sorted(p.name.split("-")[0] for p in built.wheels) == ["click", "pip"]
    assert built.path == tmp_path / "installed" / wi.__version__
    mtimes = {p: p.stat().st_mtime_ns for p in built.wheels}
    again = wheelhouse.build_wheelhouse(tmp_path)
    assert again.digest == built.digest
    assert {p: p.stat().st_mtime_ns for p in again.wheels} == mtimes  # reused, not rebuilt
    peek = wheelhouse.peek_wheelhouse(tmp_path)
    assert peek is not None and peek.digest == built.digest
    assert wheelhouse.agents_vars(cache_dir=tmp_path)["agents_pip_wheel"].startswith("pip-")


def test_a_missing_requirement_is_one_line_naming_it(monkeypatch):
    from bootstrap.errors import UserError

    real = md.distribution

    def without_pip(name):
        if name == "pip":
            raise md.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(wi.md, "distribution", without_pip)
    with pytest.raises(UserError) as ei:
        wi.closure()
    assert "pip is needed by the agents but is not installed" in ei.value.line()
    assert "ensurepip" in ei.value.line()
