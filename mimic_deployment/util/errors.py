"""The one error type for user mistakes.

Raised anywhere, rendered once at the CLI boundary as a single line on stderr with exit
code 2 — before anything is written or launched. Anything else that escapes is a bug and
keeps its traceback.
"""
from __future__ import annotations

USER_ERROR_EXIT = 2


class UserError(Exception):
    """A mistake the user can fix: bad flag, bad env var, bad config, unknown name."""

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message
