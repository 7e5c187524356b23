"""A loaded Stable Cascade: its four networks and text encoder, where they live and how they run."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from .lora import Loras
from .models import Previewer, StageA, StageB, StageC
from .offload import Placement
from .runtime import Runtime
from .text import TextEncoder


@dataclass(frozen=True)
class LoadedNetwork:
    """What loading one network took: shown to users and kept in `CascadeModel.load_report`."""
    stage: str  # stage_c, stage_b, stage_a, previewer, text_encoder
    size: str  # full, lite, tiny, custom ("" for the text encoder)
    file: str
    seconds: float
    bytes: int  # its weights on the device


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
    load_report: tuple[LoadedNetwork, ...] = ()
    placement: Placement | None = None  # None: everything stays on `device` (offload none)
    runtime: Runtime = field(default_factory=Runtime)  # what runtime.apply did to the networks
    extras: Callable[[str], torch.nn.Module] | None = None  # extras.Extras: networks only some modes need
    loras: Loras = field(default_factory=Loras)  # the LoRAs merged now, and the LoRA folder

    def __post_init__(self):
        if self.placement is None:
            self.placement = Placement(self.networks(), self.device, "none")

    def networks(self) -> dict[str, torch.nn.Module]:
        """The text encoder's transformer and the four networks, by stage name, in running order."""
        return {"text_encoder": self.text_encoder.model, "stage_c": self.stage_c, "previewer": self.previewer,
                "stage_b": self.stage_b, "stage_a": self.stage_a}
