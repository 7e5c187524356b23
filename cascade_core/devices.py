"""Device and precision policy: which device and dtype a model runs in."""
from __future__ import annotations

import ctypes
import functools
import gc

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA, then Apple MPS, then the CPU; an explicit device must be present."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device mps was asked for but Apple MPS is not available; use --device cpu or auto")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto`: bfloat16 on a GPU that supports it, float32 elsewhere (CPU bf16 is slow)."""
    if name == "auto":
        if device.type == "cuda" and supports_bfloat16(device):
            return torch.bfloat16
        return torch.float32
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; use one of auto, {', '.join(DTYPES)}")
    return DTYPES[name]


def supports_bfloat16(device: torch.device) -> bool:
    """Whether the device runs bfloat16 natively (CPUs emulate it where needed, slowly but exactly)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return True


def release_memory(device: torch.device) -> None:
    """Hand memory cached by a failed or stopped run back to the device's driver (once its tensors are gone)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
    trim_host_heap()


def trim_host_heap() -> None:
    """Give the free pages inside the C heap back to the OS (glibc's `malloc_trim`; elsewhere nothing).

    A CPU run frees and reallocates buffers of many sizes (activations; packed weights, remade
    when the batch or image size changes). glibc keeps the freed holes in the heap, so the resident
    memory of a long session would creep up (bench/soak.py measured +150 MiB over 900 runs). It
    takes milliseconds.
    """
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):  # not Linux with glibc (musl, macOS, Windows)
        return None


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so that stage timings measure the work itself."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
