"""The Stable Cascade ControlNet: control picture → features added in Stage C (official `modules/controlnet.py`).

A bottleneck turns the filter output (edges, masked picture, upscaled latent) into E-channel
features; one projection per controlled Stage C block maps them to Stage C's width. The output
is a list indexed by Stage C ResBlock execution number (see `StageC`'s `cnet`), `None` where
no control is added. Bottlenecks (`ControlNetConfig.bottleneck_mode`):

- `effnet` (canny, inpainting): EfficientNetV2-S `features` (E = 1280); for c_in ≠ 3 the stem
  is a 3×3 stride-2 conv c_in → 24 without padding. Its input is not ImageNet-normalised.
- `large` (super-resolution): 1×1 c_in → w0, LeakyReLU 0.2, 1×1 → w1, eight residual blocks,
  1×1 → w2 = E (`widths`, released 16384/1024/1280).
- `simple`: conv 3×3 c_in → 4·c_in, LeakyReLU 0.2, conv 3×3 → c_in (E = c_in).
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import ControlNetConfig
from .effnet import FEATURES, efficientnet_v2_s_features


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor, with weight and bias (eps 1e-5)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x.permute(0, 2, 3, 1))  # (B, H, W, C)
        return x.permute(0, 3, 1, 2)  # (B, C, H, W)


class ControlResBlock(nn.Module):
    """x + conv3×3(GELU(LN(conv3×3(GELU(LN(x)))))) of the `large` bottleneck (official CNetResBlock)."""

    def __init__(self, c: int):
        super().__init__()
        self.blocks = nn.Sequential(
            ChannelLayerNorm(c), nn.GELU(), nn.Conv2d(c, c, kernel_size=3, padding=1),
            ChannelLayerNorm(c), nn.GELU(), nn.Conv2d(c, c, kernel_size=3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.blocks(x)


def _bottleneck(config: ControlNetConfig) -> tuple[nn.Sequential, int]:
    """The backbone of a bottleneck mode and its output channels E."""
    c_in = config.c_in
    if config.bottleneck_mode == "effnet":
        return efficientnet_v2_s_features(c_in, stem_padding=1 if c_in == 3 else 0), FEATURES
    if config.bottleneck_mode == "large":
        w_in, w, w_out = config.widths
        return nn.Sequential(
            nn.Conv2d(c_in, w_in, kernel_size=1), nn.LeakyReLU(0.2),
            nn.Conv2d(w_in, w, kernel_size=1),
            *(ControlResBlock(w) for _ in range(8)),
            nn.Conv2d(w, w_out, kernel_size=1),
        ), w_out
    return nn.Sequential(
        nn.Conv2d(c_in, c_in * 4, kernel_size=3, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(c_in * 4, c_in, kernel_size=3, padding=1),
    ), c_in


class ControlNet(nn.Module):
    def __init__(self, config: ControlNetConfig = ControlNetConfig()):
        super().__init__()
        self.config = config
        self.backbone, c = _bottleneck(config)
        self.projections = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(c, c, kernel_size=1, bias=False), nn.LeakyReLU(0.2),
                nn.Conv2d(c, config.c_proj, kernel_size=1, bias=False),
            )
            for _ in config.proj_blocks
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor | None]:
        """(B, c_in, H, W) control input → list of length max(proj_blocks) + 1 of (B, c_proj, h, w) or None."""
        features = self.backbone(x)
        out: list[torch.Tensor | None] = [None] * (max(self.config.proj_blocks) + 1)
        for projection, block in zip(self.projections, self.config.proj_blocks):
            out[block] = projection(features)
        return out
