"""Reused host buffers against glibc's default, on the same CPU step in one process, in turns.

    python bench/host_buffers.py [--variant lite] [--size 1024 | --latent 64x64] [--stage stage_b] [--pairs 2]

Times one guided float32 step (batch 2) with packed weights, as the studio runs it, under two
allocator settings switched with glibc's `mallopt` between runs (order alternating per pair):

- `mapped`: buffers over 32 MiB mapped from the OS and unmapped when freed, with up to 64 MiB of free
  heap kept. That is where glibc's default ends up once its adaptive threshold has reached its
  ceiling, and what it always does with buffers over 32 MiB.
- `reused`: `cascade_core.devices.reuse_host_buffers` (buffers up to 1 GiB from the heap, kept).

Each timed step follows an untimed one in the same setting, and the heap is trimmed before each
switch. Prints wall time, kernel (sys) time and minor page faults per step. A separate process
per setting is no substitute: on a shared machine the speed of the CPU drifts between processes
by more than the difference measured here.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.networks import random_network, variant_network  # noqa: E402
from bench.steps import stage_latent, step_inputs  # noqa: E402
from cascade_core import devices, runtime  # noqa: E402

MAPPED_ABOVE, MAPPED_KEEP = 32 * 2**20, 64 * 2**20  # glibc's adaptive mmap threshold at its ceiling, 2x for trimming


def mapped_setting() -> None:
    devices.trim_host_heap()
    devices.set_host_heap_limits(MAPPED_ABOVE, MAPPED_KEEP)


def reused_setting() -> None:
    devices.trim_host_heap()
    devices.reuse_host_buffers()


def usage() -> tuple[float, int]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_stime, r.ru_minflt


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", default="lite")
    p.add_argument("--stage", default="stage_b", choices=["stage_c", "stage_b"])
    p.add_argument("--size", type=int, default=1024, help="image size whose latent is used")
    p.add_argument("--latent", help="HxW instead of --size's latent, e.g. 64x64")
    p.add_argument("--pairs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if not devices.reuse_host_buffers():
        sys.exit("needs glibc (Linux)")
    torch.set_num_threads(args.threads)
    latent = stage_latent(args.stage, args.size, args.latent)
    net = random_network(variant_network(args.stage, args.variant), torch.float32, torch.device("cpu"))
    runtime.apply({args.stage: net}, torch.device("cpu"), host_buffer_reuse=False)  # packed weights, as loaded
    _, x, r, prepare = step_inputs(net, 1, latent, torch.float32, "cpu")
    settings = {"mapped": mapped_setting, "reused": reused_setting}
    rows = {name: [] for name in settings}
    with torch.inference_mode():
        prepared = prepare()
        net.step(x, r, prepared)  # packs the weights
        for pair in range(args.pairs):
            for name in (list(settings) if pair % 2 == 0 else list(settings)[::-1]):
                settings[name]()
                net.step(x, r, prepared)  # settles into the setting
                sys0, faults0 = usage()
                start = time.perf_counter()
                net.step(x, r, prepared)
                wall = time.perf_counter() - start
                sys1, faults1 = usage()
                rows[name].append((wall, sys1 - sys0, faults1 - faults0))
                print(f"pair {pair + 1} {name:6}: {wall:8.3f} s wall, {sys1 - sys0:6.3f} s sys, "
                      f"{faults1 - faults0:>9} page faults", flush=True)
    print(f"{args.variant} {args.stage} {'x'.join(map(str, latent))}, batch 2, {args.threads} thread(s), medians:")
    for name, values in rows.items():
        wall, sys_s, faults = (statistics.median(column) for column in zip(*values))
        print(f"  {name:6}: {wall:8.3f} s wall, {sys_s:6.3f} s sys, {faults:>11.0f} page faults per step")
    mapped, reused = (statistics.median(v[0] for v in rows[k]) for k in ("mapped", "reused"))
    print(f"  reused / mapped, wall time: {reused / mapped:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
