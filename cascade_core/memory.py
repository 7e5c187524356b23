"""How much memory a model needs and a device has: the variant `auto` picks, and load checks.

Weight bytes are exact (tensor shapes of the released layouts × the dtype's size). The
activation margin is the computed peak of live activations for 1024×1024, batch 1 with
guidance, from bench/memory_table.py (README, "Memory"), rounded up.
"""
from __future__ import annotations

import functools
import math
import os

import torch

from .config import PRESETS
from .errors import ModelLoadError
from .models.layouts import expected_layout
from .units import format_bytes

BIG_STAGES = ("text_encoder", "stage_c", "stage_b")  # moved on and off the device by offload=model
ACTIVATION_MARGIN = 2 * 10**9
# The released text encoder: CLIP ViT-bigG/14's text tower with its projection (text_encoder/config.json).
BIGG_TEXT = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                 projection_dim=1280, vocab_size=49408, max_position_embeddings=77, hidden_act="gelu",
                 pad_token_id=1, bos_token_id=49406, eos_token_id=49407)


def module_bytes(module: torch.nn.Module) -> int:
    """Bytes of a module's parameters and buffers."""
    return sum(t.nelement() * t.element_size() for t in (*module.parameters(), *module.buffers()))


@functools.lru_cache(maxsize=None)
def network_bytes(stage: str, size: str, dtype: torch.dtype) -> int:
    """Weight bytes of a released network (`size` full or lite; one size for Stage A and the previewer)."""
    return config_bytes(PRESETS[stage].get(size, PRESETS[stage]["full"]), dtype)


def config_bytes(config, dtype: torch.dtype) -> int:
    """Weight bytes of a network of this config, from its layout (built on meta: free)."""
    return sum(math.prod(shape) for shape in expected_layout(config).values()) * dtype.itemsize


def clip_text_bytes(config, dtype: torch.dtype) -> int:
    """Weight bytes of a CLIP text model with projection of this `CLIPTextConfig`, counted on meta."""
    from transformers import CLIPTextModelWithProjection

    with torch.device("meta"):
        model = CLIPTextModelWithProjection(config)
    return sum(p.nelement() for p in model.parameters()) * dtype.itemsize


@functools.lru_cache(maxsize=None)
def text_encoder_bytes(dtype: torch.dtype) -> int:
    """Weight bytes of the released CLIP bigG text encoder."""
    from transformers import CLIPTextConfig

    return clip_text_bytes(CLIPTextConfig(**BIGG_TEXT), dtype)


def weights_by_stage(variant: str, dtype: torch.dtype) -> dict[str, int]:
    return {"text_encoder": text_encoder_bytes(dtype), **{stage: network_bytes(stage, variant, dtype) for stage in PRESETS}}


def resident_bytes(weights: dict[str, int], offload: str) -> int:
    """Weight bytes on the device at the busiest moment of a request, per offload mode.

    none: everything. model: the largest of the text encoder, Stage C and Stage B, plus the small
    Stage A and previewer, which stay. sequential: only the layer running, so about nothing.
    """
    if offload == "none":
        return sum(weights.values())
    small = sum(v for k, v in weights.items() if k not in BIG_STAGES)
    if offload == "model":
        return max(weights[k] for k in BIG_STAGES) + small
    return small


def available_bytes(device: torch.device) -> int:
    """Memory free for a model on `device`: free GPU memory, or the host's available memory."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "mps":
        return torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory()
    return host_available_bytes()


def host_available_bytes() -> int:
    """MemAvailable from /proc/meminfo where there is one, else the physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def needed_bytes(variant: str, dtype: torch.dtype, offload: str) -> int:
    return resident_bytes(weights_by_stage(variant, dtype), offload) + ACTIVATION_MARGIN


def choose_variant(device: torch.device, dtype: torch.dtype, offload: str = "none") -> str:
    """`full` when its weights and a 1024×1024 request fit in the free memory, else `lite`."""
    return "full" if needed_bytes("full", dtype, offload) <= available_bytes(device) else "lite"


def describe_choice(device: torch.device, dtype: torch.dtype, offload: str = "none") -> str:
    """Why `choose_variant` chose as it did, in one line."""
    return (f"full needs {format_bytes(needed_bytes('full', dtype, offload))} with offload {offload} "
            f"({str(dtype).removeprefix('torch.')} weights and a 1024×1024 request), "
            f"{device} has {format_bytes(available_bytes(device))} free")


def check_fits(weights: dict[str, int], device: torch.device, offload: str, variant: str) -> None:
    """Refuse, before loading, a model whose resident weights alone exceed the free memory."""
    need, free = resident_bytes(weights, offload), available_bytes(device)
    if need > free:
        fixes = [f for f, ok in (("--variant lite", variant != "lite"), ("--offload model", offload == "none"),
                                 ("--offload sequential", offload != "sequential")) if ok]
        raise ModelLoadError(
            f"not enough memory: the {variant} model keeps {format_bytes(need)} of weights on {device} with offload "
            f"{offload}, and {format_bytes(free)} is free. Try {' or '.join(fixes) or 'a machine with more memory'}, "
            "or close what else uses the memory.")
