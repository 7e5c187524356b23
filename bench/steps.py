"""One guided denoising step of Stage C or Stage B, ours against diffusers' StableCascadeUNet.

A guided step is one network call on the conditional and unconditional halves batched
(batch 2·images), as both pipelines run it. Our per-request `prepare` is timed apart.
"""
from __future__ import annotations

import torch

from cascade_core.models import build
from cascade_core.pipeline import latent_shapes

from . import measure
from .networks import diffusers_architecture, diffusers_twin


def stage_latent(stage: str, size: int, text: str | None = None) -> tuple[int, int]:
    """A stage's latent HxW: `text` ("64x64") when given, else that of a size×size image."""
    if text:
        return tuple(int(v) for v in text.split("x"))
    shape_c, shape_b = latent_shapes(size, size)
    return {"stage_c": shape_c, "stage_b": shape_b}[stage][1:]


def conditions(net, images: int, latent: tuple[int, int], dtype, device, seed: int = 0) -> dict:
    """Random conditioning of a guided batch (2·images) in the network's official argument names."""
    g = torch.Generator().manual_seed(seed)
    cfg, b = net.config, 2 * images
    rand = lambda *shape: torch.randn(*shape, generator=g).to(device, dtype)
    if hasattr(cfg, "c_clip_text"):  # Stage C
        return {"x": rand(b, cfg.c_in, *latent), "clip_text": rand(b, 77, cfg.c_clip_text),
                "clip_text_pooled": rand(b, 1, cfg.c_clip_text_pooled), "clip_img": rand(b, 1, cfg.c_clip_img)}
    effnet = (max(1, round(latent[0] / 10.67)), max(1, round(latent[1] / 10.67)))  # Stage C's latent size
    return {"x": rand(b, cfg.c_in, *latent), "effnet": rand(b, cfg.c_effnet, *effnet), "clip": rand(b, 1, cfg.c_clip)}


def our_call(net, inputs: dict):
    """Our per-request `prepare` (a thunk) and the latent x; a step is `net.step(x, r, prepared)`."""
    x, cond = inputs["x"], {k: v for k, v in inputs.items() if k != "x"}
    fixed = {} if "clip_text" in cond else {"size": x.shape[-2:]}
    prepare = lambda: net.prepare(**cond, **fixed)
    return prepare, x


def step_inputs(net, images: int, latent: tuple[int, int], dtype, device):
    """A guided step's random conditions, its latent x, the noise level r (0.5) and our `prepare` thunk."""
    inputs = conditions(net, images, latent, dtype, device)
    prepare, x = our_call(net, inputs)
    return inputs, x, torch.full((x.shape[0],), 0.5, device=device), prepare


def diffusers_call(twin, inputs: dict):
    """diffusers' step as a function of r: the whole network call on the same inputs."""
    x = inputs["x"]
    if "clip_text" in inputs:
        kwargs = dict(clip_text_pooled=inputs["clip_text_pooled"], clip_text=inputs["clip_text"],
                      clip_img=inputs["clip_img"])
    else:
        kwargs = dict(clip_text_pooled=inputs["clip"], effnet=inputs["effnet"])
    return lambda r: twin(x, r.to(x.dtype), **kwargs, return_dict=False)[0]  # r in the network dtype, as their pipelines pass it


def meta_flops(net, images: int, latent: tuple[int, int], with_diffusers: bool) -> dict:
    """FLOPs of one guided step, ours and diffusers', counted on meta tensors: nothing is computed."""
    with torch.device("meta"):
        ours = build(net.config)
        twin = diffusers_architecture(net.config) if with_diffusers else None
    inputs, x, r, prepare = step_inputs(ours, images, latent, torch.float32, "meta")
    prepared = prepare()
    flops = {"ours": measure.count_flops(lambda: ours.step(x, r, prepared))}
    if with_diffusers:
        flops["diffusers"] = measure.count_flops(lambda: diffusers_call(twin, inputs)(r))
    return flops


@torch.inference_mode()
def compare_step(net, images: int, latent: tuple[int, int], repeats: int, with_diffusers: bool,
                 warmup: int = 1) -> dict:
    """Times (interleaved, `repeats` each) of our step and diffusers' step; our prepare; FLOPs."""
    p = next(net.parameters())
    device, dtype = p.device, p.dtype
    inputs, x, r, prepare = step_inputs(net, images, latent, dtype, device)
    prepared = prepare()
    calls = {"ours": lambda: net.step(x, r, prepared)}
    flops = meta_flops(net, images, latent, with_diffusers)
    result = {"latent": list(latent), "batch": x.shape[0], "flops": flops["ours"]}
    if with_diffusers:
        theirs = diffusers_call(diffusers_twin(net), inputs)
        calls["diffusers"] = lambda: theirs(r)
        result["diffusers_flops"] = flops["diffusers"]
    measure.reset_peak_memory(device)
    result["prepare_s"] = measure.timed(prepare, device)[0]
    result["times"] = measure.interleaved(calls, device, repeats, warmup)
    result["peak_memory_bytes"] = measure.peak_memory_bytes(device)
    if with_diffusers:
        out_ours, out_theirs = net.step(x, r, prepared).double(), theirs(r).double()
        result["relative_difference_to_diffusers"] = ((out_ours - out_theirs).norm() / out_theirs.norm()).item()
        result["speedup_vs_diffusers"] = measure.speedups(result["times"])
    return result
