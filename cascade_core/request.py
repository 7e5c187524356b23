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

from .errors import RequestError
from .image_inputs import shorter_side_to
from .picture import Picture

MIN_SIZE, MAX_SIZE, SIZE_MULTIPLE = 256, 2048, 8
MAX_STEPS = 200
MAX_GUIDANCE = 30.0
MAX_IMAGES = 8
MAX_SEED = 2**53 - 1  # exact in JSON and JavaScript numbers
MAX_PROMPT_CHARS = 10_000
PROMPT_WINDOWS = 3  # 77-token windows a prompt may fill (225 tokens); 1: the official truncation to 77
MAX_PROMPT_WINDOWS = 8  # 600 tokens: each window adds 77 keys to every Stage C attention
CONTROLS = ("none", "canny", "inpaint", "outpaint", "upscale")
REMIX_STRENGTH = 0.8  # the official image-to-image notebook's noise_level: the CLI's, API's and studio's remix default
MAX_CONTROL_SCALE = 3.0
MAX_MARGIN = 1024
MAX_LORAS = 8
MAX_LORA_STRENGTH = 4.0  # a LoRA's strength lies in ±this (1: as trained, 0: off)
PICTURE_FIELDS = ("init_image", "image_prompt", "control_image", "mask")
# Control characters other than tab and newline, and unpaired surrogates (not encodable as UTF-8).
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


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
    # Pictures (README, "Image inputs"); each mode can go with a text prompt.
    init_image: Picture | None = None  # remix: image-to-image from this picture
    strength: float = 1.0  # remix and repaint: how far from the picture, the official noise_level in (0, 1]
    image_size: int | None = None  # the notebooks' sizing: pictures' shorter side to N (remix: the size follows)
    image_prompt: Picture | None = None  # variations: Stage C sees this picture's CLIP image embedding
    control: str = "none"  # canny (edges), inpaint (repaint), outpaint (extend), upscale (2×)
    control_image: Picture | None = None
    mask: Picture | None = None  # inpaint: bright pixels are repainted; the control image's size
    margin: int = 0  # outpaint: pixels added on every side of the control image
    control_scale: float = 1.0  # the control's strength (official cnet_multiplier)
    # How prompts are read (README, "Long prompts and weighting"); the official pipeline: 1 and False.
    prompt_windows: int = PROMPT_WINDOWS  # at most this many 77-token windows; the rest is cut with a notice
    prompt_weighting: bool = True  # (word:1.3), (word), [word] as in AUTOMATIC1111; False: brackets are text
    # LoRAs for Stage C (README, "LoRAs"): (a file, a name in the LoRA folder or owner/repo/file.safetensors, strength)
    loras: tuple[tuple[str, float], ...] = ()

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
            value = _number(name, getattr(self, name))
            if not 0 <= value <= MAX_GUIDANCE:
                raise RequestError(name, f"{value} is outside 0–{MAX_GUIDANCE:g} (1 or less means no guidance)")
            guidance[name] = float(value)
        num_images = _integer("num_images", self.num_images)
        if not 1 <= num_images <= MAX_IMAGES:
            raise RequestError("num_images", f"{num_images} is outside 1–{MAX_IMAGES}")
        seed = secrets.randbelow(2**32) if self.seed is None else _integer("seed", self.seed)
        if not 0 <= seed <= MAX_SEED - (num_images - 1):
            raise RequestError("seed", f"{seed} is outside 0–{MAX_SEED - (num_images - 1)}")
        windows = _integer("prompt_windows", self.prompt_windows)
        if not 1 <= windows <= MAX_PROMPT_WINDOWS:
            raise RequestError("prompt_windows", f"{windows} is outside 1–{MAX_PROMPT_WINDOWS} (windows of 75 tokens; "
                               "1: the official truncation to 77 tokens)")
        if not isinstance(self.prompt_weighting, bool):
            raise RequestError("prompt_weighting", f"must be true or false, got {self.prompt_weighting!r}")
        images = _validated_pictures(self, sizes, notices)
        request = dataclasses.replace(self, **texts, **sizes, **steps, **guidance, num_images=num_images, seed=seed,
                                      prompt_windows=windows, **images, loras=_validated_loras(self.loras))
        return request, tuple(notices)

    @property
    def mode(self) -> str:
        """text, remix, image prompt, edges, repaint, extend or upscale (a control wins over a remix)."""
        names = {"canny": "edges", "inpaint": "repaint", "outpaint": "extend", "upscale": "upscale"}
        if self.control != "none":
            return names[self.control]
        if self.init_image is not None:
            return "remix"
        return "image prompt" if self.image_prompt is not None else "text"

    def seeds(self) -> list[int]:
        """Image k of the batch uses seed + k, so any image can be remade alone."""
        return [self.seed + k for k in range(self.num_images)]

    def for_image(self, k: int) -> "GenerationRequest":
        """The one-image request that remakes image k of this batch."""
        return dataclasses.replace(self, seed=self.seed + k, num_images=1)

    def to_dict(self) -> dict:
        """The settings as JSON-ready values; a picture is its digest (`sha256:…`), the mode is named."""
        settings = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in PICTURE_FIELDS:
            settings[name] = f"sha256:{settings[name].digest}" if settings[name] is not None else None
        settings["loras"] = [[name, strength] for name, strength in self.loras]
        return {**settings, "mode": self.mode}


def _integer(name: str, value) -> int:
    """Accept ints and integral floats (JSON, sliders); refuse bools, fractions, text."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(name, f"must be a whole number, got {value!r}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise RequestError(name, f"must be a whole number, got {value!r}")
    return int(value)


def _number(name: str, value) -> float:
    """Accept finite ints and floats; refuse bools, text, NaN and infinities."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RequestError(name, f"must be a finite number, got {value!r}")
    return value


