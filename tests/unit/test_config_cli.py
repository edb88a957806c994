"""``bootstrap config`` and ``bootstrap inventory`` through the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bootstrap.cli import main
from bootstrap.config.cluster import default_config, load_cluster_config

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data" / "inventories"
MALFORMED = sorted(p for p in DATA.iterdir() if not p.name.startswith("ok-"))


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


def test_print_init_defaults_reads_back_identically(tmp_path):
    result = run("config", "print", "init-defaults")
    assert result.exit_code == 0
    assert result.stdout.startswith("apiVersion: bootstrap.dev/v1alpha1\nkind: ClusterConfiguration\n")
    path = tmp_path / "c.yaml"
    path.write_text(result.stdout)
    assert load_cluster_config(path) == default_config()
    validated = run("config", "validate", "--config", str(path))
    assert validated.exit_code == 0
    assert "ok" in validated.stdout and "ECDSA-P256" in validated.stdout


@pytest.mark.parametrize("body,fragment", [
    ("networking:\n  podSubnet: nope\n", "networking.podSubnet: 'nope' is not a valid CIDR"),
    ("etcd:\n  local: {}\n  external: {endpoints: [https://a:2379]}\n", "etcd: both"),
    ("bogus: 1\n", "bogus: unknown field"),
    ("clusterName: [\n", "invalid YAML"),
])
def test_invalid_config_is_one_line_exit_2(tmp_path, body, fragment):
    path = tmp_path / "c.yaml"
    path.write_text("apiVersion: bootstrap.dev/v1alpha1\nkind: ClusterConfiguration\n" + body)
    line = one_error_line(run("config", "validate", "--config", str(path)))
    assert line.startswith(f"error: {path}:")
    assert fragment in line


def test_inventory_check_prints_hosts_roles_and_topology():
    result = run("inventory", "check", "-i", str(REPO / "inventories/sandbox-external/inventory.ini"))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "topology: external" in out
    assert "control plane: 2, workers: 1, etcd members: 3" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert rows["etcd1"][1:4] == ["10.250.2.21", "root", "10.250.2.21"]
    assert "etcd" in rows["etcd1"] and "kube_control_plane" in rows["cp1"][4]
    assert result.stderr == ""


def test_inventory_check_shows_warnings_and_ports(tmp_path):
    result = run("inventory", "check", "-i", str(REPO / "inventories/production-like"
                                                      "/inventory.ini"))
    assert result.exit_code == 0
    assert "topology: stacked" in result.stdout
    assert "warning: group calico_rr not used by bootstrap; ignored" in result.stderr
    inv = tmp_path / "inv.ini"
    inv.write_text("[kube_control_plane]\nn1:2222 ansible_host=10.0.0.1\n[etcd]\nn1\n"
                   "[kube_node]\nn1\n[k8s_cluster:children]\nkube_control_plane\nkube_node\n")
    result = run("inventory", "check", "-i", str(inv))
    assert "10.0.0.1:2222" in result.stdout


@pytest.mark.parametrize("path", MALFORMED, ids=lambda p: p.name)
def test_malformed_inventory_is_one_line_exit_2(path):
    target = path / "hosts.yaml" if path.is_dir() else path
    line = one_error_line(run("inventory", "check", "-i", str(target)))
    assert str(DATA) in line


def test_real_process_prints_one_line_and_no_traceback(tmp_path):
    """The CLI root, not the test runner, turns UserError into exit code 2."""
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200")
    bad_config = tmp_path / "c.yaml"
    bad_config.write_text("apiVersion: bootstrap.dev/v1alpha1\nkind: ClusterConfiguration\n"
                          "certificateValidityPeriod: 365d\n")
    commands = [
        ["inventory", "check", "-i", str(DATA / "cycle.ini")],
        ["inventory", "check", "-i", str(DATA / "bad-syntax.yaml")],
        ["inventory", "check", "-i", str(tmp_path / "missing.ini")],
        ["config", "validate", "--config", str(bad_config)],
    ]
    for args in commands:
        proc = subprocess.run([sys.executable, "-m", "bootstrap", *args], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stdout == ""
        assert len(proc.stderr.splitlines()) == 1, proc.stderr
        assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


KUBESPRAY = Path(__file__).parent / "data" / "kubespray"


def test_inventory_check_shows_placement_and_where_each_setting_came_from(tmp_path):
    result = run("inventory", "check", "-i", str(KUBESPRAY / "docs-mixed-etcd"))
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "local member" in rows["node1"] and "  member  " in rows["node3"]
    assert "topology: mixed" in result.stdout
    assert "etcd servers: https://10.3.0.1:2379,https://10.3.0.2:2379,https://10.3.0.3:2379" \
        in result.stdout
    assert rows["networking.podSubnet"].split()[1:3] == ["10.233.64.0/18", "kube_pods_subnet"]
    assert rows["encryptionAlgorithm"].split()[1:] == ["ECDSA-P256", "default"]
    config = tmp_path / "c.yaml"
    config.write_text("apiVersion: bootstrap.dev/v1alpha1\nkind: ClusterConfiguration\n"
                      "clusterName: prod\n")
    result = run("inventory", "check", "-i", str(KUBESPRAY / "docs-mixed-etcd"),
                 "--config", str(config))
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert rows["clusterName"].split()[1:] == ["prod", "--config", str(config)]
    assert "warning: clusterName: --config" in result.stderr
    jump = run("inventory", "check", "-i", str(KUBESPRAY / "bastion-become"))
    assert "ubuntu (sudo root)" in jump.stdout and "jump jump@198.51.100.7:2022" in jump.stdout


def test_unsupported_network_plugin_is_one_line_exit_2(tmp_path):
    (tmp_path / "group_vars" / "k8s_cluster").mkdir(parents=True)
    vars_file = tmp_path / "group_vars" / "k8s_cluster" / "k8s-cluster.yml"
    vars_file.write_text("kube_network_plugin: calico\n")
    inv = tmp_path / "inventory.ini"
    inv.write_text("[kube_control_plane]\nn1 ansible_host=10.0.0.1\n[etcd]\nn1\n[kube_node]\nn1\n")
    line = one_error_line(run("inventory", "check", "-i", str(inv)))
    assert line == (f"error: {vars_file}:1: kube_network_plugin: 'calico' is not supported by "
                    "bootstrap (set kube_network_plugin: cni, the standard bridge plugin that "
                    "bootstrap configures)")
