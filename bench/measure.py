"""Timing, FLOP counting, peak memory and the device's measured matmul peak."""
from __future__ import annotations

import resource
import statistics
import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from cascade_core.devices import synchronize
from cascade_core.cpu_layers import ONEDNN


def timed(fn: Callable, device: torch.device) -> tuple[float, float]:
    """Wall seconds and process CPU seconds of one call, the device's queued work included."""
    synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def interleaved(calls: dict[str, Callable], device: torch.device, repeats: int, warmup: int = 1) -> dict:
    """Wall and CPU seconds of each call, run in turns (A, B, A, B, …) so that a shared
    machine's load falls on all of them alike: medians, minima and every run.

    On a CPU shared with other work, CPU time (with one thread: the work itself) moves far
    less than wall time, which counts the time the process waited for a core.
    """
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    runs = {name: {"wall": [], "cpu": []} for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            wall, cpu = timed(fn, device)
            runs[name]["wall"].append(wall)
            runs[name]["cpu"].append(cpu)
    return {name: {"median_s": statistics.median(r["wall"]), "min_s": min(r["wall"]),
                   "cpu_median_s": statistics.median(r["cpu"]), "runs_s": r["wall"], "cpu_runs_s": r["cpu"]}
            for name, r in runs.items()}


def speedups(times: dict, ours: str = "ours", theirs: str = "diffusers") -> dict:
    """theirs / ours: of the wall medians, of the CPU-time medians, and the median of the
    run-by-run ratios (each pair ran back to back, so it shared the same load)."""
    a, b = times[ours], times[theirs]
    pairs = [t / o for o, t in zip(a["runs_s"], b["runs_s"])]
    return {"wall": b["median_s"] / a["median_s"], "cpu": b["cpu_median_s"] / a["cpu_median_s"],
            "paired_wall": statistics.median(pairs)}


def count_flops(fn: Callable) -> int:
    """FLOPs of one call (torch.utils.flop_counter: matrix products, convolutions, attention)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def matmul_peak(device: torch.device, dtype: torch.dtype, seconds: float = 2.0) -> float:
    """Measured FLOP/s of a large square matmul (2048² on the CPU, plain and through oneDNN as our steps
    run; 8192² on a GPU): its fastest call in `seconds`, so that other load on a shared machine does not
    lower it."""
    n = 8192 if device.type == "cuda" else 2048
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    calls = [lambda: torch.mm(a, b)]
    if device.type == "cpu" and dtype == torch.float32 and ONEDNN:  # also through oneDNN, as our steps run
        calls.append(lambda: torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], ""))
    best = float("inf")
    for call in calls:
        call()
        start = time.perf_counter()
        while time.perf_counter() - start < seconds / len(calls):
            best = min(best, timed(call, device)[0])
    return 2 * n**3 / best


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int:
    """Peak allocated device memory since the last reset (CUDA); on the CPU the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
