"""What a file holds, from its tensor names: one network, a prefixed one, ComfyUI's bundles, or nothing known."""
import pytest
import torch
from safetensors.torch import save_file

import cascade_core as cc
from cascade_core.formats.detect import contents
from tests.cascade_core.formats.helpers import comfy_stage_b, comfy_stage_c, prefixed, tiny
from tests.conftest import REFERENCE, TINY_CASCADE


@pytest.mark.parametrize("stage", ["stage_c", "stage_b", "stage_a", "previewer"])
def test_a_single_network_with_or_without_prefix(tmp_path, stage):
    save_file(tiny(stage), str(tmp_path / "plain.safetensors"))
    save_file(prefixed("model.diffusion_model.", tiny(stage)), str(tmp_path / "prefixed.safetensors"))
    plain, with_prefix = contents(tmp_path / "plain.safetensors"), contents(tmp_path / "prefixed.safetensors")
    assert list(plain.parts) == list(with_prefix.parts) == [stage]
    assert (plain.kind, with_prefix.kind) == ("", "model.diffusion_model. prefix")
    assert plain.parts[stage].keys() == with_prefix.parts[stage].keys() == tiny(stage).keys()


def test_comfyui_bundles_are_split_into_their_parts(tmp_path):
    c = contents(comfy_stage_c(tmp_path / "stable_cascade_stage_c.safetensors"))
    assert c.kind == "ComfyUI checkpoint"
    assert set(c.parts) == {"stage_c", "text_encoder", "previewer", "effnet_encoder"}
    assert c.describe().startswith("ComfyUI checkpoint: Stage C, ")
    assert c.parts["previewer"].keys() == tiny("previewer").keys()
    b = contents(comfy_stage_b(tmp_path / "stable_cascade_stage_b.safetensors"))
    assert set(b.parts) == {"stage_b", "stage_a", "text_encoder"} and b.parts["stage_a"].keys() == tiny("stage_a").keys()


def test_other_networks_and_unknown_files(tmp_path):
    assert list(contents(REFERENCE / "extras" / "effnet" / "effnet_encoder.safetensors").parts) == ["effnet_encoder"]
    assert list(contents(TINY_CASCADE / "text_encoder" / "model.safetensors").parts) == ["text_encoder"]
    save_file({"lora_down.weight": torch.zeros(2, 2), "lora_up.weight": torch.zeros(2, 2)}, str(tmp_path / "x.safetensors"))
    unknown = contents(tmp_path / "x.safetensors")
    assert unknown.parts == {} and unknown.unknown == 2


def test_a_truncated_file_is_named(tmp_path):
    data = (TINY_CASCADE / "stage_c.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:100])
    with pytest.raises(cc.ModelLoadError, match="cut.safetensors is not a readable safetensors file"):
        contents(tmp_path / "cut.safetensors")
