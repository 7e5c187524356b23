"""Stage C, the text-conditional prior (official `modules/stage_c.py`, Würstchen v3 §3)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..config import StageCConfig
from .blocks import LayerNorm2d
from .unet import CascadeUNet, Conditioning


class Resample2d(nn.Module):
    """1×1 conv with an optional ×2 / ×½ bilinear resize (official UpDownBlock2d).

    Released Stage C checkpoints set `switch_level=[False]`: the levels keep their size.
    """

    def __init__(self, c_in: int, c_out: int, mode: str, enabled: bool):
        super().__init__()
        scale = 2.0 if mode == "up" else 0.5
        resize = nn.Upsample(scale_factor=scale, mode="bilinear", align_corners=True) if enabled else nn.Identity()
        mapping = nn.Conv2d(c_in, c_out, kernel_size=1)
        self.blocks = nn.Sequential(resize, mapping) if mode == "up" else nn.Sequential(mapping, resize)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class StageC(CascadeUNet):
    def __init__(self, config: StageCConfig = StageCConfig()):
        super().__init__()
        self.config = cfg = config
        self.clip_txt_mapper = nn.Linear(cfg.c_clip_text, cfg.c_cond)
        self.clip_txt_pooled_mapper = nn.Linear(cfg.c_clip_text_pooled, cfg.c_cond * cfg.c_clip_seq)
        self.clip_img_mapper = nn.Linear(cfg.c_clip_img, cfg.c_cond * cfg.c_clip_seq)
        self.embedding = nn.Sequential(
            nn.PixelUnshuffle(cfg.patch_size),
            nn.Conv2d(cfg.c_in * cfg.patch_size**2, cfg.c_hidden[0], kernel_size=1),
            LayerNorm2d(),
        )
        h = cfg.c_hidden
        self._build_levels(
            cfg,
            downscaler=lambda i: nn.Sequential(LayerNorm2d(), Resample2d(h[i - 1], h[i], "down", cfg.switch_level[i - 1])),
            upscaler=lambda i: nn.Sequential(LayerNorm2d(), Resample2d(h[i], h[i - 1], "up", cfg.switch_level[i - 1])),
        )
        self.clf = nn.Sequential(
            LayerNorm2d(),
            nn.Conv2d(h[0], cfg.c_out * cfg.patch_size**2, kernel_size=1),
            nn.PixelShuffle(cfg.patch_size),
        )

    def clip_tokens(self, clip_text, clip_text_pooled, clip_img) -> torch.Tensor:
        """CLIP embeddings → the (B, 77 + 2·c_clip_seq, c_cond) tokens every AttnBlock attends to."""
        seq = self.config.c_clip_seq
        text = self.clip_txt_mapper(clip_text)
        pooled = self.clip_txt_pooled_mapper(clip_text_pooled)  # (B, 1, c_cond·seq)
        pooled = pooled.view(clip_text_pooled.size(0), clip_text_pooled.size(1) * seq, -1)  # (B, seq, c_cond)
        img = self.clip_img_mapper(clip_img).view(clip_img.size(0), clip_img.size(1) * seq, -1)
        clip = torch.cat([text, pooled, img], dim=1)
        return F.layer_norm(clip, clip.shape[-1:], eps=1e-6)

    def prepare(self, clip_text, clip_text_pooled, clip_img, cnet=None) -> Conditioning:
        """Once per request: the CLIP tokens, every attention block's text keys and values, and the
        ControlNet's outputs `cnet` (entry n, (B, C, h, w) or None, goes to the n-th ResBlock run)."""
        return self._prepare_levels(self.clip_tokens(clip_text, clip_text_pooled, clip_img), control=cnet)

    def step(self, x: torch.Tensor, r: torch.Tensor, prepared: Conditioning,
             cnet: Sequence[torch.Tensor | None] | None = None) -> torch.Tensor:
        """Predict the noise of x (B, 16, H, W) at noise level r (B,); `cnet` (else the prepared one),
        as in `prepare` (official `forward(..., cnet=...)`)."""
        control = cnet if cnet is not None else prepared.control
        x = self._run_levels(self.embedding(x), self._r_embedding(r, x.dtype), prepared, control)
        return self.clf(x).contiguous()

    def forward(self, x, r, clip_text, clip_text_pooled, clip_img, cnet=None):
        return self.step(x, r, self.prepare(clip_text, clip_text_pooled, clip_img, cnet))
