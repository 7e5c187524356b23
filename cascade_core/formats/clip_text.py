"""A bundle's CLIP text model → transformers' `CLIPTextModelWithProjection`, built on meta and assigned.

The config comes from a `text_encoder/config.json` (the folder's, else stabilityai/stable-cascade's);
the bundle's tensors must match its layout exactly. `position_ids`, a buffer transformers does not
save, is made here: `arange(max_position_embeddings)` as transformers' own constructor makes it.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ModelLoadError
from ..weights import layout_problems
from .plan import Plan, layout, load_plan


def text_config(folder: Path):
    from transformers import CLIPTextConfig

    try:
        return CLIPTextConfig.from_pretrained(folder)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{folder / 'config.json'} is missing or unreadable ({e})") from e


def expected(config) -> dict[str, tuple[int, ...]]:
    """Names and shapes of a `CLIPTextModelWithProjection` of `config` (built on meta: free)."""
    from transformers import CLIPTextModelWithProjection

    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in CLIPTextModelWithProjection(config).state_dict().items()}


def problems(plan: Plan, config_folder: Path) -> list[str]:
    """How a bundle's text tensors differ from the model of `config_folder`'s config.json."""
    return layout_problems(layout(plan), expected(text_config(config_folder)))


def load(plan: Plan, config_folder: Path, label: str, device: torch.device, dtype: torch.dtype):
    """The text model of `config_folder`'s config with the bundle's weights, cast to `dtype` on `device`."""
    from transformers import CLIPTextModelWithProjection

    config = text_config(config_folder)
    found = layout_problems(layout(plan), expected(config))
    if found:
        raise ModelLoadError(f"the CLIP text encoder in {label} does not match {config_folder / 'config.json'}: "
                             + "; ".join(found))
    with torch.device("meta"):
        model = CLIPTextModelWithProjection(config)
    model.load_state_dict(load_plan(plan, device, dtype), assign=True)
    positions = torch.arange(config.max_position_embeddings, device=device).expand(1, -1)  # (1, 77)
    model.text_model.embeddings.register_buffer("position_ids", positions, persistent=False)
    return model.requires_grad_(False)
