"""Stage B, the latent decoder (official `modules/stage_b.py`, Würstchen v3 §3)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import StageBConfig
from .blocks import LayerNorm2d, resize_like
from .unet import CascadeUNet, Conditioning


def _condition_mapper(c_in: int, c: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c * 4, kernel_size=1), nn.GELU(), nn.Conv2d(c * 4, c, kernel_size=1), LayerNorm2d()
    )


class StageB(CascadeUNet):
    def __init__(self, config: StageBConfig = StageBConfig()):
        super().__init__()
        self.config = cfg = config
        h = cfg.c_hidden
        self.effnet_mapper = _condition_mapper(cfg.c_effnet, h[0])
        self.pixels_mapper = _condition_mapper(cfg.c_pixels, h[0])
        self.clip_mapper = nn.Linear(cfg.c_clip, cfg.c_cond * cfg.c_clip_seq)
        self.embedding = nn.Sequential(
            nn.PixelUnshuffle(cfg.patch_size),
            nn.Conv2d(cfg.c_in * cfg.patch_size**2, h[0], kernel_size=1),
            LayerNorm2d(),
        )
        self._build_levels(
            cfg,
            downscaler=lambda i: nn.Sequential(LayerNorm2d(), nn.Conv2d(h[i - 1], h[i], kernel_size=2, stride=2)),
            upscaler=lambda i: nn.Sequential(LayerNorm2d(), nn.ConvTranspose2d(h[i], h[i - 1], kernel_size=2, stride=2)),
        )
        self.clf = nn.Sequential(
            LayerNorm2d(),
            nn.Conv2d(h[0], cfg.c_out * cfg.patch_size**2, kernel_size=1),
            nn.PixelShuffle(cfg.patch_size),
        )

    def clip_tokens(self, clip: torch.Tensor) -> torch.Tensor:
        """Pooled CLIP text (B, 1, c_clip) → (B, c_clip_seq, c_cond) tokens."""
        tokens = self.clip_mapper(clip).view(clip.size(0), clip.size(1) * self.config.c_clip_seq, -1)
        return F.layer_norm(tokens, tokens.shape[-1:], eps=1e-6)

    def prepare(self, effnet, clip, size: tuple[int, int]) -> Conditioning:
        """Once per request, for latents of `size` (H, W): the mapped Stage C latent and pixels,
        the CLIP tokens and every attention block's text keys and values."""
        size = (size[0] // self.config.patch_size, size[1] // self.config.patch_size)  # after the embedding
        added = self.effnet_mapper(resize_like(effnet, size))
        # The official model also takes low-resolution pixels; inference passes zeros (B, 3, 8, 8).
        pixels = effnet.new_zeros(effnet.size(0), self.config.c_pixels, 8, 8)
        added = added + resize_like(self.pixels_mapper(pixels), size)
        return self._prepare_levels(self.clip_tokens(clip), added.contiguous(memory_format=torch.channels_last))

    def step(self, x: torch.Tensor, r: torch.Tensor, prepared: Conditioning) -> torch.Tensor:
        """Predict the noise of the Stage A latent x (B, 4, H, W)."""
        x = self.embedding(x).contiguous(memory_format=torch.channels_last) + prepared.added
        x = self._run_levels(x, self._r_embedding(r, x.dtype), prepared)
        return self.clf(x).contiguous()

    def forward(self, x, r, effnet, clip):
        """Predict the noise of x given Stage C's latent `effnet` and the pooled CLIP text."""
        return self.step(x, r, self.prepare(effnet, clip, x.shape[-2:]))
