"""Explore, then finish: what exploring N compositions (Stage C and the previewer) costs against
generating N full images, and what finishing a few of them adds.

    python bench/explore.py [--size 256] [--threads N] [--variant lite] [--images 8] [--requests 2]
                            [--finish 2] [--prior-steps 20] [--decoder-steps 10] [--timed-requests R] [--json OUT]

Random weights of the variant's architectures (lite: Stage C lite 1B, Stage B lite 700M, the released Stage A
and previewer, a CLIP ViT-bigG-shaped text encoder; bench.request.random_model), float32, on the CPU. After an
untimed warm-up (the requests' batch sizes, one step a stage), three things are timed in one process:

  (a) explore: REQUESTS requests of IMAGES images, `generate(..., stage_c_only=True)`;
  (b) full: the same requests run to the end (Stage B and Stage A too);
  (c) explore, then finish: (a)'s run, plus `finish()` of FINISH of its compositions, timed after the rest.

(a)'s and (b)'s requests run in turns (explore 1, full 1, explore 2, …), so that load from other work on a shared
machine falls on both alike; the 1-minute load average before and after each is recorded. Each kind's first
request starts with the prompts forgotten, so each kind encodes them once (later requests and the finish find
them kept, as in the studio).

No intermediate images (preview_every=0, decode_every=0), so that only the work itself is counted.
--timed-requests R < REQUESTS runs R requests of each kind and scales their sum by REQUESTS / R (printed as
such; the scaled sum counts the prompts' encoding REQUESTS / R times instead of once).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import measure  # noqa: E402
from bench.request import PROMPT, TOKENIZER, random_model  # noqa: E402
from cascade_core import Finished, GenerationRequest, finish, generate  # noqa: E402
from cascade_core.model import CascadeModel  # noqa: E402

CPU = torch.device("cpu")


def _finished(events) -> Finished:
    """The Finished event that ends a run's events."""
    *_, event = events
    if not isinstance(event, Finished):
        raise RuntimeError(f"the run ended with {type(event).__name__}, not Finished")
    return event


def _run(model: CascadeModel, request: GenerationRequest, stage_c_only: bool) -> Finished:
    return _finished(generate(model, request, preview_every=0, decode_every=0, stage_c_only=stage_c_only))


def _timed(call) -> dict:
    """Wall and CPU seconds of one call, what it returned, and the 1-minute load average before and after it."""
    out, before = [], os.getloadavg()[0]
    wall, cpu = measure.timed(lambda: out.append(call()), CPU)
    return {"wall_s": wall, "cpu_s": cpu, "load": [before, os.getloadavg()[0]], "result": out[0]}


def _in_turns(model: CascadeModel, requests: list[GenerationRequest]) -> tuple[dict, list]:
    """Each request explored, then run in full, in turns (explore 1, full 1, explore 2, full 2, …) so that a
    shared machine's load falls on both kinds alike. The prompts are forgotten before each kind's first request,
    so that each kind encodes them once. Per kind: per-request and total seconds; and the explored compositions."""
    runs = {"explore": [], "full": []}
    for k, request in enumerate(requests):
        for kind, stage_c_only in (("explore", True), ("full", False)):
            if k == 0:
                model.text_encoder.forget()
            runs[kind].append(_timed(lambda: _run(model, request, stage_c_only)))
    summary = {kind: {"requests_s": [r["wall_s"] for r in rs], "requests_cpu_s": [r["cpu_s"] for r in rs],
                      "load": [r["load"] for r in rs], "text_s": [r["result"].timings["text"] for r in rs],
                      "wall_s": sum(r["wall_s"] for r in rs), "cpu_s": sum(r["cpu_s"] for r in rs)}
               for kind, rs in runs.items()}
    return summary, [c for r in runs["explore"] for c in r["result"].compositions]


def _warm_up(model: CascadeModel, request: GenerationRequest, finished: int) -> None:
    """The request with one step of each stage, run in full, then explored and `finished` of it finished: the
    first calls' costs at these batch sizes (oneDNN's kernels, the host buffers' first pages) out of the timings."""
    short = dataclasses.replace(request, prior_steps=1, decoder_steps=1)
    _run(model, short, stage_c_only=False)
    _finished(finish(model, _run(model, short, stage_c_only=True).compositions[:finished], decode_every=0))


