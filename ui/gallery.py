"""The per-tab gallery (plain dicts, newest first) and the settings diff of the compare view."""
from __future__ import annotations

from pathlib import Path

MAX_COMPARE = 4
# Shown first in the settings and compare tables; other keys follow alphabetically.
KEY_ORDER = ("prompt", "negative_prompt", "seed", "width", "height", "prior_steps", "prior_guidance",
             "decoder_steps", "decoder_guidance", "mode", "strength", "control", "control_scale", "margin",
             "image_size", "init_image", "image_prompt", "control_image", "mask", "style", "user_prompt", "model",
             "variant", "seconds")


def caption(settings: dict) -> str:
    """seed · size · mode (of a picture's image) · time, the gallery caption of one image."""
    text = f"seed {settings.get('seed', '?')} · {settings.get('width', '?')}×{settings.get('height', '?')}"
    if settings.get("mode") not in (None, "text"):
        text += f" · {settings['mode']}"
    if isinstance(settings.get("seconds"), (int, float)):
        text += f" · {settings['seconds']:.1f} s"
    return text


def make_item(path: str | Path, settings: dict) -> dict:
    return {"path": str(path), "settings": dict(settings), "caption": caption(settings)}


def add_items(items: list[dict], new: list[dict]) -> list[dict]:
    """New images go first, in their batch order; nothing is dropped."""
    return list(new) + list(items)


def gallery_value(items: list[dict]) -> list[tuple[str, str]]:
    return [(item["path"], item["caption"]) for item in items]


def ordered_keys(settings_list: list[dict]) -> list[str]:
    keys = {key for settings in settings_list for key in settings}
    return [k for k in KEY_ORDER if k in keys] + sorted(keys - set(KEY_ORDER))


def settings_rows(settings: dict) -> list[list[str]]:
    """[setting, value] rows of one image, for a table."""
    return [[key, _text(settings[key])] for key in ordered_keys([settings])]


def diff_rows(settings_list: list[dict]) -> tuple[list[list[str]], list[bool]]:
    """Rows [setting, value of image 1, …] and, per row, whether the values differ."""
    rows, differs = [], []
    for key in ordered_keys(settings_list):
        values = [settings.get(key) for settings in settings_list]
        rows.append([key] + [_text(v) for v in values])
        differs.append(any(v != values[0] for v in values[1:]))
    return rows, differs


def toggle_compare(chosen: list[str], key: str) -> list[str]:
    """Add or remove an image (by path); the oldest choice makes room beyond MAX_COMPARE."""
    if key in chosen:
        return [k for k in chosen if k != key]
    return (list(chosen) + [key])[-MAX_COMPARE:]


def _text(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
