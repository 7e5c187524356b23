"""Linear layers that, in float32 on the CPU, multiply by an MKL-packed copy of their weight.

MKL's GEMM repacks the weight matrix into its internal blocked layout on every call; for the
few rows of a denoising step's activations (a 64×64 Stage B latent has 32–512 rows per level)
that packing costs as much as the multiplication. Packing once per row count
(`cblas_sgemm_pack`, through PyTorch's `torch.ops.mkl._mkl_linear`) makes these products
1.2–1.9× faster on this project's CPUs (bench/RESULTS.md), with the same arithmetic. The
packed copy costs as much memory as the weight; `CascadeModel` turns packing on only for
Stage C and Stage B, and `loading.load` only when the host has the memory for it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MKL = torch.backends.mkl.is_available()


def packs(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether products on `device` in `dtype` would use packed weights: float32 on an MKL CPU."""
    return MKL and device.type == "cpu" and dtype == torch.float32


class PackedWeight:
    """An MKL-packed copy of one weight, for one row count, remade when either changes."""

    def __init__(self):
        self.enabled, self.cached = False, (None, None)  # (rows, weight pointer, shape, version), packed weight

    @property
    def packed(self) -> torch.Tensor | None:
        return self.cached[1]

    def applies(self, x: torch.Tensor, weight: torch.Tensor) -> bool:
        return (self.enabled and packs(x.device, x.dtype) and weight.dtype == x.dtype and x.numel() > 0
                and not (torch.is_grad_enabled() and weight.requires_grad))

    def linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """F.linear(x, weight, bias); by the packed weight where that applies."""
        if not self.applies(x, weight):
            return F.linear(x, weight, bias)
        rows = x.numel() // x.shape[-1]
        key = (rows, weight.data_ptr(), weight.shape, weight._version)  # new rows, weights, or weights changed in place
        cached_key, packed = self.cached  # one read: another thread may repack it meanwhile
        if cached_key != key:
            packed = torch.ops.mkl._mkl_reorder_linear_weight(weight.detach(), rows)
            self.cached = (key, packed)
        return torch.ops.mkl._mkl_linear(x, packed, weight, bias, rows)

    def release(self) -> None:
        self.cached = (None, None)


class Linear(nn.Linear):
    """nn.Linear (same parameters, same names) with a `PackedWeight` for float32 CPU inference."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.packing = PackedWeight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.packing.linear(x, self.weight, self.bias)


def _packable(net: nn.Module) -> list[tuple[PackedWeight, torch.Tensor]]:
    """Every PackedWeight of `net` with the weight it packs (a Linear's weight, an attention's in_proj)."""
    return [(m.packing, m.weight if isinstance(m, nn.Linear) else m.in_proj_weight)
            for m in net.modules() if isinstance(getattr(m, "packing", None), PackedWeight)]


def packed_bytes(net: nn.Module) -> int:
    """Host memory the packed copies of `net`'s weights take in float32 (about the weights' own size)."""
    return sum(weight.numel() * 4 for _, weight in _packable(net))


def set_packing(net: nn.Module, enabled: bool) -> int:
    """Turn packed weights on or off for every packable layer of `net` (off frees the packed copies);
    returns the number of layers."""
    layers = [packing for packing, _ in _packable(net)]
    for packing in layers:
        packing.enabled = enabled
        if not enabled:
            packing.release()
    return len(layers)
