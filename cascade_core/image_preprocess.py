"""Picture normalisation in front of the image encoders (official `effnet_preprocess` in the notebooks)."""
from __future__ import annotations

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def effnet_preprocess(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) pictures in [0, 1] → ImageNet-normalised input of `EffNetEncoder`; no resize."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std
