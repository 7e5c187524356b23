"""The per-tab gallery (plain dicts, newest first) and the settings diff of the compare view."""
from __future__ import annotations

from pathlib import Path

MAX_COMPARE = 4
MAX_CAPTION_CHARS = 44  # about 40, one short line under a thumbnail
# Shown first in the settings and compare tables; other keys follow alphabetically.
KEY_ORDER = ("prompt", "negative_prompt", "seed", "width", "height", "prior_steps", "prior_guidance",
             "decoder_steps", "decoder_guidance", "mode", "strength", "control", "control_scale", "margin",
             "image_size", "init_image", "image_prompt", "control_image", "mask", "style", "user_prompt", "model",
             "variant", "seconds")


def caption(settings: dict) -> str:
    """The gallery caption of one image: seed · size · mode (of a picture's image) · time · steps.

    E.g. "seed 42 · 1024×1024 · 12.3 s · 20+10 steps" (Stage C + Stage B steps; "seconds" is the
    run's time, for the whole batch). Past MAX_CAPTION_CHARS the steps drop their word, as the long
    seeds of random runs need: "seed 3141592653 · 1024×1024 · 12.3 s · 20+10".
    """
    parts = [f"seed {settings.get('seed', '?')}", f"{settings.get('width', '?')}×{settings.get('height', '?')}"]
    if settings.get("mode") not in (None, "text"):
        parts.append(str(settings["mode"]))
    if _is_number(settings.get("seconds")):
        parts.append(f"{settings['seconds']:.1f} s")
    text = " · ".join(parts)
    steps = settings.get("prior_steps"), settings.get("decoder_steps")
    if all(_is_number(s) for s in steps):
        short = f"{text} · {steps[0]}+{steps[1]}"
        return short + " steps" if len(short) + len(" steps") <= MAX_CAPTION_CHARS else short
    return text


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def make_item(path: str | Path, settings: dict) -> dict:
    return {"path": str(path), "settings": dict(settings), "caption": caption(settings)}


def add_items(items: list[dict], new: list[dict]) -> list[dict]:
    """New images go first, in their batch order; nothing is dropped."""
    return list(new) + list(items)


def remove_item(items: list[dict], path: str) -> list[dict]:
    """The gallery without the image at `path` (this tab's list only; the file stays, see ui/outputs.delete_saved)."""
    return [item for item in items if item["path"] != str(path)]


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
