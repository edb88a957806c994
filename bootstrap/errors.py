"""Errors a user can act on.

Anything raised as a ``UserError`` reaches the terminal as one line (what is
wrong, where, how to fix it) and exit code 2, never as a traceback. Modules at
every layer may raise it; only the CLI catches it.
"""


class UserError(Exception):
    """Bad input or an environment problem the user can fix."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self.line())

    def line(self) -> str:
        parts = []
        if self.where:
            parts.append(f"{self.where}: ")
        parts.append(self.message)
        if self.hint:
            parts.append(f" ({self.hint})")
        return "".join(parts)


class RemoteError(UserError):
    """A host could not be reached or refused us; the message names the host."""

    exit_code = 1
