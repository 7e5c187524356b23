"""Model folders: cascade.json and the released layout, detection, prefixes and clear errors."""
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

import cascade_core as cc
from cascade_core.loading import locate
from tests.conftest import TINY_CASCADE

STAGES = ["stage_c", "stage_b", "stage_a", "previewer"]


def released_folder(tmp_path, names=None, transform=lambda state: state):
    """The tiny weights under released file names, without cascade.json."""
    names = names or {s: f"{s}.safetensors" for s in STAGES}
    folder = tmp_path / "released"
    folder.mkdir()
    for stage, name in names.items():
        save_file(transform(load_file(TINY_CASCADE / f"{stage}.safetensors")), str(folder / name))
    for sub in ("text_encoder", "tokenizer"):
        shutil.copytree(TINY_CASCADE / sub, folder / sub)
    return folder


def test_cascade_json_folder(tiny_model):
    assert tiny_model.variant == "tiny" and tiny_model.name == "tiny-cascade"
    assert [item.stage for item in tiny_model.load_report] == STAGES + ["text_encoder"]
    assert all(item.bytes > 0 and item.seconds > 0 for item in tiny_model.load_report)
    assert all(not t.is_meta for t in tiny_model.stage_c.state_dict().values())


def test_released_layout_is_detected_from_shapes(tmp_path, tiny_model):
    folder = released_folder(tmp_path)
    files = locate(folder)
    assert {s: f.size for s, f in files.items()} == {s: "tiny" for s in STAGES}
    model = cc.load(folder, device="cpu", dtype="float32")
    for stage in STAGES:
        ours, ref = getattr(model, stage).state_dict(), getattr(tiny_model, stage).state_dict()
        assert all(torch.equal(ours[k], ref[k]) for k in ref)


def test_bf16_file_is_preferred_for_bf16_runs(tmp_path):
    names = {"stage_c": "stage_c_bf16.safetensors", "stage_b": "stage_b.safetensors",
             "stage_a": "stage_a.safetensors", "previewer": "previewer.safetensors"}
    folder = released_folder(tmp_path, names)
    shutil.copy(folder / "stage_c_bf16.safetensors", folder / "stage_c.safetensors")
    assert locate(folder, dtype=torch.bfloat16)["stage_c"].path.name == "stage_c_bf16.safetensors"
    assert locate(folder, dtype=torch.float32)["stage_c"].path.name == "stage_c.safetensors"


def test_lite_variant_is_found_by_its_file_name(tmp_path):
    names = {"stage_c": "stage_c_lite.safetensors", "stage_b": "stage_b_lite_bf16.safetensors",
             "stage_a": "stage_a.safetensors", "previewer": "previewer.safetensors"}
    folder = released_folder(tmp_path, names)
    assert locate(folder, variant="lite")["stage_b"].path.name == "stage_b_lite_bf16.safetensors"
    with pytest.raises(cc.ModelLoadError, match="stage_c_bf16.safetensors or stage_c.safetensors"):
        locate(folder, variant="full")


def test_model_diffusion_model_prefix_loads(tmp_path, tiny_model):
    prefixed = lambda state: {f"model.diffusion_model.{k}": v for k, v in state.items()}
    model = cc.load(released_folder(tmp_path, transform=prefixed), device="cpu", dtype="float32")
    ref = tiny_model.stage_b.state_dict()
    assert all(torch.equal(model.stage_b.state_dict()[k], ref[k]) for k in ref)


def test_bfloat16_casts_floats_and_keeps_integer_buffers(tmp_path):
    model = cc.load(released_folder(tmp_path), device="cpu", dtype="bfloat16")
    assert model.stage_b.clf[1].weight.dtype == torch.bfloat16
    assert model.previewer.blocks[2].num_batches_tracked.dtype == torch.int64


def test_wrong_shapes_name_the_file_and_the_tensor(tmp_path):
    def damage(state):
        state["clf.1.weight"] = torch.zeros(3, 3, 1, 1)
        return state

    folder = released_folder(tmp_path, names={"stage_c": "stage_c.safetensors"}, transform=damage)
    with pytest.raises(cc.ModelLoadError, match=r"stage_c.safetensors .*nearest is tiny: 1 wrong shape: clf\.1\.weight \[3, 3, 1, 1\] \(expected \[16, 64, 1, 1\]\)"):
        locate(folder)


def test_truncated_file_is_reported_with_the_fix(tmp_path):
    folder = released_folder(tmp_path)
    data = (folder / "stage_b.safetensors").read_bytes()
    (folder / "stage_b.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(cc.ModelLoadError, match="stage_b.safetensors.*delete it and fetch it again"):
        cc.load(folder, device="cpu")


def test_missing_pieces_are_named(tmp_path):
    with pytest.raises(cc.ModelLoadError, match="not a folder"):
        cc.load(tmp_path / "nothing")
    folder = released_folder(tmp_path)
    (folder / "stage_a.safetensors").unlink()
    with pytest.raises(cc.ModelLoadError, match="stage_a.safetensors"):
        cc.load(folder)
    shutil.copy(TINY_CASCADE / "stage_a.safetensors", folder / "stage_a.safetensors")
    shutil.rmtree(folder / "tokenizer")
    with pytest.raises(cc.ModelLoadError, match="tokenizer"):
        cc.load(folder, device="cpu")


def test_cascade_json_that_disagrees_with_the_weights(tmp_path):
    folder = tmp_path / "custom"
    shutil.copytree(TINY_CASCADE, folder)
    spec = json.loads((folder / "cascade.json").read_text())
    spec["previewer"]["c_hidden"] = 64
    (folder / "cascade.json").write_text(json.dumps(spec))
    with pytest.raises(cc.ModelLoadError, match="previewer.safetensors does not match"):
        cc.load(folder)


def test_float16_leaves_stage_c_in_bfloat16_unless_forced():
    lines = []
    model = cc.load(TINY_CASCADE, device="cpu", dtype="float16", progress=lines.append)
    dtypes = {stage: next(net.parameters()).dtype for stage, net in model.networks().items()}
    assert dtypes == {"text_encoder": torch.float16, "stage_c": torch.bfloat16, "previewer": torch.float16,
                      "stage_b": torch.float16, "stage_a": torch.float16}
    assert "Stage C runs in bfloat16, not float16: its activations overflow" in lines[0]
    request = cc.GenerationRequest("a fox", width=256, height=256, seed=1, prior_steps=2, decoder_steps=2)
    assert [e for e in cc.generate(model, request) if isinstance(e, cc.Finished)][0].images[0].size == (256, 256)
    forced = cc.load(TINY_CASCADE, device="cpu", dtype="float16", force_float16=True)
    assert forced.stage_c.clf[1].weight.dtype == torch.float16
