"""Command results and the errors every connection raises."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from bootstrap.errors import RemoteError


@dataclass(frozen=True)
class Result:
    exit_code: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def tail(text: str, lines: int = 5, chars: int = 400) -> str:
    """The last few lines of ``text`` on one line, for error messages."""
    kept = [ln.strip() for ln in text.strip().splitlines() if ln.strip()][-lines:]
    joined = " | ".join(kept)
    return joined if len(joined) <= chars else "..." + joined[-chars:]


def short_cmd(cmd: str, chars: int = 160) -> str:
    one = " ".join(cmd.split())
    return one if len(one) <= chars else one[: chars - 3] + "..."


class RemoteCommandError(RemoteError):
    """A command exited non-zero; carries everything a failure report shows."""

    def __init__(self, host: str, cmd: str, result: Result):
        self.host = host
        self.cmd = cmd
        self.result = result
        detail = tail(result.stderr) or tail(result.stdout) or "no output"
        super().__init__(
            f"command `{short_cmd(cmd)}` exited {result.exit_code}: {detail}",
            where=f"host {host}",
        )


class RemoteTimeout(RemoteError):
    """A command ran longer than its timeout; the remote side was told to stop."""

    def __init__(self, host: str, cmd: str, timeout: float):
        self.host = host
        self.cmd = cmd
        self.timeout = timeout
        super().__init__(
            f"command `{short_cmd(cmd)}` timed out after {timeout:g}s",
            where=f"host {host}",
            hint="raise the timeout or check the host",
        )


def with_env(cmd: str, env: dict | None) -> str:
    """Prefix ``cmd`` with ``export`` lines so env works without sshd AcceptEnv."""
    if not env:
        return cmd
    exports = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in env.items())
    return f"export {exports}; {cmd}"
