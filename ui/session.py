"""The session's memory: the controls survive a reload (kept in the browser), and a PNG dropped on
the page sets them from its settings (this studio's, AUTOMATIC1111's or ComfyUI's)."""
from __future__ import annotations

import html

import gradio as gr

from . import loras
from .generation import Services
from .markdown import md_escape
from .png_settings import PngSettingsError, describe, read_png_settings
from .presets import CUSTOM_SIZE, Presets

# The remembered controls, in the order ui/layout.py lists them (`memory`).
REMEMBERED = ("prompt", "negative_prompt", "style", "quality", "aspect", "width", "height", "seed", "randomize",
              "num_images", "prior_steps", "prior_guidance", "decoder_steps", "decoder_guidance", "explore_count")
_TEXT = {"prompt", "negative_prompt"}
MAX_REMEMBERED_CHARS = 10_000  # the engine's prompt limit: longer text is not written to the browser


class Session:
    def __init__(self, services: Services, presets: Presets):
        self.services, self.presets = services, presets

    def remember_controls(self, *values) -> dict:
        """What the browser keeps of the controls (any change writes it)."""
        kept = {}
        for name, value in zip(REMEMBERED, values):
            if isinstance(value, str) and len(value) > MAX_REMEMBERED_CHARS:
                continue
            if isinstance(value, (str, int, float, bool)) or value is None:
                kept[name] = value
        return kept

    def restore_controls(self, saved) -> tuple:
        """On page load: the remembered controls back; a value of the wrong kind or a preset that no longer
        exists is skipped (the control keeps its default)."""
        saved = saved if isinstance(saved, dict) else {}
        choices = {"style": self.presets.styles, "quality": self.presets.quality,
                   "aspect": [*self.presets.sizes, CUSTOM_SIZE]}
        out = []
        for name in REMEMBERED:
            value = saved.get(name)
            if name in choices:
                ok = isinstance(value, str) and value in choices[name]
            elif name in _TEXT:
                ok = isinstance(value, str)
            elif name == "randomize":
                ok = isinstance(value, bool)
            else:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            out.append(value if ok else gr.skip())
        return tuple(out)

    def read_png(self, path) -> tuple:
        """A PNG dropped on the page: its prompt, settings and LoRAs into the controls, what was read in the status
        line; the drop zone is emptied again."""
        skip = [gr.skip()] * (len(REMEMBERED) + 2 * loras.SLOTS)
        if not path:
            return (*skip, gr.skip(), gr.skip())
        try:
            found = read_png_settings(path)
        except PngSettingsError as e:
            gr.Warning(html.escape(str(e)))
            return (*skip, f"**Settings not read:** {md_escape(str(e))}", None)
        values = found.as_settings()
        # A style of ours: the prompt as typed goes back under it; any other prompt is the whole prompt.
        values["style"] = found.style if found.style in self.presets.styles else "None"
        if values["style"] != "None":
            values["prompt"] = found.user_prompt or ""
            values["negative_prompt"] = found.user_negative_prompt or ""
        if "width" in values and "height" in values:
            size = (values["width"], values["height"])
            values["aspect"] = next((n for n, s in self.presets.sizes.items() if s == size), CUSTOM_SIZE)
        if "seed" in values:
            values["randomize"] = False
        out = [values.get(name, gr.skip()) for name in REMEMBERED]
        return (*out, *loras.slot_values(values.get("loras")), describe(found), None)  # Markdown, its values escaped
