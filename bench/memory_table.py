"""Computed peak device memory of one 1024×1024 request, per variant and offload mode.

Weights: exact (the released tensor shapes × 2 bytes for bfloat16). Activations: the peak of
live tensor bytes while each network runs its step on the meta device (no memory is used,
every allocation is counted and released when its tensor dies), guided batch 2 for Stage C and
Stage B, batch 1 for Stage A. Not counted: the CUDA caching allocator's slack, cuBLAS and
attention workspaces, the CUDA context (about 0.5 GB). Run: python bench/memory_table.py
"""
from __future__ import annotations

import sys
import weakref
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cascade_core import memory  # noqa: E402
from cascade_core.config import PRESETS  # noqa: E402
from cascade_core.models import build  # noqa: E402
from cascade_core.pipeline import latent_shapes  # noqa: E402
from cascade_core.units import format_bytes  # noqa: E402

DTYPE = torch.bfloat16
SIZE = 1024
TEXT_ACTIVATIONS = 10**8  # 77 tokens through 32 layers of width 1280: well under 0.1 GB


class LiveBytes(TorchDispatchMode):
    """Counts the bytes of storages created under it while their tensors live; keeps the peak."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self.holders: dict[int, int] = {}  # storage → tensors holding it
        self.sizes: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if not isinstance(tensor, torch.Tensor):
                continue
            key = tensor.untyped_storage()._cdata
            if key not in self.holders:
                if func.is_view:  # a view of a tensor made elsewhere (a weight): no new memory
                    continue
                self.holders[key], self.sizes[key] = 0, tensor.untyped_storage().nbytes()
                self.live += self.sizes[key]
                self.peak = max(self.peak, self.live)
            self.holders[key] += 1
            weakref.finalize(tensor, self._release, key)
        return out

    def _release(self, key: int) -> None:
        self.holders[key] -= 1
        if self.holders[key] == 0:
            self.live -= self.sizes.pop(key)
            del self.holders[key]


def activation_peak(stage: str, size: str) -> int:
    """Peak live activation bytes of one guided step (Stage C, B) or the decode (Stage A)."""
    with torch.device("meta"):
        net = build(PRESETS[stage].get(size, PRESETS[stage]["full"])).to(DTYPE)
    shape_c, shape_b = latent_shapes(SIZE, SIZE)
    meta = lambda *shape: torch.zeros(*shape, device="meta", dtype=DTYPE)
    counter = LiveBytes()
    with torch.inference_mode():
        if stage == "stage_c":
            c = net.config
            cond = dict(clip_text=meta(2, 77, c.c_clip_text), clip_text_pooled=meta(2, 1, c.c_clip_text_pooled),
                        clip_img=meta(2, 1, c.c_clip_img))
            with counter:
                net(meta(2, *shape_c), meta(2), **cond)
        elif stage == "stage_b":
            c = net.config
            with counter:
                net(meta(2, *shape_b), meta(2), effnet=meta(2, 16, *shape_c[1:]), clip=meta(2, 1, c.c_clip))
        else:
            with counter:
                net.decode(meta(1, *shape_b))
    return counter.peak


def main() -> None:
    rows = []
    for variant in ("full", "lite"):
        weights = memory.weights_by_stage(variant, DTYPE)
        acts = {"text_encoder": TEXT_ACTIVATIONS, **{s: activation_peak(s, variant) for s in ("stage_c", "stage_b", "stage_a")}}
        small = weights["stage_a"] + weights["previewer"]
        largest_tensor = 0
        for stage in PRESETS:
            with torch.device("meta"):
                net = build(PRESETS[stage].get(variant, PRESETS[stage]["full"]))
            largest_tensor = max(largest_tensor, max(p.nelement() for p in net.parameters()) * DTYPE.itemsize)
        peaks = {
            "none": sum(weights.values()) + max(acts.values()),
            # the running big stage, the small ones, its activations; Stage A decodes while Stage B is resident
            "model": max(*(weights[s] + small + acts[s] for s in memory.BIG_STAGES),
                         weights["stage_b"] + small + acts["stage_a"]),
            "sequential": max(acts.values()) + largest_tensor,
        }
        rows.append((variant, {k: format_bytes(v) for k, v in peaks.items()},
                     {k: format_bytes(v) for k, v in acts.items()}))
    print(f"computed peak device memory, {SIZE}×{SIZE}, batch 1, bfloat16 weights")
    print("| variant | none | model | sequential | activations (text: a bound; C, B, A) |")
    print("|---|---|---|---|---|")
    for variant, peaks, acts in rows:
        print(f"| {variant} | {peaks['none']} | {peaks['model']} | {peaks['sequential']} | "
              f"{', '.join(acts.values())} |")


if __name__ == "__main__":
    main()
