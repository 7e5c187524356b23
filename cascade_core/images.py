"""Tensors → PIL images, and PNG files that carry their generation settings.

A PNG gets one text chunk per setting (`prompt`, `seed`, …), a `cascade_studio` chunk with
all settings as JSON (what `read_settings` reads back), and an AUTOMATIC1111-style
`parameters` chunk that other Stable Diffusion tools show and parse.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from PIL import Image, PngImagePlugin

JSON_CHUNK = "cascade_studio"
PLAIN_KEYS = ("prompt", "negative_prompt", "seed", "width", "height", "prior_steps", "prior_guidance",
              "decoder_steps", "decoder_guidance", "model", "version")


def _pixels(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] → (B, H, W, 3) uint8 on the same device; pixel = round(value · 255)."""
    pixels = (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous()  # (B, H, W, 3)


def _rgb(pixels: torch.Tensor) -> list[Image.Image]:
    """(B, H, W, 3) uint8 host tensor → RGB images."""
    return [Image.fromarray(p, mode="RGB") for p in pixels.numpy()]


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) in [0, 1] → RGB images; pixel = round(value · 255)."""
    return _rgb(_pixels(images).cpu())


class PendingImages:
    """Images on their way to host memory, so that a sampling loop need not wait for them.

    On a CUDA device the copy into pinned memory is queued behind the work already queued, and
    `ready()` asks a CUDA event, without waiting, whether it has landed; elsewhere the images
    are on the host at once. `step` is the sampler step they show.
    """

    def __init__(self, images: torch.Tensor, step: int):
        pixels, self.step, self.done = _pixels(images), step, None
        if pixels.is_cuda:
            self.host = torch.empty(pixels.shape, dtype=torch.uint8, pin_memory=True)
            self.host.copy_(pixels, non_blocking=True)
            self.done = torch.cuda.Event()
            self.done.record()
        else:
            self.host = pixels.cpu()

    def ready(self) -> bool:
        return self.done is None or self.done.query()

    def images(self) -> list[Image.Image]:
        """The RGB images (waits for the copy if it has not landed yet)."""
        if self.done is not None:
            self.done.synchronize()
        return _rgb(self.host)


def a1111_parameters(settings: dict) -> str:
    """The `parameters` text of AUTOMATIC1111's web UI, which many tools parse."""
    lines = [settings.get("prompt", "")]
    if settings.get("negative_prompt"):
        lines.append(f"Negative prompt: {settings['negative_prompt']}")
    fields = {
        "Steps": settings.get("prior_steps"),
        "Sampler": "DDPM",
        "CFG scale": settings.get("prior_guidance"),
        "Seed": settings.get("seed"),
        "Size": f"{settings.get('width')}x{settings.get('height')}",
        "Model": settings.get("model"),
        "Decoder steps": settings.get("decoder_steps"),
        "Decoder CFG scale": settings.get("decoder_guidance"),
        "Version": f"Cascade Studio {settings.get('version')}",
    }
    lines.append(", ".join(f"{k}: {v}" for k, v in fields.items()))
    return "\n".join(lines)


def png_info(settings: dict) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    for key in PLAIN_KEYS:
        if key in settings:
            info.add_itxt(key, str(settings[key]))
    info.add_itxt(JSON_CHUNK, json.dumps(settings, ensure_ascii=False, sort_keys=True))
    info.add_itxt("parameters", a1111_parameters(settings))
    return info


def save_png(image: Image.Image, path: str | os.PathLike, settings: dict) -> Path:
    """Write the PNG with its settings atomically: a temporary file in the same folder, then a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".png.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            image.save(f, format="PNG", pnginfo=png_info(settings))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_settings(path: str | os.PathLike) -> dict:
    """The settings stored in a PNG written by `save_png`; {} for a PNG without them."""
    with Image.open(path) as image:
        text = getattr(image, "text", {}) or {}
    if JSON_CHUNK in text:
        return json.loads(text[JSON_CHUNK])
    return {key: text[key] for key in PLAIN_KEYS if key in text}
