"""``bootstrap image ...`` through the CLI: archives written, bad input is one line and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bootstrap.cli import main

needs_busybox = pytest.mark.skipif(not Path("/bin/busybox").is_file(),
                                   reason="busybox-static not installed")


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@needs_busybox
def test_build_commands_write_archives(tmp_path):
    out = run("image", "build-busybox", "-o", str(tmp_path))
    assert out.exit_code == 0
    assert out.stdout.strip() == f"{tmp_path / 'busybox-1.35.tar'}  (docker.io/library/busybox:1.35)"
    out = run("image", "build-pause", "--output", str(tmp_path))
    assert out.exit_code == 0 and "registry.k8s.io/pause:3.9" in out.stdout
    assert (tmp_path / "pause-3.9.tar").is_file()


def test_push_bad_input_is_one_line(tmp_path):
    line = one_error_line(run("image", "push", str(tmp_path / "none.tar"), "r:5000/a:1",
                              "--ca", str(tmp_path / "ca.crt")))
    assert "no such image archive" in line
    (tmp_path / "a.tar").write_bytes(b"x")
    line = one_error_line(run("image", "push", str(tmp_path / "a.tar"), "r:5000/a:1"))
    assert "no CA to verify the registry with" in line
    (tmp_path / "ca.crt").write_text("x")
    line = one_error_line(run("image", "push", str(tmp_path / "a.tar"), "busybox:1.35",
                              "--ca", str(tmp_path / "ca.crt")))
    assert "is not a registry reference" in line
