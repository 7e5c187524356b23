"""Building blocks shared by Stage C and Stage B (Würstchen v3, `modules/common.py`).

Every block of a U-Net level takes the same arguments, `block(x, r_embed, prepared, skip)`,
and uses the ones it needs, so the level loop never asks what kind of block it holds.
`prepared` is what the block's `prepare(clip)` computed once per request: the text keys
and values of an attention block, the constant modulation of a timestep block.
Activations are channels-last in memory (NCHW shape, NHWC strides), so the permutes
around the channel LayerNorms and MLPs are views, not copies.
Parameter names equal the released checkpoints (`depthwise`, `channelwise.0`,
`attention.attn.in_proj_weight`, `kv_mapper.1`, `mapper_sca`, …).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn



def layer_norm_2d(x: torch.Tensor) -> torch.Tensor:
    """LayerNorm over channels of an NCHW tensor, no affine, eps 1e-6 (official LayerNorm2d)."""
    x = x.permute(0, 2, 3, 1)  # (B, H, W, C)
    x = F.layer_norm(x, x.shape[-1:], eps=1e-6)
    return x.permute(0, 3, 1, 2)  # (B, C, H, W)


class LayerNorm2d(nn.Module):
    """Parameter-free channel LayerNorm, as a module so that it can sit in an nn.Sequential."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return layer_norm_2d(x)


