"""What a safetensors file holds, told from its tensor names alone (the header; no weights are read).

A file is one network (released names, ComfyUI's or diffusers' names, with or without the
`model.diffusion_model.` prefix of redistributed copies) or a ComfyUI bundle of several parts under
the prefixes of `comfyui.BUNDLE_PREFIXES`. Each part is told by names that only that network holds.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import comfyui, unet
from .plan import Header, read_header

# part → tensor names that only that network holds (all of them must be present)
MARKERS = {
    "stage_c": (unet.MARKERS["stage_c"],),
    "stage_b": (unet.MARKERS["stage_b"],),
    "stage_a": ("vquantizer.codebook.weight",),
    "stage_a_diffusers": ("vquantizer.embedding.weight",),  # diffusers' PaellaVQModel
    "previewer": ("blocks.0.weight", "blocks.2.running_mean"),
    "controlnet": ("projections.0.0.weight", "backbone.0.0.weight"),
    "effnet_encoder": ("mapper.0.weight", "backbone.0.0.weight"),
    "text_encoder": ("text_model.embeddings.token_embedding.weight",),
    "image_encoder": ("vision_model.embeddings.patch_embedding.weight",),
}
LABELS = {
    "stage_c": "Stage C", "stage_b": "Stage B", "stage_a": "Stage A", "previewer": "the previewer",
    "text_encoder": "the CLIP text encoder", "effnet_encoder": "the EfficientNet encoder",
    "image_encoder": "CLIP's vision model", "controlnet": "a ControlNet",
}
# What the text-to-image pipeline loads from a file; the other parts are reported, not used.
PIPELINE_PARTS = ("stage_c", "stage_b", "stage_a", "previewer", "text_encoder")


@dataclass(frozen=True)
class Contents:
    path: Path
    parts: dict[str, Header]  # part → its tensors under the part's own names
    kind: str  # "" (one network), "model.diffusion_model. prefix" or "ComfyUI checkpoint"
    unknown: int = 0  # tensors of no known part

    def describe(self) -> str:
        held = ", ".join(LABELS[part] for part in self.parts) or "no Stable Cascade network"
        return f"{self.kind or 'single network'}: {held}"


def part_of(header: Header) -> str | None:
    """The one network a header holds, by its marker names; None when it is none of them."""
    names = set(header) | set(comfyui.text_names(header))
    for part, markers in MARKERS.items():
        if all(marker in names for marker in markers):
            return part.removesuffix("_diffusers")
    return None


def contents(path: Path) -> Contents:
    """The parts of a file; raises ModelLoadError when it is not a readable safetensors file."""
    groups = comfyui.group(read_header(path))
    parts: dict[str, Header] = {}
    unknown = 0
    for group, header in groups.items():
        if group == "text":
            found = {"text_encoder": header}
        elif group == "image_encoder":
            found = {"image_encoder": header}
        elif group == "vae":
            found = comfyui.split_vae(header) or _one(header)
        else:  # the denoiser, or names without a bundle prefix
            found = _one(header)
        unknown += sum(len(h) for p, h in found.items() if p is None)
        parts.update({p: h for p, h in found.items() if p is not None})
    prefixed = [g for g in groups if g]
    if not prefixed:
        kind = ""
    elif prefixed == ["denoiser"] and "" not in groups:
        kind = "model.diffusion_model. prefix"
    else:
        kind = "ComfyUI checkpoint"
    return Contents(path, parts, kind, unknown)


def _one(header: Header) -> dict[str | None, Header]:
    return {part_of(header): header} if header else {}
