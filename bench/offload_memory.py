"""Measured peak GPU memory and time of one request in each offload mode (bench/gpu.sh runs it).

Random weights of the real architectures (the memory and time are the same as the released
ones), bfloat16, one image at 1024×1024: Stage C 20 steps guidance 4, Stage B 10 steps guidance
1.1 (sequential mode: 2 + 2 steps, as each step's peak is the same and it is slow). Peak memory
is torch.cuda.max_memory_allocated (tensors) and max_memory_reserved (what the allocator holds).
Run: python bench/offload_memory.py [--variant full lite] [--device cuda] [--json OUT]   (`--device cpu
--variant tiny` checks the script itself on a machine without a GPU.)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cascade_core as cc  # noqa: E402
from bench.request import random_model  # noqa: E402
from cascade_core.model import CascadeModel  # noqa: E402
from cascade_core.offload import Placement  # noqa: E402
from cascade_core.text import TextEncoder  # noqa: E402
from cascade_core.units import format_bytes  # noqa: E402


def placed(model: CascadeModel, device: torch.device, mode: str) -> CascadeModel:
    """The same networks, placed for `mode`: on the device for none, in host memory otherwise."""
    networks = model.networks()
    for net in networks.values():
        net.to(device if mode == "none" else "cpu")
    text = TextEncoder(model.text_encoder.tokenizer, model.text_encoder.model, device)
    return CascadeModel(name=model.name, stage_c=model.stage_c, stage_b=model.stage_b, stage_a=model.stage_a,
                        previewer=model.previewer, text_encoder=text, device=device, dtype=model.dtype,
                        variant=model.variant, placement=Placement(networks, device, mode))


def measure(model: CascadeModel, steps: tuple[int, int], size: int) -> tuple[float, int, int]:
    request = cc.GenerationRequest("a red fox in the snow", width=size, height=size, seed=1,
                                   prior_steps=steps[0], decoder_steps=steps[1])
    cuda = model.device.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(model.device)
    start = time.perf_counter()
    for _ in cc.generate(model, request, preview_every=0, decode_every=0):
        pass
    seconds = time.perf_counter() - start
    if not cuda:
        return seconds, 0, 0
    return seconds, torch.cuda.max_memory_allocated(model.device), torch.cuda.max_memory_reserved(model.device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", nargs="+", default=["full", "lite"])
    p.add_argument("--device", default="cuda")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--json", help="write the rows here (rewritten after each)")
    args = p.parse_args()
    rows = []
    device = torch.device(args.device)
    print(f"| variant | offload | peak allocated | peak reserved | request time ({args.size}×{args.size}) |")
    print("|---|---|---|---|---|")
    for variant in args.variant:
        model = random_model(variant, torch.bfloat16, torch.device("cpu"))
        for mode in ("none", "model", "sequential"):
            steps = (2, 2) if mode == "sequential" else (20, 10)
            run = placed(model, device, mode)
            measure(run, (1, 1), args.size)  # warm-up: kernels, allocator
            seconds, allocated, reserved = measure(run, steps, args.size)
            print(f"| {variant} | {mode} | {format_bytes(allocated)} | {format_bytes(reserved)} | "
                  f"{seconds:.2f} s ({steps[0]}+{steps[1]} steps) |", flush=True)
            rows.append({"variant": variant, "offload": mode, "size": args.size, "peak_allocated_bytes": allocated,
                         "peak_reserved_bytes": reserved, "seconds": seconds, "steps": list(steps)})
            if args.json:
                with open(args.json, "w") as f:
                    json.dump({"what": "offload_memory", "torch": torch.__version__, "rows": rows}, f, indent=1)
            del run


if __name__ == "__main__":
    main()
