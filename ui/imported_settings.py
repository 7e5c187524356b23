"""Settings read back from another image: the studio's control values, checked, and what was left out.

Each reader (ui/infotext.py, ui/comfy_graph.py, ui/png_settings.py) hands raw values to a
`Collector`, which keeps those the studio's controls accept (the ranges of
cascade_core/request.py) and turns every other value into a note for the user.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields

from cascade_core.request import MAX_GUIDANCE, MAX_SEED, MAX_SIZE, MAX_STEPS, MIN_SIZE

MAX_NOTE_CHARS = 300  # one note; longer values are cut with an ellipsis
MAX_NOTES = 12
MAX_LORAS = 16  # read from one file; the engine checks its own limit
# Extra-network tags of AUTOMATIC1111 / Forge prompts: <lora:name:strength> (also lyco; a second number is the
# text encoder's / UNet's split, of which the first is kept), and <hypernet:…>, which the studio has no use for.
_NETWORK_TAG = re.compile(r"<(lora|lyco|lycoris|hypernet):([^<>:]{1,200})(?::([^<>]{0,100}))?>", re.IGNORECASE)

# name → (kind, lowest, highest, label in notes)
_FIELDS = {
    "width": (int, MIN_SIZE, MAX_SIZE, "width"),
    "height": (int, MIN_SIZE, MAX_SIZE, "height"),
    "seed": (int, 0, MAX_SEED, "seed"),
    "prior_steps": (int, 1, MAX_STEPS, "composition steps"),
    "prior_guidance": (float, 0.0, MAX_GUIDANCE, "composition guidance"),
    "decoder_steps": (int, 1, MAX_STEPS, "detail steps"),
    "decoder_guidance": (float, 0.0, MAX_GUIDANCE, "detail guidance"),
}


@dataclass(frozen=True)
class ImportedSettings:
    """The studio's controls as another image's settings set them; None: that control is left as it is.

    prior_* are Stage C (composition), decoder_* Stage B (detail). `style`, `user_prompt` and
    `user_negative_prompt` come only from this studio's own PNGs (the prompt as typed before a style).
    """
    source: str  # the tool that made the file, e.g. "ComfyUI"
    prompt: str = ""
    negative_prompt: str = ""
    width: int | None = None
    height: int | None = None
    seed: int | None = None
    prior_steps: int | None = None
    prior_guidance: float | None = None
    decoder_steps: int | None = None
    decoder_guidance: float | None = None
    style: str | None = None
    user_prompt: str | None = None
    user_negative_prompt: str | None = None
    loras: tuple[tuple[str, float], ...] = ()  # (name, strength) as the file gives them; not checked against files
    notes: tuple[str, ...] = ()  # what was not understood or not used, for the user

    def as_settings(self) -> dict:
        """The values found, under the names a gallery item's settings use (ui/gallery.py); loras as
        [[name, strength], …], as a request's settings hold them."""
        settings = {f.name: getattr(self, f.name) for f in fields(self)
                    if f.name not in ("source", "notes", "loras") and getattr(self, f.name) is not None}
        if self.loras:
            settings["loras"] = [[name, strength] for name, strength in self.loras]
        return settings


def shorten(text: str, limit: int = MAX_NOTE_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Collector:
    """Values checked one by one; anything the studio cannot use becomes a note."""

    def __init__(self, source: str):
        self.source = source
        self.values: dict = {}
        self.notes: list[str] = []
        self.loras: dict[str, float] = {}
        self.foreign_loras = False

    def note(self, text: str) -> None:
        if len(self.notes) < MAX_NOTES:
            self.notes.append(shorten(text))

    def text(self, name: str, value) -> None:
        """prompt, negative_prompt, style, user_prompt or user_negative_prompt, as is."""
        if isinstance(value, str):
            self.values[name] = value
        elif value is not None:
            self.note(f"{name.replace('_', ' ')} is not text ({type(value).__name__}); not used")

    def foreign_prompt(self, name: str, value) -> None:
        """A prompt written for AUTOMATIC1111 / Forge: <lora:…> tags taken out as LoRAs, <hypernet:…> dropped."""
        if not isinstance(value, str):
            self.text(name, value)
            return
        tags = [match.group(0) for match in _NETWORK_TAG.finditer(value)]
        if tags:
            for match in _NETWORK_TAG.finditer(value):
                self._tag(*match.groups())
            value = _NETWORK_TAG.sub("", value)
            value = re.sub(r"[ \t]*,[ \t]*(?:,[ \t]*)+", ", ", value)  # ", , " left by a removed tag
            value = "\n".join(line.strip(" \t,") for line in value.split("\n")).strip()
            self.note(f"Taken out of the {name.replace('_', ' ')}: {', '.join(tags)}")
        self.values[name] = value

    def lora(self, name, strength, foreign: bool = True) -> None:
        """A LoRA the file used and its strength; another tool's by its file name (folders and .safetensors
        left off), this studio's (foreign=False) by the name its request gave."""
        number = _as_number(strength, float)
        if not isinstance(name, str) or not name.strip() or number is None:
            self.note(f"LoRA {shorten(repr(name), 60)} with strength {shorten(repr(strength), 20)} not understood")
            return
        name = name.strip()
        if foreign:
            self.foreign_loras = True
            name = name.replace("\\", "/").rsplit("/", 1)[-1]
            name = name[: -len(".safetensors")] if name.endswith(".safetensors") else name
        if name in self.loras or len(self.loras) < MAX_LORAS:
            self.loras[name] = self.loras.get(name, 0.0) + number

    def _tag(self, kind: str, name: str, numbers: str | None) -> None:
        if kind.lower() == "hypernet":
            self.note(f"Hypernetwork {name} not used (the studio has none)")
            return
        self.lora(name, (numbers or "1").split(":")[0])

    def number(self, name: str, value) -> bool:
        """Keep `value` (a number, or its text) as `name` if it is one the control accepts."""
        kind, low, high, label = _FIELDS[name]
        number = _as_number(value, kind)
        if number is None:
            self.note(f"{label} {shorten(repr(value), 40)} is not a {'whole ' if kind is int else ''}number; not used")
            return False
        if not low <= number <= high:
            self.note(f"{label} {_plain(number)} is outside the studio's {_plain(low)}–{_plain(high)}; not used")
            return False
        self.values[name] = number
        return True

    def result(self) -> ImportedSettings:
        if self.foreign_loras:
            self.note("LoRAs of the file: " + ", ".join(f"{n} ({s:g})" for n, s in self.loras.items())
                      + "; each needs a Stable Cascade LoRA file of that name in the studio's LoRA folder")
        return ImportedSettings(self.source, **self.values, loras=tuple(self.loras.items()), notes=tuple(self.notes))


def _as_number(value, kind: type) -> int | float | None:
    if isinstance(value, str):
        try:
            value = float(value.strip()) if kind is float or "." in value or "e" in value.lower() else int(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    if kind is int:
        return int(value) if value == int(value) else None
    return float(value)


def _plain(number) -> str:
    return str(number) if isinstance(number, int) else f"{number:g}"
