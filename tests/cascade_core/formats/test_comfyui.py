"""ComfyUI's single-file checkpoints: every part loads onto ours; the tokenizer comes from the folder or the hub."""
import shutil

import pytest
import torch

import cascade_core as cc
from cascade_core import hub
from tests.cascade_core.formats.helpers import case_errors, comfy_stage_b, comfy_stage_c, same_weights
from tests.conftest import TINY_CASCADE


def comfy_folder(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    comfy_stage_c(folder / "stable_cascade_stage_c.safetensors")
    comfy_stage_b(folder / "stable_cascade_stage_b.safetensors")
    return folder


def test_both_checkpoints_make_the_reference_model(tmp_path, tiny_model, support_hub):
    lines = []
    model = cc.load(comfy_folder(tmp_path), device="cpu", dtype="float32", progress=lines.append)
    assert same_weights(model, tiny_model, ("stage_c", "stage_b", "stage_a", "previewer"))
    ours, ref = model.text_encoder.model.state_dict(), tiny_model.text_encoder.model.state_dict()
    assert all(torch.equal(ours[k], ref[k]) for k in ref)  # text_projection transposed back
    assert max(case_errors(model).values()) <= 1e-4
    fetched = support_hub.downloads()
    assert "text_encoder/config.json" in fetched and "tokenizer/vocab.json" in fetched
    assert "previewer.safetensors" not in fetched  # the Stage C checkpoint holds one
    assert any("loaded text_encoder from stable_cascade_stage_c.safetensors" in line for line in lines)


def test_the_tokenizer_beside_the_files_needs_no_hub(tmp_path, tiny_model, offline):
    folder = comfy_folder(tmp_path)
    shutil.copytree(TINY_CASCADE / "tokenizer", folder / "tokenizer")
    (folder / "text_encoder").mkdir()
    shutil.copyfile(TINY_CASCADE / "text_encoder" / "config.json", folder / "text_encoder" / "config.json")
    model = cc.load(folder, device="cpu", dtype="float32")
    assert model.text_encoder("a fox").clip_text.shape == (1, 77, 32)


def test_without_tokenizer_nor_hub_the_error_says_what_to_add(tmp_path, offline):
    with pytest.raises(cc.ModelLoadError, match=r"stable_cascade_stage_c.safetensors holds the CLIP text encoder's "
                       r"weights but not its tokenizer.*tokenizer/ folder and text_encoder/config\.json of "
                       + hub.REPO):
        cc.load(comfy_folder(tmp_path), device="cpu", dtype="float32")


def test_model_can_name_one_checkpoint_and_its_folder_supplies_the_rest(tmp_path, tiny_model, support_hub):
    folder = comfy_folder(tmp_path)
    model = cc.load(folder / "stable_cascade_stage_b.safetensors", device="cpu", dtype="float32")
    assert model.name == "stable_cascade_stage_b" and same_weights(model, tiny_model)
    assert [item.file for item in model.load_report] == ["stable_cascade_stage_c.safetensors",
                                                         "stable_cascade_stage_b.safetensors",
                                                         "stable_cascade_stage_b.safetensors",
                                                         "stable_cascade_stage_c.safetensors",
                                                         "stable_cascade_stage_b.safetensors"]
