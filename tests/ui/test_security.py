"""Security without a server: names from the browser never reach a path unchecked, no pickle is ever
loaded, user text is escaped, presets are strict, and an exposed studio without a login is warned about."""
import os
import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

import cascade_core as cc
from ui import gallery
from ui.generation import Services
from ui.gallery_actions import GalleryActions
from ui.handlers import Handlers
from ui.hosting import exposure_warning
from ui.markdown import md_escape
from ui.model_holder import ModelHolder
from ui.outputs import OutputsWriter, find_saved, relative_name
from ui.presets import PresetError, load_presets

from .test_presets import write

REPO = Path(__file__).resolve().parents[2]
TINY_MODEL = REPO.parent / "shared" / "reference" / "pipeline" / "tiny-cascade"
SETTINGS = {"prompt": "a fox", "seed": 42, "width": 64, "height": 64}


@pytest.fixture
def saved(tmp_path):
    """An outputs folder with one image, and a secret file beside it."""
    root = tmp_path / "outputs"
    image = OutputsWriter(root).save(Image.new("RGB", (8, 8)), SETTINGS)
    (tmp_path / "secret.png").write_bytes(image.path.read_bytes())
    return root, image


def test_saved_image_names_round_trip(saved):
    root, image = saved
    name = relative_name(root, image.path)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d/\d{6}-42\.png", name)
    assert find_saved(root, name).path == image.path and find_saved(root, name).settings["seed"] == 42
    assert relative_name(root, root.parent / "secret.png") is None


@pytest.mark.parametrize("name", [
    "../secret.png", "x/../../secret.png", "{day}/../../secret.png", "/etc/passwd", "{abs}", "{day}/..",
    "{day}\\..\\..\\secret.png", "{day}/{file}\0.png", "{day}/.hidden.png", "{day}/{stem}.json", "secret.png",
    "{day}/{file}/x.png", "", None, 42, ["{day}", "{file}"], {"path": "{abs}"}, "{day}/link.png", "{day}/missing.png",
])
def test_names_from_the_browser_cannot_leave_the_outputs_folder(saved, name):
    root, image = saved
    os.symlink(root.parent / "secret.png", image.path.parent / "link.png")
    fill = dict(day=image.path.parent.name, file=image.path.name, stem=image.path.stem, abs=str(image.path))
    if isinstance(name, str):
        name = name.format(**fill)
    assert find_saved(root, name) is None


def test_restore_keeps_only_the_outputs_folders_images(saved):
    root, image = saved
    handlers = GalleryActions(Services(ModelHolder(), OutputsWriter(root)), load_presets())
    items = [gallery.make_item(image.path, SETTINGS), gallery.make_item(root.parent / "secret.png", SETTINGS)]
    names = handlers.remember(items)
    assert names == [relative_name(root, image.path)]
    value, restored = handlers.restore(names + ["../secret.png", "/etc/passwd", None], [])
    assert [item["path"] for item in restored] == [str(image.path)]
    assert value == [(str(image.path), restored[0]["caption"])]
    assert handlers.restore("not a list", []) == handlers.restore(names, items[:1])  # both: leave the gallery as is


def test_the_aspect_switches_to_custom_when_the_size_is_set_by_hand(tmp_path):
    handlers = Handlers(Services(ModelHolder(), OutputsWriter(tmp_path)), load_presets())
    assert handlers.match_size(1344, 768) == "16:9"
    assert handlers.match_size(1344, 776) == "Custom"
    assert handlers.apply_size("Custom") == handlers.apply_size("no such preset")  # leaves the sliders alone