def _finite(name: str, value, low: float, high: float, low_open: bool = False) -> float:
    value = _number(name, value)
    if value > high or value < low or (low_open and value == low):
        bracket = "(" if low_open else "["
        raise RequestError(name, f"{value} is outside {bracket}{low:g}, {high:g}]")
    return float(value)


def _validated_loras(loras) -> tuple[tuple[str, float], ...]:
    """(name, strength) pairs, each name once, strengths within ±MAX_LORA_STRENGTH; the files are the
    engine's to find (lora.resolve)."""
    if not isinstance(loras, (tuple, list)) or len(loras) > MAX_LORAS:
        raise RequestError("loras", f"must be a list of at most {MAX_LORAS} (name, strength) pairs, got {loras!r:.80}")
    checked: dict[str, float] = {}
    for pair in loras:
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and isinstance(pair[0], str) and pair[0].strip()):
            raise RequestError("loras", "each LoRA is a (name, strength) pair: a file, a name in the LoRA folder or "
                               f"owner/repo/file.safetensors, and a number; got {pair!r:.80}")
        name, strength = pair[0].strip(), pair[1]
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength):
            raise RequestError("loras", f"the strength of {name!r} must be a finite number, got {strength!r:.40}")
        if not -MAX_LORA_STRENGTH <= strength <= MAX_LORA_STRENGTH:
            raise RequestError("loras", f"the strength of {name!r} is {strength}, outside ±{MAX_LORA_STRENGTH:g} "
                               "(1: as trained, 0: off)")
        if name in checked:
            raise RequestError("loras", f"{name!r} is listed twice: give it once, with the strengths added")
        checked[name] = float(strength)
    return tuple(checked.items())


def _snapped(width: float, height: float) -> tuple[int, int]:
    """A size of this aspect within MIN_SIZE–MAX_SIZE a side (scaled up or down as a whole), each side
    a multiple of SIZE_MULTIPLE."""
    scale = max(1.0, MIN_SIZE / min(width, height))
    scale = min(scale, MAX_SIZE / max(width, height))
    snap = lambda v: int(min(MAX_SIZE, max(MIN_SIZE, SIZE_MULTIPLE * round(v * scale / SIZE_MULTIPLE))))
    return snap(width), snap(height)


def _same_area(width: int, height: int, budget: dict) -> tuple[int, int]:
    """(width, height) of the aspect `width/height` with about the pixels of the request's size, snapped."""
    scale = math.sqrt(budget["width"] * budget["height"] / (width * height))
    return _snapped(width * scale, height * scale)


def _validated_pictures(request: GenerationRequest, sizes: dict, notices: list[str]) -> dict:
    """Checks the picture fields; may set `sizes` (the output follows a picture in some modes)."""
    for name in PICTURE_FIELDS:
        value = getattr(request, name)
        if value is not None and not isinstance(value, Picture):
            raise RequestError(name, f"must be a picture (cascade_core.Picture), got {type(value).__name__}")
    if request.control not in CONTROLS:
        raise RequestError("control", f"{request.control!r} is not one of {', '.join(CONTROLS)}")
    strength = _finite("strength", request.strength, 0.0, 1.0, low_open=True)
    scale = _finite("control_scale", request.control_scale, 0.0, MAX_CONTROL_SCALE)
    image_size = None if request.image_size is None else _integer("image_size", request.image_size)
    if image_size is not None and not 32 <= image_size <= MAX_SIZE:
        raise RequestError("image_size", f"{image_size} px is outside 32–{MAX_SIZE} px")
    margin = _integer("margin", request.margin)
    picture, control = request.control_image, request.control
    if control != "none" and picture is None:
        raise RequestError("control_image", f"control {control} needs a picture: give control_image")
    if control == "inpaint":
        if request.mask is None:
            raise RequestError("mask", "repainting needs a mask: paint the area to repaint (white) on the picture")
        if request.mask.size != picture.size:
            raise RequestError("mask", f"the mask is {request.mask.size[0]}×{request.mask.size[1]} and the picture "
                               f"{picture.size[0]}×{picture.size[1]}: paint the mask on the picture itself")
    if control == "outpaint" and not SIZE_MULTIPLE <= margin <= MAX_MARGIN:
        raise RequestError("margin", f"{margin} px is outside {SIZE_MULTIPLE}–{MAX_MARGIN} px (the band added on "
                           "every side)")
    follow = None  # the picture (width, height) the output's aspect follows
    if control == "upscale":
        width, height = 2 * picture.size[0], 2 * picture.size[1]
        if max(width, height) > MAX_SIZE or min(width, height) < MIN_SIZE:
            raise RequestError("control_image", f"upscaling the {picture.size[0]}×{picture.size[1]} picture 2× makes "
                               f"{width}×{height}; each side must be {MIN_SIZE}–{MAX_SIZE} px")
        sizes["width"], sizes["height"] = _snapped(width, height)
    elif control == "inpaint":
        follow = picture.size
    elif control == "outpaint":
        follow = (picture.size[0] + 2 * margin, picture.size[1] + 2 * margin)
    elif control == "none" and request.init_image is not None and image_size is not None:
        follow = request.init_image.size
    if follow is not None:
        before = dict(sizes)
        if image_size is not None and control != "outpaint":
            height, width = shorter_side_to(follow[1], follow[0], image_size)
            sizes["width"], sizes["height"] = _snapped(width, height)
        else:
            sizes["width"], sizes["height"] = _same_area(*follow, before)
        if sizes != before:
            notices.append(f"the size follows the picture: {sizes['width']}×{sizes['height']}")
    return {"strength": strength, "control_scale": scale, "image_size": image_size, "margin": margin}
