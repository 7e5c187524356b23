"""CPU twins of the networks' per-step layers, swapped in by `runtime.apply` on loaded networks.

The networks in `models/` are plain PyTorch; on a float32 CPU run two of their layers have a
faster form with the same parameters, the same names and the same arithmetic:

- Linear products by an MKL-packed weight. MKL's GEMM repacks the weight matrix into its
  blocked layout on every call; for the few rows of a denoising step's activations (a 64×64
  Stage B latent has 32–512 rows per level) that costs as much as the product. Packing once
  per row count (`cblas_sgemm_pack`, through PyTorch's `torch.ops.mkl._mkl_linear`) makes
  these products 1.2–1.9× faster (bench/RESULTS.md). The packed copy costs as much memory as
  the weight, so it is made only for the layers a step runs (not the once-per-request mappers).
- GRN's per-channel norm over the pixels as a product and a sum: on the CPU `vector_norm` is
  2.7× slower on a (2, 24, 24, 6144) float32 tensor at one thread (the GPU wants one reduction).

A swap changes a module's class in place (`module.__class__`), so parameters are shared, never
copied, and `unswap` restores the plain class exactly. A packed copy is keyed on the weight's
storage, shape and the row count: after changing weights in place (a LoRA merge), call
`release_packed(net)` so the next step packs them again.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .models.blocks import GlobalResponseNorm, MultiheadAttention, ResBlock, TimestepBlock

MKL = torch.backends.mkl.is_available()


def packs(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether products on `device` in `dtype` can use packed weights: float32 on an MKL CPU."""
    return MKL and device.type == "cpu" and dtype == torch.float32


class PackedWeight:
    """An MKL-packed copy of one weight for one row count, remade when either changes."""

    def __init__(self):
        self.cached = (None, None)  # (rows, weight pointer, shape), packed weight

    @property
    def packed(self) -> torch.Tensor | None:
        return self.cached[1]

    def linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """F.linear(x, weight, bias), by the packed weight where that applies."""
        if not (packs(x.device, x.dtype) and weight.dtype == x.dtype and x.numel() > 0):
            return F.linear(x, weight, bias)
        rows = x.numel() // x.shape[-1]
        key = (rows, weight.data_ptr(), weight.shape)  # new rows, or weights moved (offload)
        cached_key, packed = self.cached  # one read: another thread may repack it meanwhile
        if cached_key != key:
            packed = torch.ops.mkl._mkl_reorder_linear_weight(weight.detach(), rows)
            self.cached = (key, packed)
        return torch.ops.mkl._mkl_linear(x, packed, weight, bias, rows)

    def release(self) -> None:
        self.cached = (None, None)


class PackedLinear(nn.Linear):
    """nn.Linear whose product uses a `PackedWeight` (set by `swap`)."""
    packing: PackedWeight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.packing.linear(x, self.weight, self.bias)


class PackedMultiheadAttention(MultiheadAttention):
    """MultiheadAttention whose per-step input projection uses a `PackedWeight`: the step
    projects with all of `in_proj` (self-attention) or its query rows, never both in one network."""
    packing: PackedWeight

    def project(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.packing.linear(x, weight, bias)


class SumOfSquaresGRN(GlobalResponseNorm):
    """GlobalResponseNorm with the pixel norm as sqrt(sum(x·x)): faster than `vector_norm` on CPUs."""

    def pixel_norm(self, x: torch.Tensor) -> torch.Tensor:
        return (x * x).sum(dim=(1, 2), keepdim=True).sqrt()


def _step_linears(net: nn.Module) -> list[nn.Linear]:
    """The Linear layers a denoising step runs: the MLPs, the timestep mapper, attention's output."""
    found = []
    for m in net.modules():
        if isinstance(m, ResBlock):
            found += [layer for layer in m.channelwise if isinstance(layer, nn.Linear)]
        elif isinstance(m, TimestepBlock):
            found.append(m.mapper)
        elif isinstance(m, MultiheadAttention):
            found.append(m.out_proj)
    return found


_TWINS = {nn.Linear: PackedLinear, MultiheadAttention: PackedMultiheadAttention}


def swap_packed(net: nn.Module) -> int:
    """Make every per-step product of `net` use a packed weight; returns the number of layers."""
    layers = _step_linears(net) + [m for m in net.modules() if isinstance(m, MultiheadAttention)]
    for layer in layers:
        if type(layer) in _TWINS:
            layer.__class__ = _TWINS[type(layer)]
            layer.packing = PackedWeight()
    return len(layers)


def swap_grn(net: nn.Module) -> int:
    """Make every GRN of `net` take its norm as a product and a sum; returns how many."""
    norms = [m for m in net.modules() if type(m) is GlobalResponseNorm]
    for norm in norms:
        norm.__class__ = SumOfSquaresGRN
    return len(norms)


def unswap(net: nn.Module) -> None:
    """Every twin back to its plain class; packed copies freed."""
    for m in net.modules():
        if isinstance(m, (PackedLinear, PackedMultiheadAttention)):
            del m.packing
        for plain, twin in (*_TWINS.items(), (GlobalResponseNorm, SumOfSquaresGRN)):
            if type(m) is twin:
                m.__class__ = plain


def release_packed(net: nn.Module) -> None:
    """Drop every packed copy (after weights changed in place); the next step packs afresh."""
    for packing in _packings(net):
        packing.release()


def _packings(net: nn.Module) -> list[PackedWeight]:
    return [m.packing for m in net.modules() if isinstance(m, (PackedLinear, PackedMultiheadAttention))]


def packed_bytes(net: nn.Module) -> int:
    """Host memory the packed copies of `net`'s per-step weights take in float32 (about their own size)."""
    linears = sum(layer.weight.numel() for layer in _step_linears(net))
    attention = sum(m.in_proj_weight.numel() for m in net.modules() if isinstance(m, MultiheadAttention))
    return 4 * (linears + attention)
