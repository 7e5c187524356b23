"""A stand-in for the previewer when no previewer weights can be had: a false-colour sketch of the latent.

The previewer (`previewer.safetensors`) is not part of diffusers' pipelines nor of every single-file
copy. Without it, Stage C's progress is still shown: the latent's first three channels, each
standardised over the image and squashed to [0, 1] by a sigmoid, enlarged 8× (the previewer's
scale) by nearest-neighbour. It shows the composition, not the colours; the final image does not
depend on it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SCALE = 8  # the previewer's output is 8× the Stage C latent


class LatentSketch(nn.Module):
    def __init__(self, c_in: int = 16):
        super().__init__()
        # Channels 0, 1, 2 → R, G, B: a fixed selection, a parameter so that the sketch has a dtype and a device.
        self.select = nn.Parameter(torch.eye(3, c_in)[:, :, None, None], requires_grad=False)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, 16, h, w) Stage C latent → (B, 3, 8h, 8w) in [0, 1]."""
        rgb = F.conv2d(latent, self.select)  # (B, 3, h, w)
        mean = rgb.mean(dim=(2, 3), keepdim=True)
        std = rgb.std(dim=(2, 3), keepdim=True, correction=0).clamp_min(1e-6)
        return F.interpolate(torch.sigmoid((rgb - mean) / std), scale_factor=SCALE, mode="nearest")
