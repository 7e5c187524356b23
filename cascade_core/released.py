"""The file names of the released model (`stabilityai/stable-cascade`), in one table.

Hub downloads (`hub`), folder loading (`loading`) and `check` read it.
"""
from __future__ import annotations

# network → size → weights → file. Stage A and the previewer come in one size and one file.
RELEASED_FILES = {
    "stage_c": {"full": {"bf16": "stage_c_bf16.safetensors", "fp32": "stage_c.safetensors"},
                "lite": {"bf16": "stage_c_lite_bf16.safetensors", "fp32": "stage_c_lite.safetensors"}},
    "stage_b": {"full": {"bf16": "stage_b_bf16.safetensors", "fp32": "stage_b.safetensors"},
                "lite": {"bf16": "stage_b_lite_bf16.safetensors", "fp32": "stage_b_lite.safetensors"}},
    "stage_a": {"full": {"bf16": "stage_a.safetensors", "fp32": "stage_a.safetensors"}},
    "previewer": {"full": {"bf16": "previewer.safetensors", "fp32": "previewer.safetensors"}},
}
TEXT_ENCODER_DIR, TOKENIZER_DIR = "text_encoder", "tokenizer"
TEXT_ENCODER_FILES = {"bf16": "model.bf16.safetensors", "fp32": "model.safetensors"}  # in text_encoder/


def released_names(stage: str, size: str, prefer: str = "bf16") -> tuple[str, ...]:
    """The files of one network size, the `prefer`red weights first, without repeats."""
    files = RELEASED_FILES[stage][size]
    return tuple(dict.fromkeys([files[prefer], *files.values()]))


def all_names(stage: str) -> tuple[str, ...]:
    """Every released file name of a network, of any size and weights."""
    return tuple(dict.fromkeys(name for size in RELEASED_FILES[stage].values() for name in size.values()))

# The networks only some modes need (cascade_core/extras.py): → (repository, path in it).
PRIOR_REPO = "stabilityai/stable-cascade-prior"
EXTRA_FILES = {
    "effnet_encoder": ("stabilityai/stable-cascade", "effnet_encoder.safetensors"),
    "controlnet_canny": ("stabilityai/stable-cascade", "controlnet/canny.safetensors"),
    "controlnet_inpainting": ("stabilityai/stable-cascade", "controlnet/inpainting.safetensors"),
    "controlnet_super_resolution": ("stabilityai/stable-cascade", "controlnet/super_resolution.safetensors"),
    "image_encoder": (PRIOR_REPO, "image_encoder"),  # a transformers folder: CLIP ViT-L/14 vision with projection
}
IMAGE_ENCODER_FILES = ("config.json", "model.safetensors")
