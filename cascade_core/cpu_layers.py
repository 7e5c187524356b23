"""CPU twins of the networks' per-step layers, swapped in by `runtime.apply` on loaded networks.

The networks in `models/` are plain PyTorch; on a float32 CPU two of their layers have a faster
form with the same parameters, the same names and the same arithmetic up to rounding:

- Linear products by oneDNN's matmul (`torch.ops.mkldnn._linear_pointwise`) on the plain weight,
  instead of `F.linear`, which goes to MKL's GEMM. On this project's AMD EPYC (Zen 5) MKL ran a
  2048² product at 0.10 TFLOP/s a core and oneDNN at 0.22; a lite Stage B step took half the
  time (bench/RESULTS.md, "oneDNN products"). MKL's packed weights (`cblas_sgemm_pack`), which the
  engine used before, gained 1.2–1.9× over plain MKL on an Intel Xeon but nothing on that EPYC,
  and cost a second copy of the weights; oneDNN needs none. Only the layers a step runs are
  swapped, not the once-per-request mappers.
- GRN's per-channel norm over the pixels as a product and a sum: on the CPU `vector_norm` is
  2.7× slower on a (2, 24, 24, 6144) float32 tensor at one thread (the GPU wants one reduction).

A swap changes a module's class in place (`module.__class__`), so parameters are shared, never
copied, and `unswap` restores the plain class exactly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .models.blocks import GlobalResponseNorm, MultiheadAttention, ResBlock, TimestepBlock

ONEDNN = torch.backends.mkldnn.is_available()


def applies(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether products on `device` in `dtype` can go through oneDNN: float32 on a CPU with it."""
    return ONEDNN and device.type == "cpu" and dtype == torch.float32


def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """F.linear(x, weight, bias), by oneDNN's matmul where that applies (float32 on the CPU, no autograd)."""
    if not (applies(x.device, x.dtype) and weight.dtype == x.dtype and x.numel() > 0
            and not (torch.is_grad_enabled() and weight.requires_grad)):
        return F.linear(x, weight, bias)
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), weight, bias, "none", [], "")


class OneDNNLinear(nn.Linear):
    """nn.Linear whose product goes through oneDNN."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return onednn_linear(x, self.weight, self.bias)


class OneDNNMultiheadAttention(MultiheadAttention):
    """MultiheadAttention whose per-step input projection goes through oneDNN."""

    def project(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return onednn_linear(x, weight, bias)


class SumOfSquaresGRN(GlobalResponseNorm):
    """GlobalResponseNorm with the pixel norm as sqrt(sum(x·x)): faster than `vector_norm` on CPUs."""

    def pixel_norm(self, x: torch.Tensor) -> torch.Tensor:
        return (x * x).sum(dim=(1, 2), keepdim=True).sqrt()


_TWINS = {nn.Linear: OneDNNLinear, MultiheadAttention: OneDNNMultiheadAttention, GlobalResponseNorm: SumOfSquaresGRN}


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


def _swap(modules: list[nn.Module]) -> int:
    for module in modules:
        if type(module) in _TWINS:
            module.__class__ = _TWINS[type(module)]
    return len(modules)


def swap_products(net: nn.Module) -> int:
    """Make every per-step product of `net` go through oneDNN; returns the number of layers."""
    return _swap(_step_linears(net) + [m for m in net.modules() if type(m) is MultiheadAttention])


def swap_grn(net: nn.Module) -> int:
    """Make every GRN of `net` take its norm as a product and a sum; returns how many."""
    return _swap([m for m in net.modules() if type(m) is GlobalResponseNorm])


def unswap(net: nn.Module) -> None:
    """Every twin back to its plain class."""
    plain = {twin: original for original, twin in _TWINS.items()}
    for m in net.modules():
        if type(m) in plain:
            m.__class__ = plain[type(m)]
