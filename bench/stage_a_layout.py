"""Stage A's decode with channels-last activations (as `StageA.decode` runs) against channels-first
ones (as it ran before), on the same weights and latent, in turns in one process.

    python bench/stage_a_layout.py [--size 1024] [--images 1] [--pairs 3] [--threads 1]
                                   [--device auto] [--dtype float32]

Random weights of the released Stage A architecture. Prints each layout's decode times, their ratio
and the largest difference between the two outputs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench import measure  # noqa: E402
from bench.networks import random_network, variant_network  # noqa: E402
from cascade_core.devices import resolve_device, reuse_host_buffers  # noqa: E402
from cascade_core.pipeline import latent_shapes  # noqa: E402


def channels_first_decode(stage_a, latent: torch.Tensor) -> torch.Tensor:
    """StageA.decode without its change of memory layout: NCHW activations throughout."""
    return stage_a.out_block(stage_a.up_blocks(latent * stage_a.config.scale_factor))


@torch.inference_mode()
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="image width and height in pixels")
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (ignored on a GPU)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
        reuse_host_buffers()  # as a CPU model runs
    dtype = getattr(torch, args.dtype)
    stage_a = random_network(variant_network("stage_a", "full"), dtype, device)
    _, shape_b = latent_shapes(args.size, args.size)
    latent = torch.randn(args.images, *shape_b, generator=torch.Generator().manual_seed(0)).to(device, dtype)
    calls = {"channels-first": lambda: channels_first_decode(stage_a, latent),
             "channels-last": lambda: stage_a.decode(latent)}
    times = measure.interleaved(calls, device, args.pairs, warmup=1)
    difference = (stage_a.decode(latent).float() - channels_first_decode(stage_a, latent).float()).abs().max().item()
    print(f"Stage A decode, {args.images} x {args.size}x{args.size}, {args.dtype} on {device}, "
          f"{args.pairs} pairs after one warm-up")
    for name, t in times.items():
        print(f"{name:15} median {t['median_s']:.3f} s (runs {', '.join(f'{s:.3f}' for s in t['runs_s'])})")
    ratio = measure.speedups(times, ours="channels-first", theirs="channels-last")  # last / first
    print(f"channels-last / channels-first: {ratio['wall']:.3f} (paired median {ratio['paired_wall']:.3f}); "
          f"largest output difference {difference:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
