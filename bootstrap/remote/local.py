"""Run on this machine: the same interface as SSH, through subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from bootstrap.errors import RemoteError
from bootstrap.remote.result import RemoteCommandError, RemoteTimeout, Result


class LocalConnection:
    def __init__(self, host: str = "localhost"):
        self.host = host

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
            proc = subprocess.run(
                ["sh", "-c", cmd],
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
        with open(path, "rb") as fh:
            return fh.read()

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"LocalConnection({self.host!r})"
