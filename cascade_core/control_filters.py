"""ControlNet inputs made from pictures (official filters, modules/controlnet.py).

Every filter takes pictures `x` (B, 3, H, W) in [0, 1] and returns the ControlNet's input at
the same H × W: `canny` (CannyFilter, 1 channel) and `inpaint_input` (InpaintFilter,
4 channels) with a user mask or the automatic one of `saliency_mask`.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .image_inputs import shorter_side_to

CANNY_SIZE = 224
CANNY_THRESHOLDS = (100, 200)
SALIENCY_SIZE = 240
BLUR_KERNEL = 141
BLUR_SIGMA = 0.15 * BLUR_KERNEL + 0.35  # 21.5, torchvision's gaussian_blur default


def canny_pixels(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) → (B, 224, 224, 3) uint8: bilinear resize (no antialias), u8 = trunc(255 · x)
    (CannyFilter's `x.mul(255)…astype(np.uint8)`)."""
    x = F.interpolate(x.float(), size=(CANNY_SIZE, CANNY_SIZE), mode="bilinear", align_corners=False)
    return x.mul(255).permute(0, 2, 3, 1).to(torch.uint8)  # (B, 224, 224, 3); the cast truncates


def canny_edges(pixels: torch.Tensor) -> torch.Tensor:
    """(B, h, w, 3) uint8 → (B, h, w) uint8 edges (0 or 255) of OpenCV's `Canny(u8, 100, 200)`
    (aperture 3, L1 gradient; colour input: the strongest channel's gradient)."""
    edges = [cv2.Canny(np.ascontiguousarray(p), *CANNY_THRESHOLDS) for p in pixels.cpu().numpy()]
    return torch.from_numpy(np.stack(edges))


def canny(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] → (B, 1, H, W) edge map in [0, 1] (official CannyFilter(resize=224))."""
    edges = canny_edges(canny_pixels(x)).to(x.device).float().div(255)[:, None]  # (B, 1, 224, 224)
    return F.interpolate(edges, size=x.shape[-2:], mode="bilinear", align_corners=False)


def inpaint_input(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Pictures (B, 3, H, W) and mask (B, 1, H, W) bool, true = repaint → (B, 4, H, W):
    the pictures with the masked pixels white, then the mask as 0/1 (official InpaintFilter)."""
    return torch.cat([torch.where(mask, torch.ones_like(x), x), mask.to(x.dtype)], dim=1)


def saliency(x: torch.Tensor, model: torch.nn.Module) -> torch.Tensor:
    """(B, 3, H, W) → (B, 1, h, w) saliency of the pictures resized to shorter side 240
    (bilinear, antialias; InpaintFilter's `resize(x, 240, antialias=True)`)."""
    size = shorter_side_to(x.shape[-2], x.shape[-1], SALIENCY_SIZE)
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return model(x)


def gaussian_blur(x: torch.Tensor, kernel_size: int = BLUR_KERNEL, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """(B, C, H, W) → blurred, reflect padded by kernel_size // 2 (needs H, W > that)
    (torchvision's `gaussian_blur`; its 2-D kernel is the outer product of the normalised 1-D
    one, so it runs here as a vertical then a horizontal pass)."""
    half = (kernel_size - 1) * 0.5
    t = torch.linspace(-half, half, kernel_size, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (t / sigma).pow(2))
    kernel = kernel / kernel.sum()
    c, pad = x.shape[1], kernel_size // 2
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)  # (C, 1, k, 1): along H
    return F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)  # (C, 1, 1, k): along W


def blur_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bool (B, 1, h, w) → blurred (B, 1, H, W) float: nearest resize to `size`, Gaussian blur
    (kernel 141, σ 21.5); the mask is where it is > 0.5 (InpaintFilter)."""
    return gaussian_blur(F.interpolate(mask.float(), size=size, mode="nearest"))


def saliency_mask(x: torch.Tensor, model: torch.nn.Module, threshold: float = 0.2,
                  outpaint: bool = False) -> torch.Tensor:
    """(B, 3, H, W) → (B, 1, H, W) bool automatic inpainting mask, true where the saliency exceeds
    `threshold` (outside it when `outpaint`), smoothed (official InpaintFilter; notebook: 0.2, False)."""
    salient = saliency(x, model) > threshold
    if outpaint:
        salient = ~salient
    return blur_mask(salient, x.shape[-2:]) > 0.5
