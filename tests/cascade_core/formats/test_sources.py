"""Where each part comes from: single-file fine-tunes, --stage-c/--stage-b, the previewer's fallbacks, bad input."""
import argparse
import shutil

import pytest
import torch
from safetensors.torch import save_file

import cascade_core as cc
from cascade_core.formats import sources
from cascade_core.options import EngineOptions
from tests.cascade_core.formats.helpers import comfy_split, comfy_stage_b, copy_text, prefixed, same_weights, tiny
from tests.conftest import TINY_CASCADE
from tests.fake_hub import REPO


def finetune(stage: str, scale: float = 1.0) -> dict:
    """A "fine-tune": the tiny network with every floating tensor scaled, so that it is told apart."""
    return {k: v * scale if v.is_floating_point() else v for k, v in tiny(stage).items()}


def released_folder(tmp_path, without=()):
    folder = tmp_path / "model"
    folder.mkdir()
    for stage in ("stage_c", "stage_b", "stage_a", "previewer"):
        if stage not in without:
            shutil.copyfile(TINY_CASCADE / f"{stage}.safetensors", folder / f"{stage}.safetensors")
    copy_text(folder)
    return folder


def test_a_civitai_finetune_in_the_folder_is_found_by_its_contents(tmp_path, tiny_model):
    folder = released_folder(tmp_path, without=("stage_c",))
    save_file(prefixed("model.diffusion_model.", comfy_split(finetune("stage_c", 0.5))),
              str(folder / "myCascadeMix_v2.safetensors"))
    model = cc.load(folder, device="cpu", dtype="float32")
    assert torch.equal(model.stage_c.clf[1].weight, tiny_model.stage_c.clf[1].weight * 0.5)
    assert model.load_report[0].file == "myCascadeMix_v2.safetensors"


def test_a_finetune_saved_under_a_released_name_in_comfyui_naming(tmp_path, tiny_model):
    folder = released_folder(tmp_path)
    save_file(comfy_split(finetune("stage_b", 2.0)), str(folder / "stage_b.safetensors"))
    file = sources.network(sources.Place(folder), "stage_b", "auto", torch.float32)
    assert (file.size, file.format) == ("tiny", "ComfyUI names")


def test_stage_c_and_stage_b_options_replace_the_models(tmp_path, tiny_model):
    folder = released_folder(tmp_path)
    save_file(finetune("stage_c", 0.5), str(tmp_path / "c.safetensors"))
    comfy_stage_b(tmp_path / "comfy_b.safetensors")  # a bundle: only its Stage B is taken
    model = cc.load(folder, stage_c=str(tmp_path / "c.safetensors"), stage_b=str(tmp_path / "comfy_b.safetensors"),
                    device="cpu", dtype="float32")
    assert torch.equal(model.stage_c.clf[1].weight, tiny_model.stage_c.clf[1].weight * 0.5)
    assert same_weights(model, tiny_model, ("stage_b",))
    assert [i.file for i in model.load_report][:2] == ["c.safetensors", "comfy_b.safetensors"]
    parser = argparse.ArgumentParser()
    EngineOptions.add_arguments(parser)
    options = EngineOptions.from_args(parser.parse_args(["--stage-c", "c.safetensors", "--stage-b", "b"]))
    assert (options.stage_c, options.stage_b) == ("c.safetensors", "b")


def test_a_network_of_the_wrong_kind_says_which_it_is(tmp_path):
    folder = released_folder(tmp_path)
    with pytest.raises(cc.ModelLoadError, match=r"stage_b.safetensors holds Stage B, not Stage C; pass it with "
                                                r"--stage-b"):
        cc.load(folder, stage_c=str(folder / "stage_b.safetensors"))
    shutil.copyfile(folder / "stage_a.safetensors", folder / "stage_c.safetensors")
    with pytest.raises(cc.ModelLoadError, match="stage_c.safetensors holds Stage A, not Stage C"):
        cc.load(folder)


def test_two_candidates_of_one_size_are_refused_by_name(tmp_path):
    folder = released_folder(tmp_path, without=("stage_c",))
    save_file(finetune("stage_c", 0.5), str(folder / "a.safetensors"))
    save_file(finetune("stage_c", 2.0), str(folder / "b.safetensors"))
    with pytest.raises(cc.ModelLoadError, match=r"has 2 files that hold a tiny Stage C: a.safetensors, b.safetensors; "
                                                r"pass the one to use with --stage-c FILE"):
        cc.load(folder)


def test_truncated_and_unknown_files_are_named_with_what_was_expected(tmp_path):
    folder = released_folder(tmp_path)
    data = (TINY_CASCADE / "stage_c.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(cc.ModelLoadError, match=r"cut.safetensors .*delete it and fetch it again"):
        cc.load(folder, stage_c=str(tmp_path / "cut.safetensors"), device="cpu")
    save_file({"lora_unet_down.lora_down.weight": torch.zeros(4, 4)}, str(tmp_path / "lora.safetensors"))
    with pytest.raises(cc.ModelLoadError, match=r"lora.safetensors holds no network of Stable Cascade's text-to-image "
                                                r"pipeline \(an unknown layout; 1 tensors of no known network\): expected"
                                                r" Stage C, Stage B, Stage A"):
        cc.load(tmp_path / "lora.safetensors")
    with pytest.raises(cc.ModelLoadError, match=r"missing .*given with --stage-b\) does not exist"):
        cc.load(folder, stage_b=str(tmp_path / "missing"))


def test_the_previewer_comes_from_the_hub_when_the_model_has_none(tmp_path, tiny_model, support_hub):
    lines = []
    model = cc.load(released_folder(tmp_path, without=("previewer",)), device="cpu", dtype="float32",
                    progress=lines.append)
    assert same_weights(model, tiny_model, ("previewer",)) and support_hub.downloads() == ["previewer.safetensors"]
    assert "previewer: the downloaded previewer.safetensors of stabilityai/stable-cascade" in lines


def test_offline_without_a_previewer_a_sketch_stands_in(tmp_path, tiny_model, offline):
    lines = []
    model = cc.load(released_folder(tmp_path, without=("previewer",)), device="cpu", dtype="float32",
                    progress=lines.append)
    assert any(line.startswith("no previewer in the model, and none from stabilityai/stable-cascade") for line in lines)
    request = cc.GenerationRequest("a fox", width=256, height=256, seed=1, prior_steps=2, decoder_steps=2)
    done = [e for e in cc.generate(model, request, keep_tensors=True) if isinstance(e, cc.Finished)][0]
    reference = [e for e in cc.generate(tiny_model, request, keep_tensors=True) if isinstance(e, cc.Finished)][0]
    assert torch.equal(done.tensors["image"], reference.tensors["image"])  # the final image does not depend on it
    assert done.tensors["preview"].shape == reference.tensors["preview"].shape
    assert 0 <= done.tensors["preview"].min() and done.tensors["preview"].max() <= 1


def test_a_hub_model_with_a_given_stage_c_does_not_download_its_own(fake_hub, tmp_path):
    save_file(finetune("stage_c", 0.5), str(tmp_path / "c.safetensors"))
    model = cc.load(REPO, stage_c=str(tmp_path / "c.safetensors"), variant="full", device="cpu", dtype="float32")
    assert not any(name.startswith("stage_c") for name in fake_hub.downloads())
    assert model.load_report[0].file == "c.safetensors"
