"""The studio's words for the engine's settings: what a designer reads instead of field names.

Stage C lays out the picture on a small grid ("composition"); Stage B paints it at full size
("details"); Stage A only turns that into pixels. The engine's field names stay in the PNG
metadata and the API; the page shows these.
"""
from __future__ import annotations

from cascade_core.prompt_windows import PROMPT_TOKENS
from cascade_core.request import PROMPT_WINDOWS

LABELS = {
    "prompt": "Prompt", "size": "Size", "negative_prompt": "Negative prompt", "seed": "Seed", "width": "Width", "height": "Height",
    "num_images": "Images", "prior_steps": "Composition steps", "prior_guidance": "Composition guidance",
    "decoder_steps": "Detail steps", "decoder_guidance": "Detail guidance", "mode": "Mode", "strength": "Strength",
    "control": "Control", "control_scale": "Control strength", "margin": "Margin", "image_size": "Picture size",
    "init_image": "Remixed picture", "image_prompt": "Image prompt", "control_image": "Control picture",
    "mask": "Mask", "style": "Style", "model": "Model", "variant": "Model size", "seconds": "Time", "loras": "LoRAs",
    "prompt_windows": "Prompt length", "prompt_weighting": "Prompt weighting",
}
HELP = {
    "prior_steps": "Lays out the picture on a small grid: cheap. More steps settle the composition.",
    "prior_guidance": "How closely the composition follows the prompt.",
    "decoder_steps": "Paints the details at full size: the slow part. A few steps are enough.",
    "decoder_guidance": "How closely the details follow the prompt (1.1 is the official value).",
}
STAGES = {"stage_c": "Composition", "stage_b": "Details", "inputs": "Picture"}
# Written into every PNG, but the same for every image of a model: not worth a designer's eye.
HIDDEN = frozenset({"user_prompt", "user_negative_prompt", "version", "sampler", "prior_shift", "decoder_shift",
                    "stage_c_only"})
SUMMARY_ORDER = ("prompt", "negative_prompt", "style", "mode", "seed", "size", "prior_steps", "prior_guidance",
                 "decoder_steps", "decoder_guidance", "strength", "control_scale", "margin", "loras", "model",
                 "seconds")


def label(key: str) -> str:
    return LABELS.get(key, key.replace("_", " ").capitalize())


def value_text(key: str, value) -> str:
    """A setting's value as a designer reads it."""
    if value is None or value == "":
        return "—"
    if key == "seconds" and isinstance(value, (int, float)):
        return f"{value:.1f} s"
    if key == "loras" and isinstance(value, (list, tuple)):
        return ", ".join(f"{pair[0]} {pair[1]:g}" if isinstance(pair, (list, tuple)) and len(pair) == 2
                         and isinstance(pair[1], (int, float)) else str(pair) for pair in value)
    if key == "prompt_windows" and isinstance(value, int):
        return "the official 77 tokens" if value == 1 else f"up to {PROMPT_TOKENS * value} tokens"
    if key == "prompt_weighting" and isinstance(value, bool):
        return "(word:1.3) read as weights" if value else "brackets are plain text"
    if isinstance(value, str) and value.startswith("sha256:"):
        return "a picture"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(value_text(key, v) for v in value) or "—"
    return str(value)


def shown_settings(settings: dict) -> dict:
    """The settings a designer cares about, as typed (a style's template not spelled out)."""
    shown = {k: v for k, v in settings.items() if k not in HIDDEN and v not in (None, "", [], ())}
    if settings.get("style") not in (None, "None") and "user_prompt" in settings:
        shown["prompt"] = settings["user_prompt"]
        shown["negative_prompt"] = settings.get("user_negative_prompt", "")
    if shown.get("mode") == "text":
        del shown["mode"]
    if shown.get("style") == "None":
        del shown["style"]
    for key, usual in (("prompt_windows", PROMPT_WINDOWS), ("prompt_weighting", True)):
        if shown.get(key) == usual:
            del shown[key]  # the studio's default: nothing to say
    for key in ("strength", "control", "control_scale", "margin", "image_size", "init_image", "image_prompt",
                "control_image", "mask"):
        if key in shown and "mode" not in shown:
            del shown[key]  # text to image: the picture fields hold their defaults
    if "width" in shown and "height" in shown:
        shown["size"] = f"{shown.pop('width')}×{shown.pop('height')}"
    return shown


def ordered(keys) -> list[str]:
    keys = set(keys)
    return [k for k in SUMMARY_ORDER if k in keys] + sorted(keys - set(SUMMARY_ORDER))

