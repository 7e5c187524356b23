"""The extra networks load the first time a request needs them: from a folder's cascade.json "extras",
from the folder's released layout, else from the hub (here the fake one, through huggingface_hub)."""
from __future__ import annotations

import json
import shutil

import huggingface_hub.constants as hf_constants
import numpy as np
import pytest

import cascade_core as cc
from cascade_core.picture import Picture
from cascade_core.released import EXTRA_FILES, PRIOR_REPO
from cascade_core.units import format_bytes
from tests.conftest import REFERENCE, TINY_CASCADE
from tests.fake_hub import extra_repos

MAIN_REPO = EXTRA_FILES["effnet_encoder"][0]  # stabilityai/stable-cascade: the encoder and the ControlNets
EFFNET = REFERENCE / "extras" / "effnet" / "effnet_encoder.safetensors"
TINY_CANNY = REFERENCE / "extras" / "controlnet" / "controlnet_canny_tiny.safetensors"


@pytest.fixture
def hub(fake_hub):
    """The fake hub, also serving the extra networks' repositories."""
    fake_hub.others.update(extra_repos(REFERENCE))
    return fake_hub


def picture(width: int = 96, height: int = 64, seed: int = 0) -> Picture:
    return Picture(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def load(folder, lines: list[str] | None = None) -> cc.CascadeModel:
    return cc.load(folder, device="cpu", dtype="float32", progress=(lines if lines is not None else []).append)


def run(model: cc.CascadeModel, **fields) -> cc.Finished:
    """A two-step Stage C of a 256×256 request with these picture fields."""
    request = cc.GenerationRequest("a fox", width=256, height=256, seed=1, prior_steps=2, **fields)
    events = list(cc.generate(model, request, stage_c_only=True, preview_every=0))
    assert isinstance(events[-1], cc.Finished), events[-1]
    return events[-1]


def tiny_copy(tmp_path, extras: dict | None = None):
    """A writable copy of tiny-cascade, with these cascade.json "extras" if given."""
    folder = tmp_path / "model"
    shutil.copytree(TINY_CASCADE, folder, copy_function=shutil.copyfile)
    for path in (folder, *folder.rglob("*")):
        if path.is_dir():
            path.chmod(0o755)
    if extras is not None:
        spec = json.loads((folder / "cascade.json").read_text())
        (folder / "cascade.json").write_text(json.dumps({**spec, "extras": extras}))
    return folder


def test_an_extra_network_is_fetched_the_first_time_its_mode_runs_and_then_kept(hub):
    lines = []
    model = load(TINY_CASCADE, lines)
    assert model.extras.loaded == () and not hub.asked(MAIN_REPO) and not hub.asked(PRIOR_REPO)  # not at load
    run(model)  # text alone needs no extra network
    assert not hub.asked(MAIN_REPO)

    run(model, init_image=picture(), strength=0.5)
    assert hub.downloads(MAIN_REPO) == ["effnet_encoder.safetensors"]
    assert "loading effnet_encoder for remix, repaint, extend and upscale" in lines
    assert any(line.startswith(f"{MAIN_REPO} at ") and "1 file," in line for line in lines)
    assert f"[1/1] downloading effnet_encoder.safetensors ({format_bytes(EFFNET.stat().st_size)})" in lines
    assert model.extras.loaded == ("effnet_encoder",)

    seen = len(lines)
    hub.log.clear()
    run(model, init_image=picture(seed=1), strength=0.5)  # the same mode again: kept, not fetched nor loaded
    assert hub.log == [] and len(lines) == seen

    run(model, image_prompt=picture())  # another mode: its network, from its own repository
    assert hub.downloads(PRIOR_REPO) == ["image_encoder/config.json", "image_encoder/model.safetensors"]
    assert "loading image_encoder for image prompts" in lines[seen:]
    assert hub.downloads(MAIN_REPO) == [] and model.extras.loaded == ("effnet_encoder", "image_encoder")


def test_a_folders_cascade_json_extras_win_over_its_files_and_the_hub(hub, tmp_path):
    folder = tiny_copy(tmp_path, {"effnet_encoder": {"file": str(EFFNET)},
                                  "image_encoder": {"folder": str(REFERENCE / "extras" / "image_variation" /
                                                                  "clip_vision")}})
    (folder / "effnet_encoder.safetensors").write_bytes(b"the released layout's file: not used")
    model = load(folder)
    run(model, init_image=picture(), strength=0.5, image_prompt=picture(seed=2))
    assert model.extras.loaded == ("image_encoder", "effnet_encoder")
    assert hub.log == []


def test_the_released_layout_in_the_folder_wins_over_the_hub(hub, tmp_path):
    folder = tiny_copy(tmp_path)
    shutil.copyfile(EFFNET, folder / "effnet_encoder.safetensors")
    run(load(folder), init_image=picture(), strength=0.5)
    assert hub.log == []


@pytest.mark.parametrize("fields, repo, missing", [
    (dict(init_image=picture(), strength=0.5), MAIN_REPO, "effnet_encoder.safetensors"),
    (dict(image_prompt=picture()), PRIOR_REPO, "image_encoder/config.json, image_encoder/model.safetensors"),
])
def test_offline_with_nothing_cached_says_to_download_the_extras(hub, monkeypatch, fields, repo, missing):
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    model = load(TINY_CASCADE)
    with pytest.raises(cc.ModelLoadError) as error:
        run(model, **fields)
    message = str(error.value)
    assert message.startswith("offline mode is on (HF_HUB_OFFLINE=1), and the cache")
    assert f"lacks {missing}" in message
    assert f"`python -m cascade_core download --model {repo} --extras`" in message
    assert hub.log == [] and model.extras.loaded == ()


def test_a_file_of_another_layout_from_the_hub_is_refused_naming_it(hub):
    model = load(TINY_CASCADE)  # the fake hub serves the tiny ControlNet under the released name
    for _ in range(2):  # refused again on the next request: a refused network is not kept
        with pytest.raises(cc.ModelLoadError, match=r"^/.*/controlnet/canny\.safetensors does not hold a controlnet_canny "
                           r"network: .*missing.*Fetch it again with `python -m cascade_core download --model "
                           r"stabilityai/stable-cascade --extras --force`\.$"):
            run(model, control="canny", control_image=picture(256, 256))
    assert model.extras.loaded == ()


def test_a_file_of_another_layout_named_in_cascade_json_is_refused_naming_it(hub, tmp_path):
    model = load(tiny_copy(tmp_path, {"effnet_encoder": {"file": str(TINY_CANNY)}}))
    with pytest.raises(cc.ModelLoadError, match=r"^/.*/controlnet_canny_tiny\.safetensors does not hold a effnet_encoder "
                       r"network: .*Replace the file with the released one\.$"):
        run(model, init_image=picture(), strength=0.5)
    assert hub.log == []
