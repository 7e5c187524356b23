"""`generate`: a prompt → PNG files with their settings, and optionally the raw tensors."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from safetensors.torch import save_file
from transformers.utils import logging as transformers_logging

from ..events import Finished, StageProgress, Started
from ..images import save_png
from ..loading import load_with
from ..options import EngineOptions
from ..pipeline import generate
from ..request import GenerationRequest
from .progress import StageBar


def add_parser(commands) -> None:
    p = commands.add_parser("generate", help="make images from a prompt",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    EngineOptions.add_arguments(p)
    p.add_argument("--prompt", required=True)
    p.add_argument("--negative-prompt", default="")
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--height", type=int, default=1024)
    p.add_argument("--seed", type=int, default=None, help="random when omitted (printed)")
    p.add_argument("--prior-steps", type=int, default=20)
    p.add_argument("--prior-guidance", type=float, default=4.0)
    p.add_argument("--decoder-steps", type=int, default=10)
    p.add_argument("--decoder-guidance", type=float, default=1.1)
    p.add_argument("--num-images", type=int, default=1)
    p.add_argument("--output", required=True, type=Path, help="OUT.png; with --num-images K: OUT_0.png … OUT_{K-1}.png")
    p.add_argument("--save-tensors", type=Path, help="write latent_c and latent_b (each stage's last prediction x0), "
                   "preview and image of the first image")
    p.set_defaults(run=run)


def output_paths(output: Path, count: int) -> list[Path]:
    if count == 1:
        return [output]
    return [output.with_name(f"{output.stem}_{k}{output.suffix}") for k in range(count)]


def run(args: argparse.Namespace) -> int:
    request = GenerationRequest(
        prompt=args.prompt, negative_prompt=args.negative_prompt, width=args.width, height=args.height,
        seed=args.seed, prior_steps=args.prior_steps, prior_guidance=args.prior_guidance,
        decoder_steps=args.decoder_steps, decoder_guidance=args.decoder_guidance, num_images=args.num_images,
    )
    request.validated()  # refuse a bad request before spending time on loading
    transformers_logging.disable_progress_bar()  # our own progress lines say what is loading
    model = load_with(EngineOptions.from_args(args), progress=lambda m: print(m, file=sys.stderr))
    bar = StageBar()
    events = generate(model, request, preview_every=0, decode_every=0, keep_tensors=args.save_tensors is not None)
    for event in events:
        if isinstance(event, Started):
            for notice in event.notices:
                print(f"note: {notice}", file=sys.stderr)
            print(f"seed {event.request.seed}", file=sys.stderr)
        elif isinstance(event, StageProgress):
            bar.update(event.stage, event.step, event.total, event.elapsed)
        elif isinstance(event, Finished):
            args.output.parent.mkdir(parents=True, exist_ok=True)
            for image, settings, path in zip(event.images, event.settings, output_paths(args.output, len(event.images))):
                save_png(image, path, settings)
                print(f"wrote {path} (seed {settings['seed']})")
            if args.save_tensors:
                save_file({k: v[:1].contiguous() for k, v in event.tensors.items()}, str(args.save_tensors))
                print(f"wrote {args.save_tensors}")
            timings = ", ".join(f"{k} {v:.2f} s" for k, v in event.timings.items())
            print(f"timings: {timings}", file=sys.stderr)
    return 0
