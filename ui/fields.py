"""Which page control sets which request field: a refused request marks that control.

The page's number fields (size, seed) have no range or precision of their own, so Gradio hands
the engine exactly what was typed and `GenerationRequest.validated()` answers ("width: 5000 px
is outside 256–2048 px", "seed: must be a whole number, got 1.5"); its sliders span the engine's
own ranges. The API's inputs are unbounded number fields too (ui/layout.py).
"""
from __future__ import annotations

# A request field → the elem_id of the page control that sets it.
FIELD_CONTROLS = {
    "prompt": "prompt", "negative_prompt": "negative", "width": "width", "height": "height", "seed": "seed",
    "prior_steps": "prior-steps", "prior_guidance": "prior-guidance", "decoder_steps": "decoder-steps",
    "decoder_guidance": "decoder-guidance", "num_images": "num-images", "strength": "strength", "margin": "margin",
    "control_scale": "control-scale", "mask": "mask-editor", "picture": "picture", "init_image": "picture",
    "image_prompt": "picture", "control_image": "picture", "mode": "image-mode", "explore_count": "explore-count",
    "loras": "lora-panel",
}
