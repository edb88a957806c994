"""A connection for unit tests: canned results in, recorded commands out.

``responses`` maps a regular expression to a ``Result`` (or a callable
``cmd -> Result``); the first pattern that ``re.search``es the command wins,
and unmatched commands succeed with empty output. ``files`` is the host's
file system as far as ``put``/``get`` are concerned; ``put`` writes into it so
a second run of an operation sees what the first one wrote.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bootstrap.remote.result import RemoteCommandError, Result

Response = Result | Callable[[str], Result]


class FakeConnection:
    def __init__(
        self,
        host: str = "fake",
        responses: dict[str, Response] | None = None,
        files: dict[str, bytes] | None = None,
    ):
        self.host = host
        self.responses: dict[str, Response] = dict(responses or {})
        self.files: dict[str, bytes] = dict(files or {})
        self.modes: dict[str, int] = {}
        self.commands: list[str] = []
        self.inputs: list[str | bytes | None] = []
        self.puts: list[str] = []
        self.closed = False

    def respond(self, pattern: str, result: Response) -> None:
        # Newest first, so a test can override an earlier answer, including one
        # given for the very same pattern (which must move to the front too).
        rest = {p: r for p, r in self.responses.items() if p != pattern}
        self.responses = {pattern: result, **rest}

    def run(self, cmd, *, timeout=60, check=True, input=None, env=None) -> Result:
        self.commands.append(cmd)
        self.inputs.append(input)
        result = Result(0, "", "")
        for pattern, response in self.responses.items():
            if re.search(pattern, cmd):
                result = response(cmd) if callable(response) else response
                break
        if check and not result.ok:
            raise RemoteCommandError(self.host, cmd, result)
        return result

    def put(self, data: bytes, path: str, mode: int = 0o644) -> None:
        self.files[path] = bytes(data)
        self.modes[path] = mode
        self.puts.append(path)

    def put_file(self, local_path: str, remote_path: str, mode: int | None = None) -> None:
        with open(local_path, "rb") as fh:
            self.put(fh.read(), remote_path, 0o644 if mode is None else mode)

    def get(self, path: str) -> bytes:
        if path not in self.files:
            raise FileNotFoundError(2, f"{self.host}: no such file", path)
        return self.files[path]

    def close(self) -> None:
        self.closed = True

    def __repr__(self) -> str:
        return f"FakeConnection({self.host!r})"
