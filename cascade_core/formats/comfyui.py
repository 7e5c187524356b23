"""ComfyUI's single-file checkpoints: which prefix holds which part, and its names of the CLIP text model.

ComfyUI's checkpoint loader (`comfy/sd.py` load_checkpoint_guess_config, with
`comfy/supported_models.py` Stable_Cascade_C / Stable_Cascade_B) reads a bundle such as
`comfyui_checkpoints/stable_cascade_stage_c.safetensors` as:

| prefix | part |
|---|---|
| `model.diffusion_model.` | the denoiser: Stage C or Stage B (released names, or to_q/to_k/to_v as ComfyUI saves them) |
| `vae.` | the first stage: Stage A (`vae.vquantizer.codebook.weight`…) in the Stage B file; the previewer (`vae.previewer.`) and the EfficientNet encoder (`vae.encoder.`) in the Stage C file |
| `text_encoder.` (`cond_stage_model.` as ComfyUI saves) | CLIP ViT-bigG's text model: `clip_g.transformer.text_model.*`, and `clip_g.text_projection` stored (in, out) |
| `clip_l_vision.` | CLIP ViT-L's vision model (image prompts) |

The tokenizer is not in these files (ComfyUI ships its own copy).
"""
from __future__ import annotations

from .plan import Header, Plan, Source

BUNDLE_PREFIXES = {
    "model.diffusion_model.": "denoiser",
    "vae.": "vae",
    "text_encoder.": "text",
    "cond_stage_model.": "text",
    "clip_l_vision.": "image_encoder",
}
VAE_PARTS = {"previewer.": "previewer", "encoder.": "effnet_encoder"}  # ComfyUI's StageC_coder
_TEXT_DROPPED = {"logit_scale", "text_model.embeddings.position_ids"}  # not weights of the text model


def group(header: Header) -> dict[str, Header]:
    """The header split by bundle prefix (removed from the names); "" holds the names without one."""
    groups: dict[str, Header] = {}
    for name, tensor in header.items():
        prefix = next((p for p in BUNDLE_PREFIXES if name.startswith(p)), "")
        groups.setdefault(BUNDLE_PREFIXES.get(prefix, ""), {})[name.removeprefix(prefix)] = tensor
    return groups


def split_vae(header: Header) -> dict[str, Header]:
    """ComfyUI's Stage C "vae": the previewer and the EfficientNet encoder under their own prefixes."""
    parts: dict[str, Header] = {}
    for name, tensor in header.items():
        prefix = next((p for p in VAE_PARTS if name.startswith(p)), None)
        if prefix is None:
            return {}  # not the combined coder: one network, to be told by its names
        parts.setdefault(VAE_PARTS[prefix], {})[name.removeprefix(prefix)] = tensor
    return parts


def text_names(header: Header) -> Header:
    """ComfyUI's CLIP-G names → transformers' `CLIPTextModelWithProjection` names (transposition aside)."""
    names = {}
    for name, tensor in header.items():
        short = name.removeprefix("clip_g.").removeprefix("transformer.")
        if short not in _TEXT_DROPPED:
            names[short] = tensor
    return names


def text_plan(header: Header) -> Plan:
    """transformers names → tensors; ComfyUI's raw `text_projection` (in, out) becomes the Linear weight (out, in)."""
    plan = {}
    for name, tensor in text_names(header).items():
        if name == "text_projection":
            plan["text_projection.weight"] = Source((tensor,), transpose=True)
        else:
            plan[name] = Source((tensor,))
    return plan
