"""A pip-installed toolkit converges a host from outside the checkout.

The wheel built from this checkout is installed (offline, from the wheelhouse's
dependency wheels) into a fresh venv under /tmp; `bootstrap cluster up` runs
from that venv with a working directory outside the checkout, no
BOOTSTRAP_WHEELHOUSE and its own empty cache, so the agents' wheelhouse is
rebuilt from the installed distributions (bootstrap.flows.wheel_installed) and
the roles come from the installed package data. The one sandbox host must end
up a Ready node.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from e2e_names import sandbox_name

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(2400)]

NAME = sandbox_name("pipi")
CHECKOUT = Path(__file__).resolve().parents[2]
KUBECTL = "/usr/bin/kubectl"


def run(args: list[str], *, cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, (f"{proc.args}: exit {proc.returncode}\n{proc.stdout[-4000:]}"
                                  f"\n{proc.stderr[-4000:]}")
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv, work dir, env): the toolkit pip-installed outside the checkout."""
    from bootstrap.flows.wheelhouse import build_wheelhouse

    work = Path(tempfile.mkdtemp(prefix="bootstrap-pipi-", dir="/tmp"))
    try:
        wheels = work / "wheels"
        wheels.mkdir()
        # The checkout's wheel and its dependency wheels, copied: other work in a
        # shared checkout may rebuild the cache meanwhile.
        for whl in build_wheelhouse().wheels:
            shutil.copy2(whl, wheels / whl.name)
        venv = work / "venv"
        ok(run([sys.executable, "-m", "venv", str(venv)], cwd=work, env=dict(os.environ),
               timeout=300))
        env = {k: v for k, v in os.environ.items()
               if k not in ("BOOTSTRAP_WHEELHOUSE", "PYTHONPATH", "VIRTUAL_ENV")}
        env.update(PATH=f"{venv}/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   XDG_CACHE_HOME=str(work / "cache"), PIP_NO_INDEX="1")
        ok(run([str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--find-links",
                str(wheels), "bootstrap"], cwd=work, env=env, timeout=900))
        shutil.rmtree(wheels)  # nothing of the checkout's build is left to lean on
        yield venv, work, env
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(installed, sandbox_factory):
    venv, work, env = installed
    inventory = sandbox_factory(NAME, 1)
    try:
        # The inventory beside nothing of the checkout: its state dir is work/artifacts.
        inv = work / "hosts.yaml"
        shutil.copy2(inventory, inv)
        up = run([str(venv / "bin" / "bootstrap"), "cluster", "up", "-i", str(inv)], cwd=work,
                 env=env, timeout=2000)
        yield up, inv, work
    finally:
        sandbox_factory.down(NAME)


def test_the_installed_toolkit_is_not_the_checkout(installed):
    venv, work, env = installed
    where = ok(run([str(venv / "bin" / "python"), "-c", "import bootstrap; print(bootstrap.__file__)"],
                   cwd=work, env=env, timeout=60)).strip()
    assert where.startswith(str(venv)) and not where.startswith(str(CHECKOUT)), where
    assert not (Path(where).parents[2] / "pyproject.toml").exists()


def test_cluster_up_from_the_installed_toolkit_brings_the_node_ready(cluster):
    up, inv, work = cluster
    out = ok(up)
    assert "Cluster is up:" in out, out[-3000:]
    admin = work / "artifacts" / "admin.conf"
    nodes = subprocess.run([KUBECTL, "--kubeconfig", str(admin), "get", "nodes", "-o", "json"],
                           capture_output=True, text=True, timeout=60)
    assert nodes.returncode == 0, nodes.stderr
    items = json.loads(nodes.stdout)["items"]
    assert [n["metadata"]["name"] for n in items] == [f"{NAME}-1"]
    assert any(c["type"] == "Ready" and c["status"] == "True"
               for c in items[0]["status"]["conditions"])


def test_the_agents_wheelhouse_was_rebuilt_from_the_installed_distributions(cluster):
    up, inv, work = cluster
    built = work / "cache" / "bootstrap" / "wheelhouse" / "installed"
    wheels = {p.name.split("-")[0] for p in built.rglob("*.whl")}
    assert {"bootstrap", "pip", "aiohttp", "grpcio"} <= wheels, sorted(wheels)
