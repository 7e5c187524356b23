"""`python -m bench steps|request|parity|profile|traffic …`: print a table, write JSON.

steps: one guided step per stage, ours and diffusers', interleaved; FLOPs, TFLOP/s, share of
the measured matmul peak. profile: where a step's time goes, operator by operator. traffic: the
bytes each operator of a step moves (counted on the meta device: no weights, no device needed). request: a whole request, per stage, against diffusers' pipelines.
parity: one step in a low-precision dtype against float32."""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys

import torch

from cascade_core import cpu_layers, runtime
from cascade_core.devices import DTYPES, resolve_device
from cascade_core.options import COMPILE_MODES
from cascade_core.request import GenerationRequest

from . import measure
from .networks import random_network, variant_network
from .breakdown import print_profile, profile_step
from .traffic import print_traffic, step_traffic
from .request import PROMPT, TOKENIZER, compare_request, random_model
from .steps import compare_step, our_call, stage_latent, step_inputs


def _latents(args) -> dict[str, tuple[int, int]]:
    """Each stage's latent HxW: --c-latent / --b-latent, else those of a --size image."""
    return {"stage_c": stage_latent("stage_c", args.size, args.c_latent),
            "stage_b": stage_latent("stage_b", args.size, args.b_latent)}


def _as_the_studio_runs_it(net, stage: str, args):
    """runtime.apply, as loading a model does: compiled blocks, or on the CPU the oneDNN products and GRN's
    CPU norm; reused host buffers. --plain-products / --no-buffer-reuse turn those off."""
    runtime.apply({stage: net}, next(net.parameters()).device, compile=args.compile, cpu_products=args.products,
                  host_buffer_reuse=args.buffer_reuse)
    return net


def _plain_products(model) -> None:
    """A loaded model's Stage C and B with plain products (--plain-products), keeping GRN's CPU norm."""
    for net in (model.stage_c, model.stage_b):
        cpu_layers.unswap(net)
        if model.runtime.cpu_norms:
            cpu_layers.swap_grn(net)


def _machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        lines = open("/proc/cpuinfo").read().splitlines()
        name = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        name = platform.processor() or platform.machine()
    return f"{name}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads"


def _loaded(args):
    """The model folder's real weights (`--model`) instead of random ones."""
    from cascade_core.loading import load

    if not args.buffer_reuse:
        raise SystemExit("--no-buffer-reuse needs random weights: a loaded model on the CPU always reuses buffers")
    return load(args.model, device=args.device, dtype=args.dtype, variant=args.variant, compile=args.compile)


def run_steps(args, device, dtype) -> dict:
    latents = _latents(args)
    peak = measure.matmul_peak(device, dtype)
    rows = {}
    model = _loaded(args) if args.model else None
    if model and not args.products:
        _plain_products(model)
    for stage in args.stages:
        net = getattr(model, stage) if model else _as_the_studio_runs_it(
            random_network(variant_network(stage, args.variant), dtype, device), stage, args)
        row = compare_step(net, args.images, latents[stage], args.repeats, args.diffusers, args.warmup)
        row["tflops"] = row["flops"] / row["times"]["ours"]["median_s"] / 1e12
        row["fraction_of_matmul_peak"] = row["tflops"] * 1e12 / peak
        if device.type == "cpu":  # per unit of CPU time: what a shared machine's waiting does not dilute
            row["tflops_of_cpu_time"] = row["flops"] * torch.get_num_threads() / row["times"]["ours"]["cpu_median_s"] / 1e12
        rows[stage] = row
        del net
    return {"matmul_peak_tflops": peak / 1e12, "stages": rows}


def run_profile(args, device, dtype) -> dict:
    latents = _latents(args)
    result = {}
    for stage in args.stages:
        net = _as_the_studio_runs_it(random_network(variant_network(stage, args.variant), dtype, device), stage, args)
        result[stage] = profile_step(net, args.images, latents[stage], args.diffusers)
        print_profile(stage, result[stage])
        del net
    return {"profile": result}


def run_traffic(args, device, dtype) -> dict:
    latents = _latents(args)
    result = {}
    for stage in args.stages:
        result[stage] = step_traffic(variant_network(stage, args.variant), args.images, latents[stage], dtype)
        print_traffic(stage, result[stage])
    return {"traffic": result}


def _speedups(result: dict, key: str = "speedup_vs_diffusers") -> str:
    s = result.get(key)
    return f"{s['wall']:.2f}x wall, {s['cpu']:.2f}x cpu, {s['paired_wall']:.2f}x paired" if s else "-"


def print_steps(result: dict) -> None:
    print(f"matmul peak (measured): {result['matmul_peak_tflops']:.3f} TFLOP/s; times are medians, wall (cpu)")
    print(f"{'stage':8} {'latent':>8} {'batch':>5} {'ours s':>15} {'diffusers s':>15} {'GFLOP ours':>10} "
          f"{'GFLOP diff':>10} {'TFLOP/s':>8} {'of peak':>7} {'prepare s':>9}  speedup vs diffusers")
    for stage, row in result["stages"].items():
        t = {k: f"{v['median_s']:.3f} ({v['cpu_median_s']:.3f})" for k, v in row["times"].items()}
        print(f"{stage:8} {'x'.join(map(str, row['latent'])):>8} {row['batch']:>5} {t['ours']:>15} "
              f"{t.get('diffusers', '-'):>15} {row['flops'] / 1e9:>10.1f} "
              f"{row.get('diffusers_flops', float('nan')) / 1e9:>10.1f} {row['tflops']:>8.3f} "
              f"{row['fraction_of_matmul_peak']:>7.1%} {row['prepare_s']:>9.3f}  {_speedups(row)}")


