"""The Stage C previewer: a 16-channel latent → RGB at 8× its size (official `modules/previewer.py`)."""
from __future__ import annotations

from torch import nn

from ..config import PreviewerConfig


class Previewer(nn.Module):
    def __init__(self, config: PreviewerConfig = PreviewerConfig()):
        super().__init__()
        self.config = config
        c = config.c_hidden
        # (conv, channels in, channels out): each followed by GELU and BatchNorm but the last.
        layers = []
        stages = [
            (nn.Conv2d, config.c_in, c, 1), (nn.Conv2d, c, c, 3),
            (nn.ConvTranspose2d, c, c // 2, 2), (nn.Conv2d, c // 2, c // 2, 3),
            (nn.ConvTranspose2d, c // 2, c // 4, 2), (nn.Conv2d, c // 4, c // 4, 3),
            (nn.ConvTranspose2d, c // 4, c // 4, 2), (nn.Conv2d, c // 4, c // 4, 3),
        ]
        for conv, c_in, c_out, k in stages:
            if conv is nn.ConvTranspose2d:
                layers.append(conv(c_in, c_out, kernel_size=k, stride=2))  # ×2 upsampling
            else:
                layers.append(conv(c_in, c_out, kernel_size=k, padding=k // 2))
            layers += [nn.GELU(), nn.BatchNorm2d(c_out)]
        layers.append(nn.Conv2d(c // 4, config.c_out, kernel_size=1))
        self.blocks = nn.Sequential(*layers)

    def forward(self, latent):
        """(B, 16, h, w) Stage C latent → (B, 3, 8h, 8w) raw RGB (roughly in [0, 1])."""
        return self.blocks(latent)
