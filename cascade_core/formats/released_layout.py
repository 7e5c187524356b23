"""The released layout (`stabilityai/stable-cascade`'s file names) and `cascade.json` folders.

A released name says which network a file should hold; what it does hold, and in which naming,
is told from its tensors (`detect`), so a fine-tune saved as `stage_c.safetensors` in ComfyUI's
naming, or a bundle renamed so, loads too. Its size is detected from the converted shapes.
A `cascade.json` gives each network's constructor args (official names) and file name.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..config import PRESETS
from ..errors import ModelLoadError
from ..models.layouts import expected_layout
from ..released import RELEASED_FILES, released_names
from ..weights import NetworkFile, layout_problems, read_layout
from . import networks
from .detect import contents


def detect_size(stage: str, path: Path) -> NetworkFile:
    """Which size of `stage` a file holds, from its tensor shapes, in whichever naming it uses."""
    return networks.from_file(stage, contents(path))


def find_released(folder: Path, stage: str, variant: str, dtype: torch.dtype) -> NetworkFile | None:
    """The released file of `stage` that `variant` allows, the dtype's weights first; None when there is none."""
    for name in wanted_names(stage, variant, dtype):
        if (folder / name).is_file():
            return detect_size(stage, folder / name)
    return None


def wanted_names(stage: str, variant: str = "auto", dtype: torch.dtype = torch.float32) -> list[str]:
    """The released names `variant` allows, in the order they are looked for."""
    sizes = RELEASED_FILES[stage]
    preference = {"auto": ["full", "lite"], "full": ["full"], "lite": ["lite"]}[variant]
    order = [size for size in preference if size in sizes] or list(sizes)  # Stage A, previewer: one size
    prefer = "bf16" if dtype == torch.bfloat16 else "fp32"
    return [name for size in order for name in released_names(stage, size, prefer)]


def find_custom(folder: Path, spec: dict, stage: str) -> NetworkFile:
    """A network described by cascade.json: its constructor args and file name."""
    config_class = type(PRESETS[stage]["full"])
    try:
        config = config_class.from_official(spec[stage])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelLoadError(f"{folder / 'cascade.json'}: bad or missing {stage!r} entry ({e})") from e
    path = folder / spec.get("files", {}).get(stage, f"{stage}.safetensors")
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing; cascade.json names it for {stage}")
    problems = layout_problems(read_layout(path), expected_layout(config))
    if problems:
        raise ModelLoadError(f"{path.name} does not match the {stage} arguments in cascade.json: " + "; ".join(problems))
    size = next((s for s, c in PRESETS[stage].items() if c == config), "custom")
    return NetworkFile(stage, config, path, size)
