"""Run on this machine: the same interface as SSH, through subprocess.

For inventory hosts with ``ansible_connection=local``. With become (a
become user other than the one running bootstrap), every command runs
through ``sudo -n`` and files are staged privately and moved into place as
that user, as the SSH connection does.
"""

from __future__ import annotations

import base64
import errno
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile

from bootstrap.errors import RemoteError
from bootstrap.remote.result import RemoteCommandError, RemoteTimeout, Result


class LocalConnection:
    def __init__(self, host: str = "localhost", become_user: str | None = None):
        self.host = host
        me = pwd.getpwuid(os.geteuid()).pw_name
        self.become_user = become_user if become_user not in (None, me) else None

    def open(self) -> LocalConnection:
        if self.become_user is not None:
            r = self.run("true", check=False)
            if not r.ok:
                reason = (r.stderr.strip().splitlines() or [f"exit {r.exit_code}"])[-1]
                raise RemoteError(f"sudo to {self.become_user} refused: {reason}",
                                  where=f"host {self.host} (local)",
                                  hint="allow passwordless sudo (NOPASSWD), or set "
                                       "ansible_become: false")
        return self

    def run(
        self,
        cmd: str,
        *,
        timeout: float | None = 60,
        check: bool = True,
        input: str | bytes | None = None,
        env: dict | None = None,
    ) -> Result:
        full_env = None
        if env:
            full_env = dict(os.environ)
            full_env.update({k: str(v) for k, v in env.items()})
        data = input.encode() if isinstance(input, str) else input
        try:
            sudo = ["sudo", "-n", "-H", "-u", self.become_user, "--"] if self.become_user else []
            proc = subprocess.run(
                [*sudo, "sh", "-c", cmd],
                input=data,
                stdin=None if data is not None else subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                env=full_env,
            )
        except subprocess.TimeoutExpired:
            raise RemoteTimeout(self.host, cmd, timeout or 0) from None
        result = Result(
            proc.returncode,
            proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
        )
        if check and not result.ok:
            raise RemoteCommandError(self.host, cmd, result)
        return result

    def put(self, data: bytes, path: str, mode: int = 0o644) -> None:
        if self.become_user is not None:
            self._put_as_become_user(data, path, mode)
            return
        parent = os.path.dirname(path) or "."
        try:
            os.makedirs(parent, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{os.path.basename(path)}.")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.chmod(tmp, mode)
                os.replace(tmp, path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise RemoteError(f"cannot write {path}: {exc.strerror}", where=f"host {self.host}") from None

    def put_file(self, local_path: str, remote_path: str, mode: int | None = None) -> None:
        if mode is None:
            mode = os.stat(local_path).st_mode & 0o7777
        if self.become_user is not None:
            with open(local_path, "rb") as fh:
                self._put_as_become_user(fh.read(), remote_path, mode)
            return
        parent = os.path.dirname(remote_path) or "."
        os.makedirs(parent, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{os.path.basename(remote_path)}.")
        os.close(fd)
        try:
            shutil.copyfile(local_path, tmp)
            os.chmod(tmp, mode)
            os.replace(tmp, remote_path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def get(self, path: str) -> bytes:
        if self.become_user is not None:
            q = shlex.quote(path)
            r = self.run(f"if [ -e {q} ]; then base64 < {q}; else exit 3; fi", check=False)
            if r.exit_code == 3:
                raise FileNotFoundError(errno.ENOENT, f"{self.host}: no such file", path)
            if not r.ok:
                raise RemoteError(f"cannot read {path}: {r.stderr.strip()}",
                                  where=f"host {self.host}")
            return base64.b64decode(r.stdout)
        with open(path, "rb") as fh:
            return fh.read()

    def _put_as_become_user(self, data: bytes, path: str, mode: int) -> None:
        fd, staged = tempfile.mkstemp(prefix=".bootstrap-")  # 0600, ours
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(staged, 0o644)  # the become user reads it to copy it
            q = shlex.quote
            parent, base = os.path.split(path)
            final_tmp = f"{parent or '.'}/.{base}.{os.getpid()}.tmp"
            r = self.run(f"mkdir -p {q(parent or '.')} && install -m {mode:04o} {q(staged)} "
                         f"{q(final_tmp)} && mv -f {q(final_tmp)} {q(path)}", check=False)
            if not r.ok:
                raise RemoteError(f"cannot write {path}: {r.stderr.strip()}",
                                  where=f"host {self.host}")
        finally:
            os.unlink(staged)

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"LocalConnection({self.host!r})"
