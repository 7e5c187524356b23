"""A conversion plan: for each tensor name of ours, the file tensors it is made of, then a lean load.

Formats name and split tensors differently: diffusers and ComfyUI split attention's packed
`in_proj` into to_q / to_k / to_v, ComfyUI prefixes each part of a bundle, CLIP's projection may be
stored transposed. A plan maps each of our names to its `Source`: one or more tensors of the
files (concatenated on dim 0 when several), maybe transposed, with the shape that results. The
shapes come from the safetensors headers alone, so detecting and checking a file reads no weights.
`load_plan` reads the memory-mapped tensors, concatenates only where a plan says so, and casts and
places each once; nothing else is copied. Pickles are never read.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from ..errors import ModelLoadError

Shape = tuple[int, ...]
_ITEMSIZE = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2, "U16": 2}


@dataclass(frozen=True)
class Tensor:
    """One tensor of a file, as its header describes it."""
    path: Path
    name: str
    shape: Shape
    dtype: str = "F32"  # as the header names it: F32, BF16, F16, I64, …

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * _ITEMSIZE.get(self.dtype, 1)  # 1: U8, I8, BOOL, F8_*


Header = dict[str, Tensor]  # the names a part uses (prefixes removed) → the file tensors


@dataclass(frozen=True)
class Source:
    """What one of our tensors is made of: `parts` concatenated on dim 0, then transposed if asked."""
    parts: tuple[Tensor, ...]
    transpose: bool = False

    @property
    def shape(self) -> Shape:
        first = self.parts[0].shape
        shape = (sum(p.shape[0] for p in self.parts), *first[1:]) if len(self.parts) > 1 else first
        return shape[::-1] if self.transpose else shape


Plan = dict[str, Source]


def read_header(path: Path) -> Header:
    """Every tensor name and shape of a safetensors file (its header only; no weights are read)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            slices = {name: f.get_slice(name) for name in f.keys()}
            return {name: Tensor(path, name, tuple(s.get_shape()), s.get_dtype()) for name, s in slices.items()}
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelLoadError(f"{path} is not a readable safetensors file ({e}); delete it and fetch it again") from e


def identity(header: Header) -> Plan:
    """Each tensor under its own name."""
    return {name: Source((tensor,)) for name, tensor in header.items()}


def layout(plan: Plan) -> dict[str, Shape]:
    """Our names and the shapes they will have."""
    return {name: source.shape for name, source in plan.items()}


def stored_bytes(plan: Plan) -> int:
    """Bytes the plan's tensors take in their files (a part of a bundle: its share of the file)."""
    return sum(part.nbytes for source in plan.values() for part in source.parts)


def load_plan(plan: Plan, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Our state dict: floating tensors cast to `dtype`, every tensor on `device`; integer buffers keep their dtype."""
    state = {}
    paths = sorted({part.path for source in plan.values() for part in source.parts})
    with contextlib.ExitStack() as stack:
        try:
            files = {path: stack.enter_context(safe_open(str(path), framework="pt", device="cpu")) for path in paths}
            for name, source in plan.items():
                tensors = [files[part.path].get_tensor(part.name) for part in source.parts]
                cast = dtype if tensors[0].is_floating_point() else tensors[0].dtype
                tensors = [t.to(device=device, dtype=cast) for t in tensors]
                tensor = torch.cat(tensors) if len(tensors) > 1 else tensors[0]  # q, k, v → in_proj
                state[name] = tensor.t().contiguous() if source.transpose else tensor
        except (SafetensorError, OSError, RuntimeError) as e:
            where = ", ".join(str(p) for p in paths)
            raise ModelLoadError(f"{where} could not be read ({e}); delete it and fetch it again") from e
    return state
