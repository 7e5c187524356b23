"""`check` names the format of every part and where it will be loaded from, without loading anything."""
import os
import shutil
import subprocess
import sys

import torch
from safetensors.torch import save_file

from cascade_core.check import check_folder
from tests.cascade_core.formats.helpers import comfy_stage_b, comfy_stage_c, tiny
from tests.conftest import ROOT, TINY_CASCADE

FIXTURE = ROOT / "tests" / "fixtures" / "diffusers_tiny"


def rows_by_part(rows):
    return {r.part: r for r in rows}


def test_comfyui_checkpoints_offline(tmp_path, offline):
    comfy_stage_c(tmp_path / "stable_cascade_stage_c.safetensors")
    comfy_stage_b(tmp_path / "stable_cascade_stage_b.safetensors")
    rows = rows_by_part(check_folder(tmp_path))
    assert rows["stage_c"].file == "stable_cascade_stage_c.safetensors"
    assert rows["stage_c"].detail == "tiny, ComfyUI checkpoint (ComfyUI names), 174 tensors"
    assert rows["previewer"].bytes == sum(t.nelement() * t.element_size() for t in tiny("previewer").values())  # its share of the file
    assert rows["stage_a"].file == "stable_cascade_stage_b.safetensors" and rows["stage_a"].ok
    assert rows["previewer"].file == "stable_cascade_stage_c.safetensors" and not rows["previewer"].absent
    text = rows["text_encoder"]
    assert not text.ok and text.detail.startswith("not the released CLIP ViT-bigG text model")  # the tiny one
    assert "wrong shape: text_model.embeddings.token_embedding.weight [49408, 32] (expected [49408, 1280])" in text.detail
    assert rows["tokenizer"].absent and "fetched from stabilityai/stable-cascade on load" in rows["tokenizer"].detail
    assert rows["other"].detail == "also holds the EfficientNet encoder: not loaded"


def test_comfyui_text_encoder_checked_against_the_folders_config(tmp_path):
    comfy_stage_c(tmp_path / "c.safetensors")
    shutil.copytree(TINY_CASCADE / "tokenizer", tmp_path / "tokenizer")
    (tmp_path / "text_encoder").mkdir()
    shutil.copyfile(TINY_CASCADE / "text_encoder" / "config.json", tmp_path / "text_encoder" / "config.json")
    rows = rows_by_part(check_folder(tmp_path))
    assert rows["text_encoder"].ok and rows["text_encoder"].detail == "2M parameters, 37 tensors, ComfyUI checkpoint"
    assert rows["tokenizer"].ok and rows["tokenizer"].file == "tokenizer/"


def test_diffusers_layout_and_the_absent_previewer(offline):
    rows = rows_by_part(check_folder(FIXTURE))
    assert [rows[s].file for s in ("stage_c", "stage_b", "stage_a")] == ["prior/", "decoder/", "vqgan/"]
    assert rows["stage_b"].detail.startswith("custom, diffusers decoder/, ")
    assert rows["previewer"].absent and "offline, a false-colour sketch" in rows["previewer"].detail


def test_a_wrong_override_and_an_unknown_model_file_fail_by_name(tmp_path):
    save_file(tiny("stage_b"), str(tmp_path / "b.safetensors"))
    rows = rows_by_part(check_folder(FIXTURE, stage_c=str(tmp_path / "b.safetensors")))
    assert not rows["stage_c"].ok and rows["stage_c"].detail.endswith("holds Stage B, not Stage C; pass it with --stage-b")
    save_file({"x": torch.zeros(1)}, str(tmp_path / "x.safetensors"))
    [row] = check_folder(tmp_path / "x.safetensors")
    assert not row.ok and "holds no network of Stable Cascade's text-to-image pipeline" in row.detail


def test_the_command_prints_the_formats_found(tmp_path):
    comfy_stage_b(tmp_path / "stable_cascade_stage_b.safetensors")  # no previewer
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run([sys.executable, "-m", "cascade_core", "check", str(tmp_path), "--stage-c",
                             str(FIXTURE / "prior")], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 1  # the tiny text encoder is not the released one, the only config offline
    assert "formats: diffusers prior/; ComfyUI checkpoint\n" in result.stdout
    lines = {line.split()[1]: line for line in result.stdout.splitlines()[3:] if len(line.split()) > 2}
    assert lines["stage_c"].startswith(str(FIXTURE / "prior") + "/") and "ok: custom, diffusers prior/" in lines["stage_c"]
    assert "absent: previewer.safetensors of stabilityai/stable-cascade is fetched on load" in lines["previewer"]


def test_a_sharded_text_encoder_is_checked_whole(tmp_path):
    from transformers import CLIPTextModelWithProjection

    model = CLIPTextModelWithProjection.from_pretrained(TINY_CASCADE / "text_encoder")
    model.save_pretrained(tmp_path / "text_encoder", max_shard_size="2MB")  # as big repositories shard it
    shutil.copytree(TINY_CASCADE / "tokenizer", tmp_path / "tokenizer")
    text = rows_by_part(check_folder(tmp_path))["text_encoder"]
    assert text.ok and text.file == "text_encoder/model-00001-of-00002.safetensors and 1 more"
    assert text.detail == "2M parameters, 37 tensors"
