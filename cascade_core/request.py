"""What a user asks for, checked once at the engine boundary.

`GenerationRequest.validated()` is the one place where every field is checked; it returns
the request the engine will run (sizes snapped, a seed chosen) and notices for the user.
Errors are `RequestError`s whose message says what to change.
"""
from __future__ import annotations

import dataclasses
import math
import re
import secrets
from dataclasses import dataclass

MIN_SIZE, MAX_SIZE, SIZE_MULTIPLE = 256, 2048, 8
MAX_STEPS = 200
MAX_GUIDANCE = 30.0
MAX_IMAGES = 8
MAX_SEED = 2**53 - 1  # exact in JSON and JavaScript numbers
MAX_PROMPT_CHARS = 10_000
# Control characters other than tab and newline, and unpaired surrogates (not encodable as UTF-8).
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


class RequestError(ValueError):
    """A request field is out of range or of the wrong type; `field` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class GenerationRequest:
    """Settings of one generation. Defaults follow the official Stable Cascade notebook."""
    prompt: str
    negative_prompt: str = ""
    width: int = 1024
    height: int = 1024
    seed: int | None = None  # None: a random seed, reported back
    prior_steps: int = 20
    prior_guidance: float = 4.0
    decoder_steps: int = 10
    decoder_guidance: float = 1.1
    num_images: int = 1

    def validated(self) -> tuple["GenerationRequest", tuple[str, ...]]:
        """The request to run and notices about what was adjusted; raises RequestError."""
        notices: list[str] = []
        texts = {}
        for name in ("prompt", "negative_prompt"):
            text = getattr(self, name)
            if not isinstance(text, str):
                raise RequestError(name, f"must be text, got {type(text).__name__}")
            if len(text) > MAX_PROMPT_CHARS:
                raise RequestError(name, f"is {len(text):,} characters long; the limit is {MAX_PROMPT_CHARS:,}")
            texts[name], removed = _UNPRINTABLE.subn("", text)
            if removed:
                notices.append(f"{removed} control character{'s' if removed > 1 else ''} removed from the {name}")
        sizes = {}
        for name in ("width", "height"):
            value = _integer(name, getattr(self, name))
            if not MIN_SIZE <= value <= MAX_SIZE:
                raise RequestError(name, f"{value} px is outside {MIN_SIZE}–{MAX_SIZE} px")
            snapped = SIZE_MULTIPLE * round(value / SIZE_MULTIPLE)
            if snapped != value:
                notices.append(f"{name} {value} px was rounded to {snapped} px (a multiple of {SIZE_MULTIPLE})")
            sizes[name] = snapped
        steps = {}
        for name in ("prior_steps", "decoder_steps"):
            steps[name] = _integer(name, getattr(self, name))
            if not 1 <= steps[name] <= MAX_STEPS:
                raise RequestError(name, f"{steps[name]} is outside 1–{MAX_STEPS}")
        guidance = {}
        for name in ("prior_guidance", "decoder_guidance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise RequestError(name, f"must be a finite number, got {value!r}")
            if not 0 <= value <= MAX_GUIDANCE:
                raise RequestError(name, f"{value} is outside 0–{MAX_GUIDANCE:g} (1 or less means no guidance)")
            guidance[name] = float(value)
        num_images = _integer("num_images", self.num_images)
        if not 1 <= num_images <= MAX_IMAGES:
            raise RequestError("num_images", f"{num_images} is outside 1–{MAX_IMAGES}")
        seed = secrets.randbelow(2**32) if self.seed is None else _integer("seed", self.seed)
        if not 0 <= seed <= MAX_SEED - (num_images - 1):
            raise RequestError("seed", f"{seed} is outside 0–{MAX_SEED - (num_images - 1)}")
        request = dataclasses.replace(self, **texts, **sizes, **steps, **guidance, num_images=num_images, seed=seed)
        return request, tuple(notices)

    def seeds(self) -> list[int]:
        """Image k of the batch uses seed + k, so any image can be remade alone."""
        return [self.seed + k for k in range(self.num_images)]

    def for_image(self, k: int) -> "GenerationRequest":
        """The one-image request that remakes image k of this batch."""
        return dataclasses.replace(self, seed=self.seed + k, num_images=1)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _integer(name: str, value) -> int:
    """Accept ints and integral floats (JSON, sliders); refuse bools, fractions, text."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(name, f"must be a whole number, got {value!r}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise RequestError(name, f"must be a whole number, got {value!r}")
    return int(value)