@torch.inference_mode()
def explore_and_finish(model: CascadeModel, request: GenerationRequest, requests: int = 2, finished: int = 2,
                       timed_requests: int | None = None) -> dict:
    """Seconds of (a) exploring `requests` × request.num_images compositions, (b) generating as many full
    images and (c) exploring them, then finishing `finished` of them; the ratios (a)/(b), (c)/(b) and
    per-image figures. Only `timed_requests` requests of each kind run (default: all); their sums are
    scaled to `requests`."""
    timed_requests = requests if timed_requests is None else timed_requests
    if not 1 <= timed_requests <= requests:
        raise ValueError(f"timed_requests {timed_requests} is outside 1–{requests}")
    batch = [dataclasses.replace(request, seed=request.seed + k * request.num_images) for k in range(timed_requests)]
    _warm_up(model, request, finished)
    kinds, compositions = _in_turns(model, batch)
    explore, full = kinds["explore"], kinds["full"]
    chosen = compositions[:: max(1, len(compositions) // finished)][:finished]  # spread over the requests
    done = _timed(lambda: _finished(finish(model, chosen, decode_every=0)))
    scale = requests / timed_requests
    images = requests * request.num_images
    a, b, f = explore["wall_s"] * scale, full["wall_s"] * scale, done["wall_s"]
    return {
        "images": images, "per_request": request.num_images, "requests": requests,
        "timed_requests": timed_requests, "scale": scale, "finished": len(chosen),
        "explore": explore, "full": full,
        "finish": {"wall_s": f, "cpu_s": done["cpu_s"], "load": done["load"],
                   "text_s": done["result"].timings["text"], "seeds": list(done["result"].seeds)},
        "seconds": {"a_explore": a, "b_full": b, "c_explore_then_finish": a + f, "finish": f},
        "cpu_seconds": {"a_explore": explore["cpu_s"] * scale, "b_full": full["cpu_s"] * scale,
                        "c_explore_then_finish": explore["cpu_s"] * scale + done["cpu_s"]},
        "ratios": {"a/b": a / b, "c/b": (a + f) / b, "a/b_cpu": explore["cpu_s"] / full["cpu_s"],
                   "a/b_per_request": [e / g for e, g in zip(explore["requests_s"], full["requests_s"])]},
        "per_image_s": {"explored": a / images, "full": b / images, "finished": f / len(chosen)},
    }


def report(result: dict, size: int, threads: int, variant: str, request: GenerationRequest) -> str:
    """The printed summary."""
    s, c, n, k = result["seconds"], result["cpu_seconds"], result["images"], result["finished"]
    per = result["per_image_s"]
    how = (f"{result['requests']} requests of {result['per_request']}" if result["scale"] == 1 else
           f"{result['timed_requests']} request(s) of {result['per_request']} timed, scaled ×{result['scale']:g} "
           f"(the prompts' encoding, {result['explore']['text_s'][0]:.2f} s, counted ×{result['scale']:g} too)")
    line = lambda label, wall, cpu: f"{label:<27}{wall:8.1f} s wall ({cpu:.1f} s CPU)"
    per_request = lambda kind: ", ".join(f"{t:.1f} (load {l0:.1f}→{l1:.1f})"
                                         for t, (l0, l1) in zip(result[kind]["requests_s"], result[kind]["load"]))
    ratios = result["ratios"]
    return "\n".join([
        f"{variant}, random weights, float32 CPU, {threads} threads, {size}×{size}, Stage C {request.prior_steps} "
        f"steps, Stage B {request.decoder_steps} steps, no intermediate images; {n} images as {how}",
        line(f"(a) explore {n}:", s["a_explore"], c["a_explore"]) + f"; per request {per_request('explore')} s",
        line(f"(b) generate {n} in full:", s["b_full"], c["b_full"]) + f"; per request {per_request('full')} s",
        line(f"(c) explore {n}, finish {k}:", s["c_explore_then_finish"], c["c_explore_then_finish"])
        + f"; the finish alone {s['finish']:.1f} s ({result['finish']['cpu_s']:.1f} s CPU)",
        f"(a)/(b) = {ratios['a/b']:.3f}   (c)/(b) = {ratios['c/b']:.3f}   (a)/(b) of CPU time = {ratios['a/b_cpu']:.3f}"
        f"   (a)/(b) request by request = {', '.join(f'{r:.3f}' for r in ratios['a/b_per_request'])}",
        f"per image: explored {per['explored']:.2f} s, full {per['full']:.2f} s, finished (of {k}) "
        f"{per['finished']:.2f} s",
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="image width and height in pixels")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--variant", default="lite", help="lite, full or tiny (random weights of that architecture)")
    parser.add_argument("--images", type=int, default=8, help="images per request")
    parser.add_argument("--requests", type=int, default=2, help="requests explored, and generated in full")
    parser.add_argument("--finish", type=int, default=2, help="compositions finished after exploring")
    parser.add_argument("--prior-steps", type=int, default=20)
    parser.add_argument("--decoder-steps", type=int, default=10)
    parser.add_argument("--timed-requests", type=int, help="run only this many requests of each kind and scale")
    parser.add_argument("--tokenizer", default=str(TOKENIZER), help="a CLIP tokenizer folder")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    request = GenerationRequest(PROMPT, seed=0, width=args.size, height=args.size, num_images=args.images,
                                prior_steps=args.prior_steps, decoder_steps=args.decoder_steps)
    model = random_model(args.variant, torch.float32, CPU, args.tokenizer)
    result = explore_and_finish(model, request, args.requests, args.finish, args.timed_requests)
    print(report(result, args.size, args.threads, args.variant, request))
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k != "json"}
        args.json.write_text(json.dumps({"args": settings, "torch": torch.__version__, **result}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
