"""GPU: one model, every measurement of how close a request comes to the floor, each section saved as it ends.

Sections, in order (a section that fails is recorded and the next one runs; `bench/gpu.sh` gives the
whole script a deadline, and what finished is in the JSON):

- eager: whole requests, 1 and 4 images (Stage C 20 steps guidance 4, Stage B 10 steps guidance 1.1),
  per stage and per step; time to the first Stage C preview (the studio's cadence, every 5 steps, and every step).
- graphs: the same with each step replayed from a CUDA graph (cuda_graphs.py); largest difference to eager.
- batching: 8 simultaneous one-image requests, one at a time against batched (bench/batching.py), with graphs.
- diffusers: one image, ours (graphs) against diffusers' pipelines on the same weights, interleaved.
- syncs: the CUDA runtime's synchronizing calls during one request, counted by the profiler; the loop
  should have none (the stage clock's five marks are the expected ones).
- sdpa: each attention shape of a step, timed with every SDPA backend; which one PyTorch picks.
- compiled: blocks compiled (`--compile default`) under the graphs; compile time, then 1 and 4 images.

Random weights of the released architectures (the time is the same as the released ones).
Run: python -m bench.floor --json OUT.json [--variant full --size 1024 --dtype bfloat16]
(`--device cpu --variant tiny --size 256 --sections eager,sdpa` checks the script without a GPU.)
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import json
import statistics
import time
import traceback

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

import cascade_core as cc
from cascade_core import compiling, cpu_layers, cuda_graphs
from cascade_core.devices import DTYPES, resolve_device, synchronize

from . import batching, measure
from .request import PROMPT, TOKENIZER, compare_request, ours, random_model

SECTIONS = ("eager", "graphs", "batching", "diffusers", "syncs", "sdpa", "compiled")


def request(args, images: int) -> cc.GenerationRequest:
    return cc.GenerationRequest(PROMPT, seed=0, width=args.size, height=args.size, prior_steps=args.prior_steps,
                                decoder_steps=args.decoder_steps, num_images=images)


def requests_timed(model, args, repeats: int = 3) -> dict:
    """1 and 4 images: one warm-up, then `repeats` runs each; medians of the whole and of each stage."""
    result = {}
    for images in (1, 4):
        measure.reset_peak_memory(model.device)
        runs = [ours(model, request(args, images)) for _ in range(repeats + 1)][1:]
        result[f"b{images}"] = {"total_s": statistics.median(r["total"] for r in runs),
                                "runs_s": [r["total"] for r in runs],
                                "peak_memory_bytes": measure.peak_memory_bytes(model.device),
                                "stages": {k: statistics.median(r[k] for r in runs) for k in runs[0]}}
    return result


def first_preview(model, args) -> dict:
    """Seconds from the start to the first event that carries a Stage C preview image (a progress event's, or
    the one at Stage C's end when the steps are fewer than the cadence)."""
    result = {}
    for every in (5, 1):
        start = time.perf_counter()
        for event in cc.generate(model, request(args, 1), preview_every=every, decode_every=0):
            if isinstance(event, (cc.StageProgress, cc.StageDone)) and event.previews:
                step = event.preview_step if isinstance(event, cc.StageProgress) else args.prior_steps
                result[f"every_{every}"] = {"seconds": time.perf_counter() - start, "shows_step": step}
                break
    return result


def final_latents(model, args) -> dict:
    finished = list(cc.generate(model, request(args, 1), preview_every=0, decode_every=0, keep_tensors=True))[-1]
    return {k: finished.tensors[k] for k in ("latent_c", "latent_b")}


def eager(model, args, state) -> dict:
    state["eager_latents"] = final_latents(model, args)
    return {**requests_timed(model, args), "first_preview": first_preview(model, args)}


def graphs(model, args, state) -> dict:
    graphed = [cuda_graphs.enable(net) for net in (model.stage_c, model.stage_b)]
    start = time.perf_counter()
    latents = final_latents(model, args)  # captures the batch-1 graphs
    captured = time.perf_counter() - start
    difference = {k: (latents[k] - state["eager_latents"][k]).abs().max().item() for k in latents}
    return {"first_request_with_capture_s": captured, "max_abs_difference_to_eager": difference,
            **requests_timed(model, args), "first_preview": first_preview(model, args),
            "captures": [g.captures if g else 0 for g in graphed]}


def batched(model, args, state) -> dict:
    return batching.compare(model, 8, args.size, args.prior_steps, args.decoder_steps)


def against_diffusers(model, args, state) -> dict:
    return compare_request(model, request(args, 1), repeats=3, with_diffusers=True)


BLOCKING = {"cudaMemcpy", "cudaMemset", "cudaHostAlloc", "cudaFreeHost", "cudaFree", "cudaMallocHost"}


def synchronizing(name: str) -> bool:
    """A CUDA runtime call after which the host has waited for the device."""
    return "Synchronize" in name or name in BLOCKING


def syncs(model, args, state) -> dict:
    """Calls that make the host wait for the device, by name, during one request (profiler's CUDA runtime events)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in cc.generate(model, request(args, 1), preview_every=5, decode_every=0):
            pass
    counts = collections.Counter(e.name for e in prof.events() if synchronizing(e.name))
    return {"counts": dict(counts), "steps": args.prior_steps + args.decoder_steps,
            "expected": "the stage clock synchronizes at text, stage_c, preview, stage_b and stage_a marks"}


class _Attention(TorchFunctionMode):
    """Records the q, k, v shapes and strides of every scaled_dot_product_attention call."""

    def __init__(self):
        super().__init__()
        self.seen = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.scaled_dot_product_attention:
            q, k = args[0], args[1]
            self.seen.setdefault((tuple(q.shape), tuple(k.shape)), 0)
            self.seen[(tuple(q.shape), tuple(k.shape))] += 1
        return func(*args, **(kwargs or {}))


def sdpa(model, args, state) -> dict:
    """Each attention shape of a one-image request's steps, timed with each backend (ms, median of 20)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    recorder = _Attention()
    with recorder:
        for _ in cc.generate(model, cc.GenerationRequest(PROMPT, seed=0, width=args.size, height=args.size,
                                                         prior_steps=1, decoder_steps=1), preview_every=0,
                             decode_every=0):
            pass
    backends = {"default": None, "flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}
    rows = []
    for (q_shape, k_shape), calls in recorder.seen.items():
        b, heads, n, d = q_shape
        make = lambda length: torch.randn(b, length, heads, d, device=model.device, dtype=model.dtype).transpose(1, 2)
        q, k, v = make(n), make(k_shape[2]), make(k_shape[2])
        times = {}
        for name, backend in backends.items():
            try:
                with sdpa_kernel(backend) if backend is not None else contextlib.nullcontext():
                    times[name] = statistics.median(
                        measure.timed(lambda: F.scaled_dot_product_attention(q, k, v), model.device)[0]
                        for _ in range(20)) * 1e3
            except RuntimeError as e:  # this backend does not take these shapes
                times[name] = f"unavailable: {str(e).splitlines()[0][:80]}"
        numbers = {k: t for k, t in times.items() if isinstance(t, float) and k != "default"}
        rows.append({"q": q_shape, "k": k_shape, "calls_per_request": calls, "ms": times,
                     "fastest": min(numbers, key=numbers.get) if numbers else None})
    return {"shapes": rows}


def compiled(model, args, state) -> dict:
    for net in (model.stage_c, model.stage_b):
        cpu_layers.unswap(net)  # as runtime.apply compiles: plain layers (on a GPU nothing was swapped)
        compiling.compile_blocks(net, "default")
        cuda_graphs.enable(net)  # new graphs, of the compiled blocks
    start = time.perf_counter()
    final_latents(model, args)  # compiles (inductor's disk cache is empty on a fresh machine), then captures
    return {"first_request_compiling_s": time.perf_counter() - start, **requests_timed(model, args)}


RUNS = {"eager": eager, "graphs": graphs, "batching": batched, "diffusers": against_diffusers, "syncs": syncs,
        "sdpa": sdpa, "compiled": compiled}


def _summary(name: str, section: dict) -> str:
    if "error" in section:
        return f"{name}: FAILED {section['error']}"
    if "b1" in section:
        return (f"{name}: 1 image {section['b1']['total_s']:.3f} s, 4 images {section['b4']['total_s']:.3f} s"
                + (f"; first preview {section['first_preview']['every_5']['seconds']:.3f} s (every 5 steps), "
                   f"{section['first_preview']['every_1']['seconds']:.3f} s (every step)"
                   if "first_preview" in section else ""))
    if name == "batching":
        a, b = section["one_at_a_time"], section["batched"]
        return (f"batching: {a['images_per_minute']:.1f} -> {b['images_per_minute']:.1f} images/min; median latency "
                f"{a['median_latency_s']:.2f} -> {b['median_latency_s']:.2f} s, max {a['max_latency_s']:.2f} -> "
                f"{b['max_latency_s']:.2f} s")
    if name == "diffusers":
        return f"diffusers: speedup at 1 image {section['speedup_vs_diffusers']['wall']:.2f}x (wall)"
    if name == "syncs":
        return f"syncs in one request of {section['steps']} steps: {section['counts']}"
    if name == "sdpa":
        return "sdpa fastest: " + ", ".join(f"{r['q']}->{r['fastest']}" for r in section["shapes"])
    return name


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--variant", default="full")
    p.add_argument("--dtype", default="bfloat16", choices=list(DTYPES))
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--prior-steps", type=int, default=20)
    p.add_argument("--decoder-steps", type=int, default=10)
    p.add_argument("--sections", default=",".join(SECTIONS), type=lambda s: s.split(","))
    p.add_argument("--tokenizer", default=str(TOKENIZER))
    p.add_argument("--json", required=True, help="the results, rewritten after each section")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    result = {"what": "floor", "args": vars(args), "torch": torch.__version__,
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(), "sections": {}}
    start = time.perf_counter()
    model = random_model(args.variant, DTYPES[args.dtype], device, args.tokenizer)
    synchronize(device)
    result["model_build_s"] = time.perf_counter() - start
    state = {}
    for name in args.sections:
        began = time.perf_counter()
        try:
            with torch.inference_mode():
                section = RUNS[name](model, args, state)
        except Exception as e:  # noqa: BLE001 - a failed section is recorded; the next one runs
            traceback.print_exc()
            section = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"}
        section["section_s"] = time.perf_counter() - began
        result["sections"][name] = section
        print(f"[{time.perf_counter() - start:6.1f} s] {_summary(name, section)}", flush=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, default=str)


if __name__ == "__main__":
    main()
