"""Errors the engine raises for problems a user can fix; each message names the fix."""
from __future__ import annotations


class ModelLoadError(RuntimeError):
    """A model could not be found, fetched or loaded; the message names the file and what to do."""


def first_line(error: Exception) -> str:
    """The first line of an exception's message, at most 200 characters: enough to name a cause."""
    return (str(error).strip().splitlines() or [""])[0][:200]
