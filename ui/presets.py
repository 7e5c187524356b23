"""Quality, size and style presets read from JSON files in presets/, checked on load."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"
CUSTOM_SIZE = "Custom"  # the page's aspect choice once width or height is moved by hand
QUALITY_KEYS = {"prior_steps": int, "prior_guidance": float, "decoder_steps": int, "decoder_guidance": float}


class PresetError(ValueError):
    """A preset file is missing or malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class Presets:
    quality: dict[str, dict]  # name -> {prior_steps, prior_guidance, decoder_steps, decoder_guidance}
    sizes: dict[str, tuple[int, int]]  # name -> (width, height)
    styles: dict[str, dict]  # name -> {prompt: template with {prompt}, negative_prompt}


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PresetError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise PresetError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    if not isinstance(data, dict) or not data:
        raise PresetError(f"{path}: expected a non-empty JSON object of named presets")
    return data


def _number(path: Path, name: str, key: str, value, kind: type, low: float, high: float):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
        whole = "whole " if kind is int else ""
        raise PresetError(f"{path}: preset {name!r}: {key} must be a {whole}number, got {value!r}")
    if not low <= value <= high:
        raise PresetError(f"{path}: preset {name!r}: {key} = {value} is outside {low}–{high}")
    return kind(value)


def _entry(path: Path, name: str, entry, keys) -> dict:
    """The preset as a dict whose keys are `keys` or "description" (a note for editors)."""
    if not isinstance(entry, dict):
        raise PresetError(f"{path}: preset {name!r} must be a JSON object")
    unknown = set(entry) - set(keys) - {"description"}
    if unknown:
        raise PresetError(f"{path}: preset {name!r}: unknown key(s) {', '.join(sorted(unknown))}; "
                          f"allowed: {', '.join(keys)}, description")
    return entry


def load_quality(path: Path) -> dict[str, dict]:
    """name -> steps and guidance of both stages; other keys ("description") are notes for editors."""
    presets = {}
    for name, entry in _read(path).items():
        entry = _entry(path, name, entry, QUALITY_KEYS)
        missing = set(QUALITY_KEYS) - set(entry)
        if missing:
            raise PresetError(f"{path}: preset {name!r} lacks {', '.join(sorted(missing))}")
        values = {}
        for key, kind in QUALITY_KEYS.items():
            high = 200 if kind is int else 30.0
            values[key] = _number(path, name, key, entry[key], kind, 1 if kind is int else 0, high)
        presets[name] = values
    return presets


def load_sizes(path: Path) -> dict[str, tuple[int, int]]:
    sizes = {}
    for name, entry in _read(path).items():
        entry = _entry(path, name, entry, ("width", "height"))
        if name == CUSTOM_SIZE:
            raise PresetError(f"{path}: {CUSTOM_SIZE!r} is the page's name for a size set by hand; rename the preset")
        width, height = (_number(path, name, key, entry.get(key), int, 256, 2048) for key in ("width", "height"))
        if width % 8 or height % 8:
            raise PresetError(f"{path}: preset {name!r}: {width}×{height} must be multiples of 8")
        sizes[name] = (width, height)
    return sizes


def load_styles(path: Path) -> dict[str, dict]:
    styles = {}
    for name, entry in _read(path).items():
        entry = _entry(path, name, entry, ("prompt", "negative_prompt"))
        template, negative = entry.get("prompt"), entry.get("negative_prompt", "")
        if not isinstance(template, str) or template.count("{prompt}") != 1:
            raise PresetError(f"{path}: style {name!r}: 'prompt' must be text containing {{prompt}} exactly once")
        if not isinstance(negative, str):
            raise PresetError(f"{path}: style {name!r}: 'negative_prompt' must be text")
        styles[name] = {"prompt": template, "negative_prompt": negative}
    return styles


def load_presets(folder: Path = PRESETS_DIR) -> Presets:
    """All three preset files; raises PresetError with the file and entry at fault."""
    folder = Path(folder)
    presets = Presets(load_quality(folder / "quality.json"), load_sizes(folder / "sizes.json"),
                      load_styles(folder / "styles.json"))
    if "balanced" not in presets.quality:
        raise PresetError(f"{folder / 'quality.json'}: the default preset 'balanced' is missing")
    return presets


def apply_style(style: dict | None, prompt: str, negative_prompt: str) -> tuple[str, str]:
    """The prompt and negative prompt after a style template; plain replacement, no format()."""
    if not style:
        return prompt, negative_prompt
    styled = style["prompt"].replace("{prompt}", prompt)
    negative = ", ".join(part for part in (negative_prompt.strip(), style["negative_prompt"]) if part)
    return styled, negative
