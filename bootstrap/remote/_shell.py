"""A long-lived ``/bin/sh`` on one SSH channel, fed one command at a time.

Every exec channel makes sshd fork, set up a session (PAM, logind) and start
the user's login shell, which on many hosts reads a ~/.bashrc; measured on
our sandbox hosts that is 100-250 ms a command, against ~2 ms for a command
written to a shell that is already running. The shell runs each command as
``sh -c '<cmd>' </dev/null``, so a syntax error, ``exit`` or ``cd`` stays in
that child, then prints an end marker with the exit code on stdout and a
marker on stderr. Output is read up to the markers, so a command that leaves
a daemon holding its stdout does not hang the run either.
"""

from __future__ import annotations

import select
import shlex
import time
import uuid

import paramiko

from bootstrap.remote.result import RemoteTimeout, Result

_MARK = b"\x1e"


class ShellBroken(Exception):
    """The shell channel went away; the caller opens a new one.

    ``sent`` says whether the command may have started: only a command that
    never reached the shell is safe to retry on a fresh one.
    """

    def __init__(self, reason: str, *, sent: bool):
        super().__init__(reason)
        self.sent = sent


class ShellSession:
    def __init__(self, transport: paramiko.Transport, host: str, open_timeout: float,
                 shell: str = "/bin/sh"):
        self.host = host
        self.chan = transport.open_session(timeout=open_timeout)
        # exec: no extra bash in between once the login shell has started us. ``shell``
        # may be ``sudo -n -u root -- /bin/sh``: every command then runs as that user.
        self.chan.exec_command(f"exec {shell}")
        self._out = bytearray()
        self._err = bytearray()

    @property
    def alive(self) -> bool:
        return not (self.chan.closed or self.chan.exit_status_ready())

    def run(self, cmd: str, timeout: float | None) -> Result:
        tag = uuid.uuid4().hex.encode()
        script = (
            f"sh -c {shlex.quote(cmd)} </dev/null; "
            f"printf '\\036%s %d\\n' {tag.decode()} $?; printf '\\036%s\\n' {tag.decode()} >&2\n"
        )
        try:
            self.chan.sendall(script.encode())
        except (OSError, paramiko.SSHException) as exc:
            raise ShellBroken(str(exc), sent=False) from None
        out_mark = _MARK + tag + b" "
        err_mark = _MARK + tag + b"\n"
        deadline = None if timeout is None else time.monotonic() + timeout
        code: int | None = None
        stdout = stderr = None
        while True:
            while self.chan.recv_ready():
                self._out += self.chan.recv(65536)
            while self.chan.recv_stderr_ready():
                self._err += self.chan.recv_stderr(65536)
            if stdout is None:
                i = self._out.find(out_mark)
                j = self._out.find(b"\n", i + len(out_mark)) if i >= 0 else -1
                if j >= 0:
                    stdout = bytes(self._out[:i])
                    code = int(self._out[i + len(out_mark): j])
                    del self._out[: j + 1]
            if stderr is None:
                i = self._err.find(err_mark)
                if i >= 0:
                    stderr = bytes(self._err[:i])
                    del self._err[: i + len(err_mark)]
            if stdout is not None and stderr is not None:
                return Result(code, stdout.decode("utf-8", "replace"),
                              stderr.decode("utf-8", "replace"))
            if self.chan.closed or self.chan.exit_status_ready() and not (
                self.chan.recv_ready() or self.chan.recv_stderr_ready()
            ):
                raise ShellBroken("shell exited", sent=True)
            wait = 1.0
            if deadline is not None:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    self.close()
                    raise RemoteTimeout(self.host, cmd, timeout)
                wait = min(wait, 1.0)
            select.select([self.chan], [], [], wait)

    def close(self) -> None:
        try:
            self.chan.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
