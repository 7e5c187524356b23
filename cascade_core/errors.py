"""Errors the engine raises for problems a user can fix; each message names the fix."""
from __future__ import annotations

import torch


class RequestError(ValueError):
    """A request field is out of range or of the wrong type; `field` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


class ModelLoadError(RuntimeError):
    """A model could not be found, fetched or loaded; the message names the file and what to do."""


def first_line(error: Exception) -> str:
    """The first line of an exception's message, at most 200 characters: enough to name a cause."""
    return (str(error).strip().splitlines() or [""])[0][:200]


def is_out_of_memory(error: BaseException) -> bool:
    """An allocation failed: torch.OutOfMemoryError (CUDA, MPS, XPU), MemoryError (Python's own), or
    the error of PyTorch's CPU allocator, a plain RuntimeError whose message names that allocator."""
    return (isinstance(error, (torch.OutOfMemoryError, MemoryError))
            or isinstance(error, RuntimeError) and "DefaultCPUAllocator" in str(error))
