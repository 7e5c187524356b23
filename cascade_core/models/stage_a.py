"""Stage A, the VQGAN between pixels and the 4-channel latent (official `modules/stage_a.py`).

Inference never quantizes: `encode` returns the continuous latent and `decode` takes one,
as the official pipeline does. The codebook is kept so that the released file loads whole.
Activations are channels-last in memory (NCHW shape, NHWC strides), as in Stage C and B: the
permutes around the channel LayerNorms and MLPs are views, and the residual adds see one layout.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import StageAConfig


def _channel_layer_norm(x: torch.Tensor) -> torch.Tensor:
    x = x.permute(0, 2, 3, 1)  # (B, H, W, C)
    return F.layer_norm(x, x.shape[-1:], eps=1e-6).permute(0, 3, 1, 2)


class VQResBlock(nn.Module):
    """Residual block with six learned modulation scalars (`gammas`)."""

    def __init__(self, c: int, c_hidden: int):
        super().__init__()
        self.depthwise = nn.Sequential(nn.ReplicationPad2d(1), nn.Conv2d(c, c, kernel_size=3, groups=c))
        self.channelwise = nn.Sequential(nn.Linear(c, c_hidden), nn.GELU(), nn.Linear(c_hidden, c))
        self.gammas = nn.Parameter(torch.zeros(6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.gammas
        x = x + self.depthwise(_channel_layer_norm(x) * (1 + g[0]) + g[1]) * g[2]
        h = _channel_layer_norm(x) * (1 + g[3]) + g[4]
        h = self.channelwise(h.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # MLP channels-last
        return x + h * g[5]


class Codebook(nn.Module):
    def __init__(self, size: int, dim: int):
        super().__init__()
        self.codebook = nn.Embedding(size, dim)


class StageA(nn.Module):
    def __init__(self, config: StageAConfig = StageAConfig()):
        super().__init__()
        self.config = cfg = config
        c_levels = [cfg.c_hidden // 2**i for i in reversed(range(cfg.levels))]

        self.in_block = nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(3 * 4, c_levels[0], kernel_size=1))
        down = []
        for i in range(cfg.levels):
            if i > 0:
                down.append(nn.Conv2d(c_levels[i - 1], c_levels[i], kernel_size=4, stride=2, padding=1))
            down.append(VQResBlock(c_levels[i], c_levels[i] * 4))
        down.append(nn.Sequential(
            nn.Conv2d(c_levels[-1], cfg.c_latent, kernel_size=1, bias=False), nn.BatchNorm2d(cfg.c_latent)
        ))
        self.down_blocks = nn.Sequential(*down)
        self.vquantizer = Codebook(cfg.codebook_size, cfg.c_latent)

        up = [nn.Sequential(nn.Conv2d(cfg.c_latent, c_levels[-1], kernel_size=1))]
        for i in range(cfg.levels):
            c = c_levels[cfg.levels - 1 - i]
            up += [VQResBlock(c, c * 4) for _ in range(cfg.bottleneck_blocks if i == 0 else 1)]
            if i < cfg.levels - 1:
                up.append(nn.ConvTranspose2d(c, c_levels[cfg.levels - 2 - i], kernel_size=4, stride=2, padding=1))
        self.up_blocks = nn.Sequential(*up)
        self.out_block = nn.Sequential(nn.Conv2d(c_levels[0], 3 * 4, kernel_size=1), nn.PixelShuffle(2))

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) pixels in [0, 1] → (B, 4, H/4, W/4) latent, divided by scale_factor."""
        x = image.contiguous(memory_format=torch.channels_last)
        return self.down_blocks(self.in_block(x)) / self.config.scale_factor

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, 4, h, w) latent → (B, 3, 4h, 4w) pixels, unclamped."""
        x = (latent * self.config.scale_factor).contiguous(memory_format=torch.channels_last)
        return self.out_block(self.up_blocks(x))

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.decode(latent)
