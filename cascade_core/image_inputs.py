"""Pictures → tensors, as the official notebooks prepare input images.

`to_tensor` is torchvision's `to_tensor` (x = u8 / 255), `resize_image` the official
`inference/utils.py` helper, and `clip_preprocess` the notebooks' CLIP image transform
(torchvision 0.16.2 `Resize(224, BICUBIC)`, `CenterCrop(224)`, `Normalize`).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

CLIP_SIZE = 224
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def to_tensor(picture: np.ndarray | Image.Image) -> torch.Tensor:
    """uint8 H×W×3 array or PIL image (converted to RGB) → (3, H, W) float32 in [0, 1], x = u8 / 255."""
    if isinstance(picture, Image.Image):
        picture = np.asarray(picture.convert("RGB"))
    if picture.dtype != np.uint8 or picture.ndim != 3 or picture.shape[2] != 3:
        raise ValueError(f"expected a uint8 H×W×3 picture, got {picture.dtype} {picture.shape}")
    u8 = torch.from_numpy(np.array(picture))  # a writable copy: PIL's and memory-mapped arrays are read-only
    return u8.permute(2, 0, 1).float().div(255)  # (H, W, 3) → (3, H, W)


def shorter_side_to(height: int, width: int, size: int) -> tuple[int, int]:
    """(H, W) with the shorter side set to `size`, the longer `int(size · long / short)`
    (torchvision's `_compute_resized_output_size` for an int size)."""
    if width <= height:
        return int(size * height / width), size
    return size, int(size * width / height)


def _resize_shorter_side(x: torch.Tensor, size: int, mode: str, antialias: bool) -> torch.Tensor:
    """(…, 3, H, W) → shorter side `size`, align_corners=False; unchanged when the size already fits
    (torchvision's tensor `resize`)."""
    out_size = shorter_side_to(x.shape[-2], x.shape[-1], size)
    if tuple(x.shape[-2:]) == out_size:
        return x
    batch = x.reshape(-1, *x.shape[-3:])  # (B, C, H, W): interpolate wants a batch
    resized = F.interpolate(batch, size=out_size, mode=mode, align_corners=False, antialias=antialias)
    return resized.reshape(*x.shape[:-2], *out_size)


def resize_image(x: torch.Tensor, size: int = 768) -> torch.Tensor:
    """(…, 3, H, W) in [0, 1] → shorter side `size`, bilinear with antialiasing
    (official `resize_image`, inference/utils.py, given `to_tensor(picture)`)."""
    return _resize_shorter_side(x, size, "bilinear", antialias=True)


def clip_preprocess(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] → (B, 3, 224, 224) CLIP pixel values (the notebooks' `clip_preprocess`).

    Bicubic (a = −0.75) without antialiasing, as torchvision 0.16.2 resizes tensors by default;
    centre crop with offsets `round((H − 224) / 2)` (Python rounding, half to even).
    """
    x = _resize_shorter_side(images, CLIP_SIZE, "bicubic", antialias=False)
    top = round((x.shape[-2] - CLIP_SIZE) / 2)
    left = round((x.shape[-1] - CLIP_SIZE) / 2)
    x = x[..., top:top + CLIP_SIZE, left:left + CLIP_SIZE]
    mean = x.new_tensor(CLIP_MEAN).view(3, 1, 1)
    std = x.new_tensor(CLIP_STD).view(3, 1, 1)
    return (x - mean) / std
