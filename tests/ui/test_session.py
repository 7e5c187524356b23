"""The session's memory: controls kept in the browser and restored only when still valid."""
import gradio as gr
from PIL import Image, PngImagePlugin

from ui.generation import Services
from ui.model_holder import ModelHolder
from ui.outputs import OutputsWriter
from ui.presets import load_presets
from ui.session import REMEMBERED, Session


def session(tmp_path):
    return Session(Services(ModelHolder(), OutputsWriter(tmp_path)), load_presets())


def test_remembered_controls_come_back_in_order(tmp_path):
    values = ("a fox", "blurry", "Photographic", "draft", "16:9", 1344, 768, 42, False, 2, 12, 4.0, 4, 1.1, 16)
    kept = session(tmp_path).remember_controls(*values)
    assert list(kept) == list(REMEMBERED)
    assert session(tmp_path).restore_controls(kept) == values


def test_stale_or_foreign_values_leave_the_control_as_it_is(tmp_path):
    saved = {"prompt": 5, "style": "Gone", "quality": "draft", "aspect": "1:1", "width": "wide", "randomize": "yes",
             "seed": True}
    restored = dict(zip(REMEMBERED, session(tmp_path).restore_controls(saved)))
    skip = gr.skip()
    assert restored["quality"] == "draft" and restored["aspect"] == "1:1"
    assert all(restored[k] == skip for k in ("prompt", "style", "width", "randomize", "seed", "negative_prompt"))
    assert all(v == skip for v in session(tmp_path).restore_controls("not a dict"))


def test_a_very_long_prompt_is_not_written_to_the_browser(tmp_path):
    kept = session(tmp_path).remember_controls("x" * 20_000, "", "None")
    assert "prompt" not in kept and kept["negative_prompt"] == ""


def test_a_dropped_png_sets_the_controls_and_the_lora_slots(tmp_path):
    """An A1111 PNG's <lora:…> tags fill the slots; a PNG without LoRAs empties them, as its image had none."""
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a fox <lora:fernando:0.7>\nSteps: 20, Seed: 42, Size: 1024x768, CFG scale: 4")
    path = tmp_path / "a1111.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    *controls, status, drop = session(tmp_path).read_png(str(path))
    values, slots = dict(zip(REMEMBERED, controls)), controls[len(REMEMBERED):]
    assert values["prompt"] == "a fox" and values["seed"] == 42 and values["randomize"] is False
    assert slots == ["fernando", 0.7, None, 1.0, None, 1.0] and drop is None
    plain = tmp_path / "plain.png"
    saved = PngImagePlugin.PngInfo()
    saved.add_text("parameters", "a cat\nSteps: 20, Seed: 7, Size: 1024x1024")
    Image.new("RGB", (8, 8)).save(plain, pnginfo=saved)
    assert session(tmp_path).read_png(str(plain))[len(REMEMBERED):-2] == (None, 1.0) * 3
