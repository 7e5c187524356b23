"""Bytes one guided step reads and writes, operator by operator, counted on the meta device.

A lower bound on a step's time from memory traffic (bytes / bandwidth) for what is not a
matrix product: where eager PyTorch runs one kernel per operator, each reads its inputs from
and writes its output to device memory. Views (permute, chunk, …) move nothing and are not
counted. Attention is counted as one fused kernel (q, k, v in, out out), as flash attention
runs it; the meta device would otherwise decompose it. The GlobalResponseNorm is counted as
it runs on a GPU (one fused reduction for its norm).
"""
from __future__ import annotations

import collections

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from cascade_core.models import build

from .steps import step_inputs

_VIEWS = {"view", "_unsafe_view", "permute", "transpose", "t", "expand", "slice", "unsqueeze", "squeeze",
          "as_strided", "split", "split_with_sizes", "chunk", "unflatten", "select", "detach", "alias", "unbind",
          "empty", "empty_like", "empty_strided"}  # views and allocations move no bytes


class _Bytes(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.bytes, self.calls = collections.Counter(), collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if name not in _VIEWS:
            self.bytes[name] += sum(t.numel() * t.element_size() for t in tree_leaves((args, kwargs, out))
                                    if isinstance(t, torch.Tensor))
            self.calls[name] += 1
        return out


def step_traffic(name: str, images: int, latent: tuple[int, int], dtype: torch.dtype) -> dict:
    """{"operators": {name: (bytes, calls)}, "attention_bytes": …} of one guided step of network `name`."""
    with torch.device("meta"):
        net = build(name).to(dtype)
    _, x, r, prepare = step_inputs(net, images, latent, dtype, "meta")
    prepared = prepare()
    attention = []

    def counted_attention(q, k, v, **kw):
        attention.append(sum(t.numel() * t.element_size() for t in (q, k, v, q)))
        return torch.empty_like(q)

    original, F.scaled_dot_product_attention = F.scaled_dot_product_attention, counted_attention
    try:  # the plain network, as a GPU runs it: GlobalResponseNorm's fused norm (the CPU twin is runtime's)
        with _Bytes() as counter:
            net.step(x, r, prepared)
    finally:
        F.scaled_dot_product_attention = original
    return {"operators": {k: (v, counter.calls[k]) for k, v in counter.bytes.most_common()},
            "attention_bytes": sum(attention), "attention_calls": len(attention)}


def print_traffic(stage: str, result: dict) -> None:
    ops = result["operators"]
    matmul = sum(b for k, (b, _) in ops.items() if k in ("addmm", "mm", "bmm"))
    rest = sum(b for k, (b, _) in ops.items() if k not in ("addmm", "mm", "bmm"))
    print(f"-- {stage}: GB per step: matrix products {matmul / 1e9:.1f}, attention {result['attention_bytes'] / 1e9:.1f}, "
          f"everything else {rest / 1e9:.1f}")
    for k, (b, calls) in list(ops.items())[:12]:
        print(f"   {b / 1e9:9.2f} GB {calls:6d}x  {k}")
