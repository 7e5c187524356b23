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


def dtype_of(net: torch.nn.Module) -> torch.dtype:
    """The dtype a network computes in: that of its parameters (loading casts each network once)."""
    return next(net.parameters()).dtype


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


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
HEAP_BUFFERS_UP_TO = 1 << 30  # bytes: larger buffers are still mapped from the OS one by one
HEAP_KEPT_UP_TO = 2**31 - 1  # bytes of free heap glibc may keep between trims (its largest setting)


def reuse_host_buffers() -> bool:
    """Serve large CPU buffers from one reusable heap instead of fresh OS mappings (glibc; elsewhere nothing).

    glibc maps every buffer over 32 MiB straight from the OS and unmaps it when freed, so each large
    activation of a CPU step is page-faulted and zeroed again: a lite Stage B step at 1024² took
    3.5 million page faults and 9 s in the kernel (bench/RESULTS.md, "Reused host buffers"). With
    buffers up to 1 GiB kept in the heap, a step reuses the pages the previous one freed. One arena
    serves every thread, so the studio's worker threads reuse them too (a thread's own arena maps
    anything over 64 MiB afresh). `trim_host_heap` hands the free pages back at the end of each
    request. Process-wide; returns whether it took effect.
    """
    libc = _glibc()
    if libc is None:
        return False
    one_arena = libc.mallopt(_M_ARENA_MAX, 1) == 1
    return set_host_heap_limits(HEAP_BUFFERS_UP_TO, HEAP_KEPT_UP_TO) and one_arena


def set_host_heap_limits(buffers_up_to: int, kept_up_to: int) -> bool:
    """glibc: buffers up to `buffers_up_to` bytes come from the heap (larger ones are mapped from the OS
    one by one), and up to `kept_up_to` bytes of free heap stay between trims. Returns whether both took."""
    libc = _glibc()
    if libc is None:
        return False
    mapped = libc.mallopt(_M_MMAP_THRESHOLD, buffers_up_to) == 1
    kept = libc.mallopt(_M_TRIM_THRESHOLD, kept_up_to) == 1
    return mapped and kept


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
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        return libc
    except (OSError, AttributeError):  # not Linux with glibc (musl, macOS, Windows)
        return None


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so that stage timings measure the work itself."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def upload(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor copied to `device` without making the host wait: through pinned memory on CUDA."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
