"""Soak: many generations in one process on the demo model; memory, threads and files must stay flat.

    python bench/soak.py [--runs 300] [--every 25] [--bound-mib 64]

Each run goes the studio's way (ui.generation.stream: the engine in a worker thread, every image
saved to an outputs folder in a temporary directory). Every `--every` runs it prints the resident
memory (RSS), the thread count and the open file descriptors. It fails (exit status 1) if any
later sample's RSS exceeds the first one (taken after the warm-up: caches, allocator pools) by
more than `--bound-mib` MiB, or if threads or file descriptors grow at all.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cascade_core as cc  # noqa: E402
from ui.generation import Services, stream  # noqa: E402
from ui.model_holder import ModelHolder  # noqa: E402
from ui.outputs import OutputsWriter  # noqa: E402

MIB = 2**20


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def one_run(services: Services, k: int) -> None:
    request = cc.GenerationRequest(f"soak run {k}", width=256, height=256, seed=k, prior_steps=2, decoder_steps=2,
                                   num_images=1 + k % 2)
    last = None
    for last in stream(services, "soak", request):
        pass
    if not (last and last.status.startswith("Done") and len(last.saved) == request.num_images):
        raise SystemExit(f"run {k} did not finish: {last and last.status}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--every", type=int, default=25)
    p.add_argument("--bound-mib", type=float, default=64.0, help="allowed RSS growth after the warm-up")
    args = p.parse_args(argv)
    holder = ModelHolder(demo=True).start()
    holder.wait(600)
    with tempfile.TemporaryDirectory() as outputs:
        services = Services(holder, OutputsWriter(outputs))
        start = time.perf_counter()
        print(f"{'runs':>5} {'RSS MiB':>8} {'threads':>7} {'fds':>4} {'images':>6} {'s/run':>6}", flush=True)
        samples = []
        for k in range(1, args.runs + 1):
            one_run(services, k)
            if k % args.every == 0 or k == args.runs:
                images = len(list(Path(outputs).glob("*/*.png")))
                samples.append((k, rss_bytes(), threading.active_count(), open_files()))
                print(f"{k:>5} {samples[-1][1] / MIB:>8.1f} {samples[-1][2]:>7} {samples[-1][3]:>4} {images:>6} "
                      f"{(time.perf_counter() - start) / k:>6.2f}", flush=True)
    (_, rss0, threads0, fds0), (_, rss1, threads1, fds1) = samples[0], samples[-1]
    growth = (max(rss for _, rss, _, _ in samples) - rss0) / MIB
    ok = growth <= args.bound_mib and threads1 <= threads0 and fds1 <= fds0
    print(f"RSS: at most {growth:+.1f} MiB over the sample after {samples[0][0]} runs, {(rss1 - rss0) / MIB:+.1f} MiB "
          f"at the end (bound {args.bound_mib:g} MiB); threads {threads0} → {threads1}; open files {fds0} → {fds1}: "
          f"{'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
