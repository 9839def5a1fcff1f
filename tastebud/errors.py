"""One error hierarchy: the CLI maps each class to one line and an exit code."""

from typing import Any

QUOTE_CHARS = 100  # an error message quotes at most this much of the offending input
MAX_MESSAGE_CHARS = 500  # and is never longer than this, whatever it quotes


def quote(raw: Any, limit: int = QUOTE_CHARS) -> str:
    """Offending input for an error message, cut to `limit` characters: a
    900,000-character id must not come back as a 900 KB message."""
    try:
        text = raw if isinstance(raw, str) else str(raw)
    except ValueError:  # an integer too long to print
        return "(a huge number)"
    return repr(text if len(text) <= limit else text[:limit] + "…")


def cap(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """The last guard before a message leaves the process."""
    return message if len(message) <= limit else message[: limit - 1] + "…"


class TastebudError(Exception):
    """Base of every error tastebud raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} ({self.hint})" if self.hint else base


class ConfigError(TastebudError):
    """Settings are missing or contradictory."""

    exit_code = 78  # EX_CONFIG


class InputError(TastebudError):
    """The caller gave us something we cannot use (bad file, bad argument)."""

    exit_code = 65  # EX_DATAERR


class NotFoundError(TastebudError):
    """A user, item, profile or request that does not exist."""

    exit_code = 66  # EX_NOINPUT


class StoreError(TastebudError):
    """The event store or vector store failed or is at the wrong schema."""

    exit_code = 74  # EX_IOERR


class ModelError(TastebudError):
    """An LLM or embedding model is missing, corrupt, or not answering."""

    exit_code = 69  # EX_UNAVAILABLE


class PermissionDenied(TastebudError):
    """A role tried to reach data or a tool it may not."""

    exit_code = 77  # EX_NOPERM
