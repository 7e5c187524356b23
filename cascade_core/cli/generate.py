"""`generate`: a prompt, and optionally pictures → PNG files with their settings, and optionally the raw tensors."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from safetensors.torch import save_file
from transformers.utils import logging as transformers_logging

from ..errors import RequestError
from ..events import Finished, StageProgress, Started
from ..images import save_png
from ..loading import load_with
from ..lora import resolve
from ..options import EngineOptions
from ..picture import Picture
from ..pipeline import generate
from ..request import CONTROLS, MAX_PROMPT_WINDOWS, PROMPT_WINDOWS, REMIX_STRENGTH, GenerationRequest
from .progress import StageBar



class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the ones that only mean "not given"."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def add_parser(commands) -> None:
    p = commands.add_parser("generate", help="make images from a prompt, and optionally pictures",
                            formatter_class=_Help)
    EngineOptions.add_arguments(p)
    p.add_argument("--prompt", required=True)
    p.add_argument("--negative-prompt", default="")
    p.add_argument("--prompt-windows", type=int, default=PROMPT_WINDOWS, metavar="N",
                   help=f"read prompts in up to N windows of 75 CLIP tokens (1–{MAX_PROMPT_WINDOWS}); 1 is the "
                   "official truncation to 77 tokens")
    p.add_argument("--prompt-weighting", action=argparse.BooleanOptionalAction, default=True,
                   help="read (word:1.3), (word), [word] as weights, as AUTOMATIC1111 does (\\( is a literal "
                   "bracket); --no-prompt-weighting reads brackets as text, as the official pipeline")
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--height", type=int, default=1024)
    p.add_argument("--seed", type=int, default=None, help="random when omitted (printed)")
    p.add_argument("--prior-steps", type=int, default=20)
    p.add_argument("--prior-guidance", type=float, default=4.0)
    p.add_argument("--decoder-steps", type=int, default=10)
    p.add_argument("--decoder-guidance", type=float, default=1.1)
    p.add_argument("--num-images", type=int, default=1)
    p.add_argument("--lora", action="append", type=lora_flag, metavar="FILE[:STRENGTH]",
                   help="a LoRA for Stage C, repeatable: a file, a name in --lora-dir or owner/repo/file.safetensors "
                   "on the hub, strength 1 unless given (README, LoRAs)")
    p.add_argument("--output", required=True, type=Path, help="OUT.png; with --num-images K: OUT_0.png … "
                   "OUT_{K-1}.png; repaint and extend also write the image before the picture is blended back in "
                   "as OUT.raw.png")
    p.add_argument("--save-tensors", type=Path, help="write latent_c and latent_b (each stage's last prediction x0), "
                   "preview and image of the first image")
    p.add_argument("--stage-c-only", action="store_true", help="stop after Stage C: --output gets the previews, "
                   "--save-tensors latent_c and preview")
    pictures = p.add_argument_group("pictures (PNG, JPEG or WebP files; see README, Image inputs)")
    pictures.add_argument("--init-image", type=Path, metavar="PATH", help="remix: start from this picture")
    pictures.add_argument("--strength", type=float, metavar="S", help="remix, repaint, extend: how far to move from "
                          f"the picture, in (0, 1] (default {REMIX_STRENGTH} for a remix, else 1)")
    pictures.add_argument("--image-size", type=int, metavar="N", help="resize pictures to a shorter side of N px, as "
                          "the official notebooks do; a remix's size then follows its picture")
    pictures.add_argument("--image-prompt", type=Path, metavar="PATH", help="variations: Stage C also sees this "
                          "picture's CLIP embedding")
    pictures.add_argument("--control", choices=CONTROLS[1:], help="canny: follow the picture's edges; inpaint: repaint "
                          "the --mask area; outpaint: extend by --margin; upscale: 2× the picture")
    pictures.add_argument("--control-image", type=Path, metavar="PATH", help="the picture --control works on")
    pictures.add_argument("--mask", type=Path, metavar="PATH", help="inpaint: white where the picture is repainted, "
                          "of the picture's size")
    pictures.add_argument("--margin", type=int, metavar="PX", help="outpaint: pixels added on every side")
    pictures.add_argument("--control-scale", type=float, default=1.0, metavar="M", help="the control's strength, 0–3")
    p.set_defaults(run=run)


def lora_flag(text: str) -> tuple[str, float]:
    """`FILE[:STRENGTH]` → (FILE, STRENGTH); without a number after the last colon, all of it is the file."""
    name, _, strength = text.rpartition(":")
    try:
        return (name, float(strength)) if name else (text, 1.0)
    except ValueError:
        return text, 1.0


def output_paths(output: Path, count: int) -> list[Path]:
    if count == 1:
        return [output]
    return [output.with_name(f"{output.stem}_{k}{output.suffix}") for k in range(count)]


def raw_path(path: Path) -> Path:
    """OUT.png → OUT.raw.png: where the unblended image of a repaint or an extend goes."""
    return path.with_name(f"{path.stem}.raw{path.suffix}")


def picture_fields(args: argparse.Namespace) -> dict:
    """The request's picture fields from the flags; each file is opened and checked here, before any loading."""
    control = args.control or "none"
    rules = (("mask", args.mask, control == "inpaint", "--mask is only for --control inpaint"),
             ("margin", args.margin, control == "outpaint", "--margin is only for --control outpaint"),
             ("control_image", args.control_image, control != "none", "--control-image needs --control"),
             ("init_image", args.init_image, control == "none",
              "--init-image is a remix, another mode than --control: give one of them"),
             ("strength", args.strength, args.init_image is not None or control in ("inpaint", "outpaint"),
              "--strength is only for --init-image, --control inpaint and --control outpaint"))
    for field, value, allowed, message in rules:
        if value is not None and not allowed:
            raise RequestError(field, message)
    if control != "none" and args.control_image is None:
        raise RequestError("control_image", f"--control {control} needs a picture: give --control-image PATH")
    if control == "inpaint" and args.mask is None:
        raise RequestError("mask", "--control inpaint needs --mask PATH: white where the picture is repainted")
    if control == "outpaint" and args.margin is None:
        raise RequestError("margin", "--control outpaint needs --margin PX: the band added on every side")
    fields = {name: Picture.open(path, name) for name, path in (
        ("init_image", args.init_image), ("image_prompt", args.image_prompt),
        ("control_image", args.control_image), ("mask", args.mask)) if path is not None}
    strength = args.strength
    if strength is None:
        strength = REMIX_STRENGTH if args.init_image is not None else 1.0
    return {**fields, "control": control, "strength": strength, "image_size": args.image_size,
            "margin": args.margin or 0, "control_scale": args.control_scale}