@pytest.mark.parametrize("kwargs, message", [
    ({"quality": {"balanced": {"prior_steps": 20, "prior_guidance": 4, "decoder_steps": 10, "decoder_guidance": 1,
                               "sampler": "euler"}}}, r"'balanced': unknown key\(s\) sampler; allowed: prior_steps"),
    ({"sizes": {"1:1": {"width": 1024, "height": 1024, "path": "../x"}}}, r"unknown key\(s\) path"),
    ({"sizes": {"Custom": {"width": 1024, "height": 1024}}}, r"'Custom' is the page's name"),
    ({"styles": {"None": {"prompt": "{prompt}", "template_file": "/etc/passwd"}}}, r"unknown key\(s\) template_file"),
])
def test_presets_with_unknown_keys_are_refused(tmp_path, kwargs, message):
    with pytest.raises(PresetError, match=message):
        load_presets(write(tmp_path, **kwargs))


def test_user_text_is_shown_as_text():
    text = md_escape('<img src=x onerror="alert(1)"> <script>alert(2)</script> [link](javascript:alert(3))')
    assert "<" not in text.replace("\\<", "") and "](" not in text  # every tag and link is escaped


@pytest.mark.parametrize("host, share, auth, warned", [
    ("127.0.0.1", False, None, False), ("localhost", False, None, False), ("0.0.0.0", False, None, True),
    ("192.168.1.5", False, None, True), ("127.0.0.1", True, None, True), ("0.0.0.0", False, ("a", "b"), False),
    ("127.0.0.1", True, ("a", "b"), False),
])
def test_exposed_without_a_login_is_warned_about(host, share, auth, warned):
    warning = exposure_warning(host, share, auth)
    assert (warning is not None) == warned
    if warned:
        assert "--auth" in warning


@pytest.mark.skipif(not TINY_MODEL.is_dir(), reason="needs ../shared/reference beside the repository")
@pytest.mark.parametrize("replace, message", [
    ("network", r"^{model}/stage_c\.safetensors is not a readable safetensors file \(.+\); "
                r"delete it and fetch it again$"),
    ("text_encoder", r"^{model}/text_encoder could not be loaded \(.*no file named model\.safetensors.*\); "
                     r"delete it and fetch it again$"),
])
def test_pickled_weights_are_never_loaded(tmp_path, monkeypatch, replace, message):
    """A pickle where weights belong (or beside them) is refused without being unpickled."""
    model = tmp_path / "model"
    shutil.copytree(TINY_MODEL, model)
    if replace == "network":  # a pickle under a .safetensors name
        torch.save({"weight": torch.zeros(1)}, model / "stage_c.safetensors")
    else:  # only a pytorch_model.bin for the text encoder
        (model / "text_encoder" / "model.safetensors").unlink()
        torch.save({"weight": torch.zeros(1)}, model / "text_encoder" / "pytorch_model.bin")
    unpickled = []

    class Spy(pickle.Unpickler):
        def load(self):
            unpickled.append(True)
            return super().load()

    monkeypatch.setattr(pickle, "Unpickler", Spy)
    monkeypatch.setattr(pickle, "load", lambda *a, **k: unpickled.append(True))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: unpickled.append(True))
    monkeypatch.setattr(torch, "load", lambda *a, **k: unpickled.append(True))
    with pytest.raises(cc.ModelLoadError, match=message.format(model=re.escape(str(model)))):
        cc.load(model, device="cpu", dtype="float32")
    assert unpickled == []


def test_no_pickle_or_remote_code_in_the_sources():
    """The only loaders are safetensors and from_pretrained(use_safetensors=True); no trust_remote_code."""
    for path in [*REPO.glob("cascade_core/**/*.py"), *REPO.glob("ui/*.py"), REPO / "app.py"]:
        source = path.read_text(encoding="utf-8")
        assert not re.search(r"torch\.load\(|pickle|trust_remote_code\s*=\s*True|weights_only\s*=\s*False",
                             source), path
        for call in re.finditer(r"\w*Model\w*\.from_pretrained\((?:[^()]|\([^()]*\))*\)", source):
            assert "use_safetensors=True" in call.group(0), (path, call.group(0))  # configs and tokenizers are JSON
