"""A loaded Stable Cascade: its four networks and text encoder on one device, in one dtype."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .compiling import compile_blocks
from .devices import reuse_host_buffers
from .models import Previewer, StageA, StageB, StageC
from .models.linear import set_packing
from .offload import Placement
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
    compile: str = "none"  # torch.compile mode of Stage C's and Stage B's blocks (compiling.py)
    cpu_packing: bool = True  # float32 on the CPU: Stage C and B multiply by MKL-packed weights (models/linear.py)
    cpu_buffer_reuse: bool = True  # on the CPU: large activations reuse freed heap pages (devices.reuse_host_buffers)

    def __post_init__(self):
        if self.placement is None:
            self.placement = Placement(self.networks(), self.device, "none")
        if self.compile != "none" and self.placement.mode != "none":
            raise ValueError("compiling needs the networks to stay on the device: use offload none to compile")
        packing = self.cpu_packing and self.compile == "none" and self.device.type == "cpu"
        if self.cpu_buffer_reuse and self.device.type == "cpu":
            reuse_host_buffers()
        for net in (self.stage_c, self.stage_b):
            compile_blocks(net, self.compile)
            set_packing(net, packing)

    def networks(self) -> dict[str, torch.nn.Module]:
        """The text encoder's transformer and the four networks, by stage name, in running order."""
        return {"text_encoder": self.text_encoder.model, "stage_c": self.stage_c, "previewer": self.previewer,
                "stage_b": self.stage_b, "stage_a": self.stage_a}
