"""The tiny reference cascade rewritten in other tools' layouts, and a reference pipeline case to run.

The ComfyUI names are made here as ComfyUI makes them (comfy/supported_models.py Stable_Cascade_C:
`in_proj_*` chunked into to_q/to_k/to_v; its checkpoints prefix the parts with `model.diffusion_model.`,
`vae.`, `text_encoder.clip_g.`, the projection stored (in, out) as `clip_g.text_projection`).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

import cascade_core as cc
from tests.conftest import REFERENCE, TINY_CASCADE, relative_error

CASE = {"prompt": "a photograph of a red fox in the snow", "negative_prompt": "", "seed": 42, "width": 384,
        "height": 256, "prior_steps": 10, "prior_guidance": 4.0, "decoder_steps": 6, "decoder_guidance": 1.1}


def tiny(stage: str) -> dict[str, torch.Tensor]:
    return load_file(TINY_CASCADE / f"{stage}.safetensors")


def comfy_split(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Released names → ComfyUI's: each packed in_proj chunked into to_q, to_k, to_v."""
    out = {}
    for name, tensor in state.items():
        if name.endswith(("in_proj_weight", "in_proj_bias")):
            kind = name.rsplit("_", 1)[1]
            for part, chunk in zip(("to_q", "to_k", "to_v"), tensor.chunk(3, 0)):
                out[f"{name.rsplit('.', 1)[0]}.{part}.{kind}"] = chunk.contiguous()
        else:
            out[name] = tensor
    return out


def comfy_text() -> dict[str, torch.Tensor]:
    """The tiny CLIP text model as ComfyUI's checkpoints hold it."""
    out = {}
    for name, tensor in load_file(TINY_CASCADE / "text_encoder" / "model.safetensors").items():
        if name == "text_projection.weight":
            out["text_encoder.clip_g.text_projection"] = tensor.t().contiguous()
        else:
            out[f"text_encoder.clip_g.transformer.{name}"] = tensor
    out["text_encoder.clip_g.logit_scale"] = torch.tensor(4.6)
    return out


def prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {prefix + name: tensor for name, tensor in state.items()}


def comfy_stage_c(path: Path) -> Path:
    """Like comfyui_checkpoints/stable_cascade_stage_c.safetensors: Stage C, CLIP text, previewer and EfficientNet."""
    effnet = load_file(REFERENCE / "extras" / "effnet" / "effnet_encoder.safetensors")
    state = {**prefixed("model.diffusion_model.", comfy_split(tiny("stage_c"))), **comfy_text(),
             **prefixed("vae.previewer.", tiny("previewer")), **prefixed("vae.encoder.", effnet),
             "vae.encoder.mean": torch.tensor([0.485, 0.456, 0.406]), "vae.encoder.std": torch.tensor([0.229, 0.224, 0.225])}
    save_file(state, str(path))
    return path


def comfy_stage_b(path: Path) -> Path:
    """Like comfyui_checkpoints/stable_cascade_stage_b.safetensors: Stage B, Stage A as its "vae", CLIP text."""
    state = {**prefixed("model.diffusion_model.", comfy_split(tiny("stage_b"))), **prefixed("vae.", tiny("stage_a")),
             **comfy_text()}
    save_file(state, str(path))
    return path


def support_files() -> dict[str, bytes]:
    """What a hub repository serves for a bundle's text encoder: tokenizer/ and text_encoder/config.json."""
    files = {f"tokenizer/{p.name}": p.read_bytes() for p in (TINY_CASCADE / "tokenizer").iterdir()}
    files["text_encoder/config.json"] = (TINY_CASCADE / "text_encoder" / "config.json").read_bytes()
    files["previewer.safetensors"] = (TINY_CASCADE / "previewer.safetensors").read_bytes()
    return files


def copy_text(folder: Path) -> None:
    for sub in ("text_encoder", "tokenizer"):
        shutil.copytree(TINY_CASCADE / sub, folder / sub, copy_function=shutil.copyfile)


def case_errors(model: cc.CascadeModel) -> dict[str, float]:
    """Relative errors against the reference pipeline's case 0 (pipeline/case0.safetensors)."""
    ref = load_file(REFERENCE / "pipeline" / "case0.safetensors")
    events = list(cc.generate(model, cc.GenerationRequest(**CASE), keep_tensors=True))
    done = events[-1]
    return {name: relative_error(done.tensors[name], ref[name]) for name in ("latent_c", "preview", "latent_b", "image")}


def same_weights(model: cc.CascadeModel, reference: cc.CascadeModel, stages=("stage_c", "stage_b", "stage_a")) -> bool:
    for stage in stages:
        ours, ref = getattr(model, stage).state_dict(), getattr(reference, stage).state_dict()
        if ours.keys() != ref.keys() or not all(torch.equal(ours[k], ref[k]) for k in ref):
            return False
    return True
