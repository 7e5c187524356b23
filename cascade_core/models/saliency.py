"""The saliency network of the inpainting ControlNet's automatic mask
(official `MicroResNet`, modules/cnet_modules/inpainting/saliency_model.py).

Picture (B, 3, H, W) in [0, 1] → saliency (B, 1, ~H/8, ~W/8) in (0, 1). The module indices
inside each `nn.Sequential` are those of the released `saliency_model.pt`.
"""
from __future__ import annotations

import torch
from torch import nn


def _conv(c_in: int, c_out: int, kernel_size: int, stride: int = 1) -> list[nn.Module]:
    """Reflect pad to keep `H / stride`, conv, instance norm (affine)."""
    return [nn.ReflectionPad2d(kernel_size // 2), nn.Conv2d(c_in, c_out, kernel_size, stride=stride),
            nn.InstanceNorm2d(c_out, affine=True)]


class SaliencyResBlock(nn.Module):
    """x + (conv 3×3, IN, ReLU, conv 3×3, IN), reflect padded (official saliency ResBlock)."""

    def __init__(self, c: int):
        super().__init__()
        self.resblock = nn.Sequential(*_conv(c, c, 3), nn.ReLU(), *_conv(c, c, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.resblock(x)


class MicroResNet(nn.Module):
    """Downsample ×16 to 32 channels, two residual blocks (32, then 64), upsample ×2 to one sigmoid map."""

    def __init__(self):
        super().__init__()
        self.downsampler = nn.Sequential(
            *_conv(3, 8, 9, stride=4), nn.ReLU(),
            *_conv(8, 16, 3, stride=2), nn.ReLU(),
            *_conv(16, 32, 3, stride=2), nn.ReLU(),
        )
        self.residual = nn.Sequential(
            SaliencyResBlock(32),
            nn.Conv2d(32, 64, kernel_size=1, bias=False, groups=32),
            SaliencyResBlock(64),
        )
        self.segmentator = nn.Sequential(
            *_conv(64, 16, 3), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.ReflectionPad2d(4), nn.Conv2d(16, 1, kernel_size=9),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.segmentator(self.residual(self.downsampler(x)))
