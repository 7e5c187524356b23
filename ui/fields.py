"""Number fields and sliders that hand the engine exactly what was typed.

Gradio's own `Number` and `Slider` check their range and round to their precision before a
handler runs, with messages of their own ("Value -5 is less than minimum value 0."). The
studio's fields skip that: `GenerationRequest.validated()` checks every value once and says
what to change, on the page and over the API alike. They render as Gradio's number field and
slider.
"""
from __future__ import annotations

import gradio as gr


class EngineNumber(gr.Number):
    """A number field whose value reaches the handler as typed (a float, or None when empty)."""

    def get_block_name(self) -> str:
        return "number"

    def preprocess(self, payload):
        return payload


class EngineSlider(gr.Slider):
    """A slider whose value reaches the handler as typed; its range only guides the handle."""

    def get_block_name(self) -> str:
        return "slider"

    def preprocess(self, payload):
        return payload


# A request field → the elem_id of the page control that sets it: a refused request marks that control.
FIELD_CONTROLS = {
    "prompt": "prompt", "negative_prompt": "negative", "width": "width", "height": "height", "seed": "seed",
    "prior_steps": "prior-steps", "prior_guidance": "prior-guidance", "decoder_steps": "decoder-steps",
    "decoder_guidance": "decoder-guidance", "num_images": "num-images", "strength": "strength", "margin": "margin",
    "control_scale": "control-scale", "mask": "mask-editor", "picture": "picture", "init_image": "picture",
    "image_prompt": "picture", "control_image": "picture", "mode": "image-mode", "explore_count": "explore-count",
}