def run(args: argparse.Namespace) -> int:
    request = GenerationRequest(
        prompt=args.prompt, negative_prompt=args.negative_prompt, width=args.width, height=args.height,
        seed=args.seed, prior_steps=args.prior_steps, prior_guidance=args.prior_guidance,
        decoder_steps=args.decoder_steps, decoder_guidance=args.decoder_guidance, num_images=args.num_images,
        prompt_windows=args.prompt_windows, prompt_weighting=args.prompt_weighting, **picture_fields(args),
        loras=tuple(args.lora or ()),
    )
    checked, _ = request.validated()  # refuse a bad request, or a LoRA not found, before spending time on loading
    for name, _ in checked.loras:
        resolve(name, Path(args.lora_dir))
    transformers_logging.disable_progress_bar()  # our own progress lines say what is loading
    model = load_with(EngineOptions.from_args(args), progress=lambda m: print(m, file=sys.stderr))
    bar = StageBar()
    events = generate(model, request, preview_every=0, decode_every=0, keep_tensors=args.save_tensors is not None,
                      stage_c_only=args.stage_c_only)
    for event in events:
        if isinstance(event, Started):
            for notice in event.notices:
                print(f"note: {notice}", file=sys.stderr)
            print(f"seed {event.request.seed}", file=sys.stderr)
        elif isinstance(event, StageProgress):
            bar.update(event.stage, event.step, event.total, event.elapsed)
        elif isinstance(event, Finished):
            write(event, args)
    return 0


def write(finished: Finished, args: argparse.Namespace) -> None:
    args.output.parent.mkdir(parents=True, exist_ok=True)
    paths = output_paths(args.output, len(finished.images))
    for image, settings, path in zip(finished.images, finished.settings, paths):
        settings = {**settings, "stage_c_only": True} if args.stage_c_only else settings
        save_png(image, path, settings)
        print(f"wrote {path} ({'preview, ' if args.stage_c_only else ''}seed {settings['seed']})")
    for image, settings, path in zip(finished.unblended, finished.settings, paths):
        save_png(image, raw_path(path), {**settings, "unblended": True})
        print(f"wrote {raw_path(path)} (before blending, seed {settings['seed']})")
    if args.save_tensors:
        args.save_tensors.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v[:1].contiguous() for k, v in finished.tensors.items()}, str(args.save_tensors))
        print(f"wrote {args.save_tensors}")
    timings = ", ".join(f"{k} {v:.2f} s" for k, v in finished.timings.items())
    print(f"timings: {timings}", file=sys.stderr)