def run_request(args, device, dtype) -> dict:
    model = _loaded(args) if args.model else random_model(args.variant, dtype, device, args.tokenizer, args.compile,
                                                           args.buffer_reuse)
    if not args.products:
        _plain_products(model)
    request = GenerationRequest(PROMPT, seed=0, width=args.size, height=args.size, prior_steps=args.prior_steps,
                                decoder_steps=args.decoder_steps, num_images=args.images)
    return compare_request(model, request, args.repeats, args.diffusers, args.warmup)


def print_request(result: dict) -> None:
    print(" ".join(f"{k} {v:.3f}s" for k, v in result["stages"].items()))
    print("prompts kept:", " ".join(f"{k} {v:.3f}s" for k, v in result["stages_prompts_kept"].items()))
    times = result["times"]
    theirs = times.get("diffusers", {}).get("median_s", float("nan"))
    print(f"whole request: ours {times['ours']['median_s']:.3f}s (prompts kept "
          f"{times['ours_prompts_kept']['median_s']:.3f}s), diffusers {theirs:.3f}s, speedup {_speedups(result)}"
          f" (prompts kept {_speedups(result, 'speedup_vs_diffusers_prompts_kept')}); "
          f"peak memory {result['peak_memory_bytes'] / 2**30:.2f} GiB")


@torch.inference_mode()
def run_parity(args, device, dtype) -> dict:
    """Relative error of one guided step in `dtype` against float32 on the same device and weights."""
    latents = _latents(args)
    errors = {}
    for stage in args.stages:
        net = random_network(variant_network(stage, args.variant), torch.float32, device)
        inputs, x, r, prepare = step_inputs(net, args.images, latents[stage], torch.float32, device)
        reference = net.step(x, r, prepare()).double()
        prepare, x = our_call(net.to(dtype), {k: v.to(dtype) for k, v in inputs.items()})
        out = net.step(x, r, prepare()).double()
        errors[stage] = ((out - reference).norm() / reference.norm()).item()
        del net
    return {"relative_error": errors, "tolerance": args.tolerance, "ok": all(e <= args.tolerance for e in errors.values())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("what", choices=["steps", "request", "parity", "profile", "traffic"])
    parser.add_argument("--variant", default="lite", help="full, lite or tiny (random weights of that architecture)")
    parser.add_argument("--model", help="a Stable Cascade folder: time its real weights (same speed as random ones)")
    parser.add_argument("--size", type=int, default=1024, help="image width and height in pixels")
    parser.add_argument("--c-latent", help="Stage C latent HxW instead of the one of --size, e.g. 8x8")
    parser.add_argument("--b-latent", help="Stage B latent HxW instead of the one of --size, e.g. 64x64")
    parser.add_argument("--images", type=int, default=1, help="images per request (a guided step runs 2x this)")
    parser.add_argument("--stages", default="stage_c,stage_b", type=lambda s: s.split(","))
    parser.add_argument("--dtype", default="float32", choices=list(DTYPES))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each, interleaved; medians reported")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs of each first")
    parser.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--no-diffusers", dest="diffusers", action="store_false", help="time ours alone")
    parser.add_argument("--compile", default="none", choices=COMPILE_MODES,
                        help="torch.compile mode of our per-step calls, as the studio's --compile")
    parser.add_argument("--no-buffer-reuse", dest="buffer_reuse", action="store_false",
                        help="CPU: glibc's default allocation instead of reusing large host buffers "
                        "(devices.reuse_host_buffers; process-wide, so diffusers' side gets it too)")
    parser.add_argument("--plain-products", dest="products", action="store_false",
                        help="float32 CPU: plain F.linear (MKL) instead of oneDNN's products (cpu_layers.py)")
    parser.add_argument("--prior-steps", type=int, default=20)
    parser.add_argument("--decoder-steps", type=int, default=10)
    parser.add_argument("--tolerance", type=float, default=3e-2, help="parity: largest relative error allowed")
    parser.add_argument("--tokenizer", default=str(TOKENIZER), help="request: a CLIP tokenizer folder")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    device, dtype = resolve_device(args.device), DTYPES[args.dtype]
    if args.threads:
        torch.set_num_threads(args.threads)
    result = {"what": args.what, "args": vars(args), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
              "machine": _machine(device), "torch": torch.__version__}
    if args.what == "steps":
        result.update(run_steps(args, device, dtype))
        print_steps(result)
    elif args.what == "request":
        result.update(run_request(args, device, dtype))
        print_request(result)
    elif args.what == "traffic":
        result.update(run_traffic(args, device, dtype))
    elif args.what == "profile":
        result.update(run_profile(args, device, dtype))
    else:
        result.update(run_parity(args, device, dtype))
        print(json.dumps(result["relative_error"]), "ok" if result["ok"] else f"FAILED (tolerance {args.tolerance})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0 if result.get("ok", True) else 1


if __name__ == "__main__":
    sys.exit(main())
