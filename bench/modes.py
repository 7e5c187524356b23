"""What each image mode adds to a request: its once-per-request work and its per-step cost.

    python bench/modes.py [--size 1024] [--repeats 3] [--threads N] [--json OUT]

Random weights of the released architectures (EfficientNetV2-S encoder, the three ControlNets,
CLIP ViT-L/14's vision tower, Stage C lite) on the CPU in float32, through the engine's own
functions (`image_conditions`, `control_filters`). Each mode's setup is timed at a SIZE×SIZE
request; the per-step cost of a control is Stage C lite's guided step with and without it.
Calls run interleaved (measure.interleaved): medians of wall seconds.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import measure  # noqa: E402
from bench.networks import random_network  # noqa: E402
from cascade_core import runtime  # noqa: E402
from cascade_core.config import EXTRA_PRESETS  # noqa: E402
from cascade_core.control_filters import canny, inpaint_input  # noqa: E402
from cascade_core.image_conditions import EFFNET_STRIDE, fit  # noqa: E402
from cascade_core.image_inputs import clip_preprocess, resize_image  # noqa: E402
from cascade_core.image_preprocess import effnet_preprocess  # noqa: E402
from cascade_core.pipeline import latent_shapes  # noqa: E402

CPU = torch.device("cpu")


def clip_vision():
    """CLIP ViT-L/14's vision tower with its 768-wide projection (openai/clip-vit-large-patch14), random."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                              image_size=224, patch_size=14, projection_dim=768, hidden_act="quick_gelu")
    return CLIPVisionModelWithProjection(config).eval().requires_grad_(False)


def setups(size: int) -> dict:
    """name → the once-per-request work of that mode for a size×size request."""
    networks = {name: random_network(name, torch.float32, CPU) for name in
                ("effnet_encoder", "controlnet_canny", "controlnet_inpainting", "controlnet_super_resolution")}
    vision = clip_vision()
    shape_c, _ = latent_shapes(size, size)
    picture = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    encoded = lambda x: networks["effnet_encoder"](effnet_preprocess(x))
    fitted = lambda: fit(picture, EFFNET_STRIDE * shape_c[2], EFFNET_STRIDE * shape_c[1])
    mask = torch.zeros(1, 1, *fitted().shape[-2:], dtype=torch.bool)
    mask[..., : mask.shape[-2] // 2, :] = True
    small = picture[..., : size // 2, : size // 2]  # upscale 2× of a half-size picture
    return {
        "remix": lambda: encoded(fitted()),
        "image prompt": lambda: vision(pixel_values=clip_preprocess(resize_image(picture, 768))).image_embeds,
        "edges": lambda: networks["controlnet_canny"](canny(fitted())),
        "repaint/extend": lambda: (encoded(fitted()), networks["controlnet_inpainting"](inpaint_input(fitted(), mask))),
        "upscale": lambda: networks["controlnet_super_resolution"](
            torch.nn.functional.interpolate(encoded(small), scale_factor=2, mode="nearest")),
    }


def control_steps(size: int) -> dict:
    """Stage C lite's guided step (batch 2) without and with a full ControlNet's outputs."""
    net = random_network("stage_c_lite", torch.float32, CPU)
    runtime.apply({"stage_c": net}, CPU, host_buffer_reuse=False)
    shape_c, _ = latent_shapes(size, size)
    cfg = net.config
    gen = torch.Generator().manual_seed(1)
    x, r = torch.randn(2, *shape_c, generator=gen), torch.full((2,), 0.5)
    cond = dict(clip_text=torch.randn(2, 77, cfg.c_clip_text, generator=gen),
                clip_text_pooled=torch.randn(2, 1, cfg.c_clip_text_pooled, generator=gen),
                clip_img=torch.zeros(2, 1, cfg.c_clip_img))
    blocks = EXTRA_PRESETS["controlnet_canny"].proj_blocks
    control = [None] * (max(blocks) + 1)
    for n in blocks:
        control[n] = torch.randn(2, cfg.c_hidden[0], *shape_c[1:], generator=gen)
    with torch.inference_mode():
        plain, controlled = net.prepare(**cond), net.prepare(**cond, cnet=control)
    return {"step": lambda: net.step(x, r, plain), "step with control": lambda: net.step(x, r, controlled)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {}
    with torch.inference_mode():
        for group in (setups(args.size), control_steps(args.size)):
            results.update(measure.interleaved(group, CPU, args.repeats))
    print(f"CPU float32, {args.threads} threads, {args.size}×{args.size} request, median of {args.repeats} runs")
    for name, r in results.items():
        print(f"{name:>18}: {r['median_s']:7.3f} s wall ({r['cpu_median_s']:.3f} s CPU)")
    if args.json:
        args.json.write_text(json.dumps({"size": args.size, "threads": args.threads, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
