"""Stage C and Stage B tensors under the names other tools give them → the released names.

Three namings of the same networks are in use (the blocks, mappers and their indices are the same
in all three; only attention and, for Stage B, one mapper differ):

| naming | attention of a block | Stage B's pooled-CLIP mapper |
|---|---|---|
| released (official `modules/common.py`: `nn.MultiheadAttention`) | `attention.attn.in_proj_weight/_bias`, `attention.attn.out_proj.*` | `clip_mapper` |
| ComfyUI (`comfy/ldm/cascade/common.py`, as it saves) | `attention.attn.to_q/to_k/to_v.*`, `attention.attn.out_proj.*` | `clip_mapper` |
| diffusers (`scripts/convert_stable_cascade.py`) | `attention.to_q/to_k/to_v.*`, `attention.to_out.0.*` | `clip_txt_pooled_mapper` |

The split projections are concatenated back in q, k, v order (rows of `in_proj`), the inverse of
the `chunk(3, 0)` both tools apply.
"""
from __future__ import annotations

import re

from .plan import Header, Plan, Source, Tensor

MARKERS = {"stage_c": "clip_txt_mapper.weight", "stage_b": "effnet_mapper.0.weight"}
_SPLIT = re.compile(r"(?P<block>.+\.attention)\.(?P<attn>attn\.)?to_(?P<qkv>[qkv])\.(?P<kind>weight|bias)")
_OUT = re.compile(r"(?P<block>.+\.attention)\.to_out\.0\.(?P<kind>weight|bias)")
_POOLED = "clip_txt_pooled_mapper."  # diffusers' name for Stage B's clip_mapper


def stage_of(names) -> str | None:
    """stage_c or stage_b by the mapper only that network has (diffusers' single-file detection uses the same)."""
    return next((stage for stage, marker in MARKERS.items() if marker in names), None)


def naming(header: Header) -> str:
    """Which of the three namings a Stage C / B header uses."""
    if any(_OUT.fullmatch(name) for name in header):
        return "diffusers names"
    if any(_SPLIT.fullmatch(name) for name in header):
        return "ComfyUI names"
    return "released names"


def plan(stage: str, header: Header) -> Plan:
    """Our names → the header's tensors. An incomplete q/k/v triple keeps its own names, so that the
    layout check reports it (the packed projection is then missing) instead of a guess."""
    result: Plan = {}
    split: dict[tuple[str, str], dict[str, tuple[str, Tensor]]] = {}  # (block, kind) → q/k/v → (name, tensor)
    for name, tensor in header.items():
        if m := _SPLIT.fullmatch(name):
            split.setdefault((m["block"], m["kind"]), {})[m["qkv"]] = (name, tensor)
        elif m := _OUT.fullmatch(name):
            result[f"{m['block']}.attn.out_proj.{m['kind']}"] = Source((tensor,))
        elif stage == "stage_b" and name.startswith(_POOLED):
            result["clip_mapper." + name.removeprefix(_POOLED)] = Source((tensor,))
        else:
            result[name] = Source((tensor,))
    for (block, kind), parts in split.items():
        if parts.keys() == {"q", "k", "v"}:
            result[f"{block}.attn.in_proj_{kind}"] = Source(tuple(parts[x][1] for x in "qkv"))
        else:
            result.update({name: Source((tensor,)) for name, tensor in parts.values()})
    return result