def resize_like(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with align_corners=True, computed in fp32 as the official code does."""
    return F.interpolate(x.float(), size=size, mode="bilinear", align_corners=True).to(x.dtype)


def timestep_embedding(r: torch.Tensor, c_r: int, max_positions: int = 10000) -> torch.Tensor:
    """Sinusoidal embedding of the noise level r ∈ [0, 1] → (B, c_r) (official gen_r_embedding)."""
    r = r * max_positions
    half_dim = c_r // 2
    scale = math.log(max_positions) / (half_dim - 1)
    freqs = torch.arange(half_dim, device=r.device).float().mul(-scale).exp()
    emb = r[:, None] * freqs[None, :]
    emb = torch.cat([emb.sin(), emb.cos()], dim=1)
    if c_r % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


class GlobalResponseNorm(nn.Module):
    """GRN from ConvNeXt-V2 (Woo et al. 2023, eq. 1–3) on channels-last input (B, H, W, C)."""

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim))

    def pixel_norm(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) → (B, 1, 1, C): each channel's L2 norm over the pixels, in one reduction."""
        return torch.linalg.vector_norm(x, dim=(1, 2), keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = self.pixel_norm(x)  # (B, 1, 1, C)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return torch.addcmul(self.beta, x, 1 + self.gamma * nx)  # β + x + γ·x·N(x) in one pass over x


class ResBlock(nn.Module):
    """Depthwise conv → LayerNorm → channel MLP with GRN, residual (official ResBlock).

    The first block of each up level also takes the skip connection of the matching
    down level, concatenated on channels before the MLP.
    """

    def __init__(self, c: int, c_skip: int = 0, kernel_size: int = 3):
        super().__init__()
        self.depthwise = nn.Conv2d(c, c, kernel_size=kernel_size, padding=kernel_size // 2, groups=c)
        self.channelwise = nn.Sequential(
            nn.Linear(c + c_skip, c * 4),
            nn.GELU(),
            GlobalResponseNorm(c * 4),
            nn.Identity(),  # index 3 is the training-time Dropout of the released layout
            nn.Linear(c * 4, c),
        )

    def prepare(self, clip: torch.Tensor) -> None:
        """Nothing of a ResBlock depends on the request alone."""
        return None

    def forward(self, x, r_embed, prepared, skip):
        x_res = x
        x = self.depthwise(x).permute(0, 2, 3, 1)  # (B, H, W, C): the MLP runs channels-last
        x = F.layer_norm(x, x.shape[-1:], eps=1e-6)
        if skip is not None:
            x = torch.cat([x, skip.permute(0, 2, 3, 1)], dim=-1)
        x = self.channelwise(x)
        return x.permute(0, 3, 1, 2) + x_res  # back to (B, C, H, W)


class TimestepBlock(nn.Module):
    """Scale-and-shift modulation by the noise-level embedding and its extra conditions."""

    def __init__(self, c: int, c_timestep: int, conds: tuple[str, ...]):
        super().__init__()
        self.mapper = nn.Linear(c_timestep, c * 2)
        self.conds = conds
        for name in conds:
            setattr(self, f"mapper_{name}", nn.Linear(c_timestep, c * 2))

    def prepare(self, clip: torch.Tensor) -> torch.Tensor:
        """The extra conditions are zero at inference, so their share of the modulation is a constant (2C,)."""
        zero = timestep_embedding(clip.new_zeros(1, dtype=torch.float32), self.mapper.in_features).to(clip.dtype)
        constant = self.mapper.bias.new_zeros(self.mapper.out_features)
        for name in self.conds:
            constant = constant + getattr(self, f"mapper_{name}")(zero)[0]
        return constant

    def forward(self, x, r_embed, constant, skip):
        """r_embed: (B, c_r), the embedding of the noise level alone."""
        a, b = (self.mapper(r_embed) + constant)[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        return torch.addcmul(b, x, 1 + a)


class MultiheadAttention(nn.Module):
    """Multi-head attention with nn.MultiheadAttention's parameter layout (one `in_proj` for q, k, v), run by SDPA."""

    def __init__(self, c: int, nhead: int):
        super().__init__()
        self.nhead = nhead
        self.in_proj_weight = nn.Parameter(torch.empty(3 * c, c))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * c))
        self.out_proj = nn.Linear(c, c)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.MultiheadAttention's initialisation; loading a checkpoint replaces it."""
        if not self.in_proj_weight.is_meta:
            nn.init.xavier_uniform_(self.in_proj_weight)
            nn.init.zeros_(self.in_proj_bias)

    def text_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values (B, T, C) of the context tokens: the same at every step of a request."""
        c = self.out_proj.in_features
        kv = F.linear(context, self.in_proj_weight[c:], self.in_proj_bias[c:])
        return tuple(t.contiguous() for t in kv.chunk(2, dim=-1))

    def project(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """The per-step input projection (rows of `in_proj`)."""
        return F.linear(x, weight, bias)

    def forward(self, x: torch.Tensor, text_kv: tuple[torch.Tensor, torch.Tensor], self_attn: bool) -> torch.Tensor:
        """x (B, N, C) attends to [x, context] (self_attn) or to the context alone."""
        c = x.shape[-1]
        k_text, v_text = text_kv
        if self_attn:
            q, k, v = self.project(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
            k, v = torch.cat([k, k_text], dim=1), torch.cat([v, v_text], dim=1)  # (B, N + T, C)
        else:
            q, k, v = self.project(x, self.in_proj_weight[:c], self.in_proj_bias[:c]), k_text, v_text
        heads = lambda t: t.unflatten(-1, (self.nhead, -1)).transpose(1, 2)  # (B, heads, N, C/heads)
        out = F.scaled_dot_product_attention(heads(q), heads(k), heads(v))
        out = out.transpose(1, 2).flatten(2)  # (B, N, C)
        return self.out_proj(out)


class Attention2D(nn.Module):
    """Attention over the pixels of an NCHW map; holds `attn` to keep the released names."""

    def __init__(self, c: int, nhead: int):
        super().__init__()
        self.attn = MultiheadAttention(c, nhead)

    def forward(self, x: torch.Tensor, text_kv, self_attn: bool) -> torch.Tensor:
        x_tokens = x.permute(0, 2, 3, 1).flatten(1, 2)  # (B, H·W, C): a view when x is channels-last
        out = self.attn(x_tokens, text_kv, self_attn)
        return out.unflatten(1, x.shape[-2:]).permute(0, 3, 1, 2)  # (B, C, H, W), channels-last


class AttnBlock(nn.Module):
    """LayerNorm → attention to the pixels and the mapped CLIP tokens, residual."""

    def __init__(self, c: int, c_cond: int, nhead: int, self_attn: bool = True):
        super().__init__()
        self.self_attn = self_attn
        self.attention = Attention2D(c, nhead)
        self.kv_mapper = nn.Sequential(nn.SiLU(), nn.Linear(c_cond, c))

    def prepare(self, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mapped CLIP tokens' keys and values, computed once per request."""
        return self.attention.attn.text_kv(self.kv_mapper(clip))

    def forward(self, x, r_embed, text_kv, skip):
        return x + self.attention(layer_norm_2d(x), text_kv, self.self_attn)


def make_block(kind: str, c: int, *, nhead: int, c_cond: int, c_r: int, t_conds, c_skip: int = 0,
               kernel_size: int = 3, self_attn: bool = True) -> nn.Module:
    """One block of a level from its letter in `level_config`: C(onv), T(imestep), A(ttention)."""
    if kind == "C":
        return ResBlock(c, c_skip, kernel_size)
    if kind == "T":
        return TimestepBlock(c, c_r, tuple(t_conds))
    if kind == "A":
        return AttnBlock(c, c_cond, nhead, self_attn)
    raise ValueError(f"block type {kind!r} is not one of C, T, A")
