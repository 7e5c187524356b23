"""The level structure shared by Stage C and Stage B: down levels, up levels with skips.

Each level is a list of blocks (one pattern from `level_config`, repeated `blocks[..][i]`
times) that may be run `block_repeat` times with a 1×1 conv between repeats, as in the
official `_down_encode` / `_up_decode`.

A network runs in two calls: `prepare(conditions…)` once per request (the text side of
every attention block's keys and values, the constant conditioning) and `step(x, r,
prepared)` once per denoising step. `forward` is the two together, the official call.

A ControlNet's outputs (`cnet`, one optional tensor per ResBlock run, made once per request)
are added before the ResBlocks they belong to (official `_down_encode` / `_up_decode`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .blocks import ResBlock, make_block, resize_like, timestep_embedding


@dataclass(frozen=True)
class Conditioning:
    """What every denoising step of one request reuses, made once by a network's `prepare`.

    down / up: per level, per block, what `block.prepare(clip)` returned (attention: the text
    keys and values; timestep: the constant modulation; res: None). added: Stage B's mapped
    Stage C latent and pixels, (B, C, H, W), added after the embedding (None for Stage C).
    control: Stage C's ControlNet outputs for every step of the request (see `_run_levels`), or None.
    """
    down: tuple[tuple, ...]
    up: tuple[tuple, ...]
    added: torch.Tensor | None = None
    control: tuple[torch.Tensor | None, ...] | None = None


def add_control(x: torch.Tensor, control: torch.Tensor) -> torch.Tensor:
    """x + the control (B, C, h, w) resized bilinearly to x's size, align_corners=True (official
    ControlNet injection, modules/stage_c.py). Same size: no resize, which is then the identity."""
    if control.shape[-2:] != x.shape[-2:]:
        control = resize_like(control, x.shape[-2:])
    return x + control.to(x.dtype)


class CascadeUNet(nn.Module):
    """Builds and runs the levels; subclasses add the embedding, conditioning and head."""

    def _build_levels(self, cfg, downscaler, upscaler) -> None:
        """`downscaler(i)` / `upscaler(i)` make the resampling module between levels i-1 and i."""
        if any(pattern[0] != "C" for pattern in cfg.level_config):
            raise ValueError("each level pattern must start with a C block: it takes the skip")
        levels = len(cfg.c_hidden)

        def level(i: int, count: int, first_skip: int) -> nn.ModuleList:
            return nn.ModuleList(
                make_block(kind, cfg.c_hidden[i], nhead=cfg.nhead[i], c_cond=cfg.c_cond, c_r=cfg.c_r,
                           t_conds=cfg.t_conds, kernel_size=cfg.kernel_size, self_attn=cfg.self_attn,
                           c_skip=first_skip if j == k == 0 else 0)
                for j in range(count) for k, kind in enumerate(cfg.level_config[i])
            )

        def repeat_mappers(i: int, repeats: int) -> nn.ModuleList:
            return nn.ModuleList(nn.Conv2d(cfg.c_hidden[i], cfg.c_hidden[i], 1) for _ in range(repeats - 1))

        self.down_downscalers = nn.ModuleList(downscaler(i) if i > 0 else nn.Identity() for i in range(levels))
        self.down_blocks = nn.ModuleList(level(i, cfg.blocks[0][i], 0) for i in range(levels))
        self.down_repeat_mappers = nn.ModuleList(repeat_mappers(i, cfg.block_repeat[0][i]) for i in range(levels))

        up = list(reversed(range(levels)))
        self.up_upscalers = nn.ModuleList(upscaler(i) if i > 0 else nn.Identity() for i in up)
        self.up_blocks = nn.ModuleList(
            level(i, cfg.blocks[1][::-1][i], cfg.c_hidden[i] if i < levels - 1 else 0) for i in up
        )
        self.up_repeat_mappers = nn.ModuleList(repeat_mappers(i, cfg.block_repeat[1][::-1][i]) for i in up)

    def _prepare_levels(self, clip: torch.Tensor, added: torch.Tensor | None = None,
                        control: Sequence[torch.Tensor | None] | None = None) -> Conditioning:
        """Every block's per-request state from the CLIP tokens (B, T, c_cond)."""
        prepare = lambda levels: tuple(tuple(block.prepare(clip) for block in blocks) for blocks in levels)
        return Conditioning(down=prepare(self.down_blocks), up=prepare(self.up_blocks), added=added,
                            control=None if control is None else tuple(control))

    def _r_embedding(self, r: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(B,) noise level → (B, c_r), computed in fp32 (r · 10000 needs it), cast to the network dtype.

        The embeddings of the extra conditions (`t_conds`, zero at inference) are constants
        that the timestep blocks folded in when preparing.
        """
        return timestep_embedding(r.float(), self.config.c_r).to(dtype)

    def _run_levels(self, x: torch.Tensor, r_embed: torch.Tensor, prepared: Conditioning,
                    cnet: Sequence[torch.Tensor | None] | None = None) -> torch.Tensor:
        """Down levels, then up levels with skips. `cnet[n]`, when given and not None, is added
        just before the n-th ResBlock run (down then up path, repeats included, from 0)."""
        controls = iter(cnet) if cnet is not None else None  # official ControlNetDeliverer
        x = x.contiguous(memory_format=torch.channels_last)  # (B, C, H, W) shape, NHWC in memory
        level_outputs = []
        levels = zip(self.down_blocks, self.down_downscalers, self.down_repeat_mappers, prepared.down)
        for blocks, downscaler, mappers, states in levels:
            x = downscaler(x)
            x = self._run_level(x, blocks, mappers, r_embed, states, None, controls)
            level_outputs.insert(0, x)

        x = level_outputs[0]
        levels = zip(self.up_blocks, self.up_upscalers, self.up_repeat_mappers, prepared.up)
        for i, (blocks, upscaler, mappers, states) in enumerate(levels):
            skip = level_outputs[i] if i > 0 else None
            x = self._run_level(x, blocks, mappers, r_embed, states, skip, controls)
            x = upscaler(x)
        return x

    @staticmethod
    def _run_level(x, blocks, mappers, r_embed, states, skip, controls):
        for repeat in range(len(mappers) + 1):
            for k, (block, state) in enumerate(zip(blocks, states)):
                block_skip = skip if k == 0 else None
                if block_skip is not None and x.shape[-2:] != block_skip.shape[-2:]:
                    x = resize_like(x, block_skip.shape[-2:])  # odd sizes: match the skip
                if controls is not None and isinstance(block, ResBlock):
                    control = next(controls, None)  # past the list's end: None
                    if control is not None:
                        x = add_control(x, control)
                x = block(x, r_embed, state, block_skip)
            if repeat < len(mappers):
                x = mappers[repeat](x)
        return x
