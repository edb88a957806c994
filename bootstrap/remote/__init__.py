"""Connections to hosts: one small runner interface, three implementations.

``Connection`` is what the engine and flows talk to. ``SSHConnection``
(paramiko, one transport per host reused for every command and SFTP transfer)
reaches real and sandbox hosts, ``LocalConnection`` runs on this machine, and
``FakeConnection`` is shipped for unit tests at this boundary.

Every failure to reach or use a host is a ``RemoteError`` (a ``UserError``):
one line naming the host, never a traceback.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from bootstrap.remote.result import RemoteCommandError, RemoteTimeout, Result

__all__ = [
    "Connection",
    "RemoteCommandError",
    "RemoteTimeout",
    "Result",
]


@runtime_checkable
class Connection(Protocol):
    """What every connection offers; commands run through ``sh -c``."""

    host: str

    def run(
        self,
        cmd: str,
        *,
        timeout: float | None = 60,
        check: bool = True,
        input: str | bytes | None = None,
        env: dict | None = None,
    ) -> Result: ...

    def put(self, data: bytes, path: str, mode: int = 0o644) -> None: ...

    def put_file(self, local_path: str, remote_path: str, mode: int | None = None) -> None: ...

    def get(self, path: str) -> bytes: ...

    def close(self) -> None: ...
