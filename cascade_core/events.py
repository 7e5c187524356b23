"""What `generate()` yields, in order: Started, StageProgress…, StageDone(stage_c),
StageProgress…, then Finished, or Cancelled wherever the consumer stopped it.

Images are PIL images, so a front end needs no torch. Stage names are "stage_c" (the prior)
and "stage_b" (the decoder).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from PIL.Image import Image

from .request import GenerationRequest


@dataclass(frozen=True)
class Started:
    request: GenerationRequest  # validated: seed chosen, sizes snapped
    notices: tuple[str, ...]  # what was adjusted (size rounding, truncated prompt words)


@dataclass(frozen=True)
class StageProgress:
    stage: str  # "stage_c" or "stage_b"
    step: int  # 1-based step just finished
    total: int
    elapsed: float  # seconds since the request started
    previews: tuple[Image, ...] = ()  # every few steps: Stage C previews or decoded Stage B intermediates
    preview_step: int = 0  # the step the previews show (on a GPU they arrive a step or two later); 0: none


@dataclass(frozen=True)
class StageDone:
    stage: str  # "inputs" (with the control map the ControlNet sees), "stage_c" or "stage_b"
    seconds: float
    previews: tuple[Image, ...] = ()  # after Stage C: the previewer's image of each latent


@dataclass(frozen=True)
class Finished:
    images: tuple[Image, ...]
    seeds: tuple[int, ...]
    settings: tuple[dict, ...]  # per image: everything needed to remake it (see images.metadata)
    timings: dict[str, float]  # seconds per stage: text, stage_c, preview, stage_b, stage_a, total
    tensors: dict[str, Any] = field(default_factory=dict, repr=False)  # float32 CPU: latent_c, preview, latent_b, image
    unblended: tuple[Image, ...] = ()  # repaint, extend: the images before the kept picture was blended in


@dataclass(frozen=True)
class Cancelled:
    stage: str
    step: int
    elapsed: float


Event = Union[Started, StageProgress, StageDone, Finished, Cancelled]
