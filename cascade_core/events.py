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
class Composition:
    """One explored Stage C result (`generate(..., stage_c_only=True)`), which `finish()` completes
    without running Stage C again: its image equals the full run's with the same request and seed."""
    request: GenerationRequest  # validated, one image: its seed and settings
    model: str  # the model that made it (a latent only fits the model whose Stage C made it)
    latent_c: Any = field(repr=False)  # (1, 16, h, w) float32 CPU tensor: Stage C's last prediction
    random_state: Any = field(repr=False)  # the image's CPU generator after Stage C (Generator.get_state())
    keep: Any = field(default=None, repr=False)  # repaint, extend: (pixels, weight) the final image keeps, CPU


@dataclass(frozen=True)
class Finished:
    images: tuple[Image, ...]
    seeds: tuple[int, ...]
    settings: tuple[dict, ...]  # per image: everything needed to remake it (see images.metadata)
    timings: dict[str, float]  # seconds per stage: text, stage_c, preview, stage_b, stage_a, total
    tensors: dict[str, Any] = field(default_factory=dict, repr=False)  # float32 CPU: latent_c, preview, latent_b, image
    unblended: tuple[Image, ...] = ()  # repaint, extend: the images before the kept picture was blended in
    compositions: tuple[Composition, ...] = ()  # stage_c_only: what finish() needs to complete each image


@dataclass(frozen=True)
class Cancelled:
    stage: str
    step: int
    elapsed: float


Event = Union[Started, StageProgress, StageDone, Finished, Cancelled]
