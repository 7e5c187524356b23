"""A loaded Stable Cascade: its four networks and text encoder on one device, in one dtype."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .models import Previewer, StageA, StageB, StageC
from .text import TextEncoder


@dataclass
class CascadeModel:
    name: str  # shown to users and written into image metadata
    stage_c: StageC
    stage_b: StageB
    stage_a: StageA
    previewer: Previewer
    text_encoder: TextEncoder
    device: torch.device
    dtype: torch.dtype
    variant: str = "custom"  # "full", "lite", "tiny", or "custom" sizes from a cascade.json
    load_seconds: dict[str, float] = field(default_factory=dict)
