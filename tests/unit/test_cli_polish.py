"""A CLI a kubeadm user knows (issue 13, item 4): version, completion, -v anywhere,
one-line typos with a suggestion, and certs renew all on an empty directory."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from bootstrap.cli import take_verbosity


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bootstrap", *args], capture_output=True,
                          text=True, timeout=60)


def test_version_formats():
    plain = run("version")
    assert plain.returncode == 0 and plain.stdout.startswith("bootstrap version: &version.Info{")
    info = json.loads(run("version", "-o", "json").stdout)["clientVersion"]
    assert info["gitVersion"].startswith("v") and {"major", "minor", "platform"} <= set(info)
    assert yaml.safe_load(run("version", "-o", "yaml").stdout)["clientVersion"] == info
    assert run("version", "-o", "short").stdout.strip() == info["gitVersion"]
    bad = run("version", "-o", "xml")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "invalid output format" in \
        bad.stderr


@pytest.mark.parametrize("shell,marker", [("bash", "complete -o"), ("zsh", "compdef"),
                                          ("fish", "complete --no-files --command bootstrap")])
def test_completion_scripts(shell, marker):
    out = run("completion", shell)
    assert out.returncode == 0 and marker in out.stdout and "_BOOTSTRAP_COMPLETE" in out.stdout


def test_completion_needs_a_known_shell():
    for args in (("completion",), ("completion", "tcsh")):
        out = run(*args)
        assert out.returncode == 2 and out.stderr.count("\n") == 1


@pytest.mark.parametrize("args,needle", [
    (("inti",), "Did you mean 'init'?"),
    (("clustr", "up"), "Did you mean 'cluster'?"),
    (("init", "--bogus"), "No such option '--bogus'"),
    (("certs", "renew", "--nope"), "No such option '--nope'"),
])
def test_typos_are_one_line_with_exit_2(args, needle):
    out = run(*args)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: ")
    assert needle in out.stderr and "Traceback" not in out.stderr
    assert "Usage:" not in out.stderr


def test_verbosity_is_taken_anywhere():
    assert take_verbosity(["cluster", "up", "-v", "4", "-i", "x"]) == (
        ["cluster", "up", "-i", "x"], 4)
    assert take_verbosity(["--v=2", "version"]) == (["version"], 2)
    assert take_verbosity(["-v5", "version"]) == (["version"], 5)
    # After "--" everything belongs to the command run on a host.
    assert take_verbosity(["sandbox", "ssh", "d", "1", "--", "ls", "-v", "2"]) == (
        ["sandbox", "ssh", "d", "1", "--", "ls", "-v", "2"], None)
    assert run("-v", "4", "version", "-o", "short").returncode == 0
    assert run("version", "--v=3", "-o", "short").returncode == 0


def test_certs_renew_all_on_an_empty_directory_is_an_error(tmp_path):
    out = run("certs", "renew", "all", "--cert-dir", str(tmp_path), "--kubeconfig-dir",
              str(tmp_path))
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "no certificates or kubeconfigs to renew" in out.stderr
