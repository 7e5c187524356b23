"""Stage C / B names of ComfyUI and diffusers → the released names."""
import pytest
import torch
from safetensors.torch import save_file

import cascade_core as cc
from cascade_core.formats import networks, unet
from cascade_core.formats.plan import layout, load_plan, read_header
from tests.cascade_core.formats.helpers import comfy_split, tiny


def diffusers_names(state: dict, stage: str) -> dict:
    """The names diffusers' scripts/convert_stable_cascade.py gives (attention split, to_out.0, Stage B's mapper)."""
    out = {}
    for name, tensor in comfy_split(state).items():
        name = name.replace("attention.attn.to_", "attention.to_").replace("attention.attn.out_proj.", "attention.to_out.0.")
        if stage == "stage_b":
            name = name.replace("clip_mapper.", "clip_txt_pooled_mapper.")
        out[name] = tensor
    return out


@pytest.mark.parametrize("stage", ["stage_c", "stage_b"])
@pytest.mark.parametrize("rename, label", [(lambda s, stage: comfy_split(s), "ComfyUI names"),
                                           (diffusers_names, "diffusers names"),
                                           (lambda s, stage: s, "released names")])
def test_every_naming_maps_to_the_released_tensors(tmp_path, stage, rename, label):
    released = tiny(stage)
    save_file(rename(released, stage), str(tmp_path / "net.safetensors"))
    header = read_header(tmp_path / "net.safetensors")
    assert unet.stage_of(header) == stage and unet.naming(header) == label
    plan = unet.plan(stage, header)
    assert layout(plan) == {k: tuple(v.shape) for k, v in released.items()}
    state = load_plan(plan, torch.device("cpu"), torch.float32)
    assert all(torch.equal(state[k], released[k]) for k in released)


def test_an_incomplete_split_is_reported_not_guessed(tmp_path):
    state = comfy_split(tiny("stage_c"))
    dropped = next(k for k in state if k.endswith("attn.to_v.weight"))
    del state[dropped]
    save_file(state, str(tmp_path / "stage_c.safetensors"))
    with pytest.raises(cc.ModelLoadError, match=r"missing: .*attn\.in_proj_weight.*unexpected: .*to_q\.weight"):
        networks.by_shapes("stage_c", read_header(tmp_path / "stage_c.safetensors"), tmp_path / "stage_c.safetensors")
