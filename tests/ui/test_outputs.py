"""The outputs writer: dated folders, PNG with metadata + sidecar, atomic, never overwrites."""
import json
import time

from PIL import Image

from cascade_core.images import read_settings
from ui.outputs import OutputsWriter, load_saved

SETTINGS = {"prompt": "a fox", "negative_prompt": "", "seed": 42, "width": 64, "height": 64, "prior_steps": 2,
            "prior_guidance": 4.0, "decoder_steps": 2, "decoder_guidance": 1.1, "model": "m", "version": "0"}
NOW = time.mktime((2026, 3, 4, 10, 20, 30, 0, 0, -1))


def image(colour="red"):
    return Image.new("RGB", (64, 64), colour)


def test_png_and_sidecar_in_dated_folder(tmp_path):
    saved = OutputsWriter(tmp_path).save(image(), SETTINGS, now=NOW)
    assert saved.path == tmp_path / "2026-03-04" / "102030-42.png"
    assert read_settings(saved.path)["prompt"] == "a fox"
    assert "parameters" in Image.open(saved.path).text  # the A1111 chunk other tools read
    sidecar = json.loads(saved.path.with_suffix(".json").read_text())
    assert sidecar == {**SETTINGS, "file": "102030-42.png"}
    assert sorted(p.name for p in saved.path.parent.iterdir()) == ["102030-42.json", "102030-42.png"]  # no temp files


def test_never_overwrites(tmp_path):
    writer = OutputsWriter(tmp_path)
    first = writer.save(image("red"), SETTINGS, now=NOW)
    second = writer.save(image("blue"), SETTINGS, now=NOW)
    third = writer.save(image("green"), SETTINGS, now=NOW)
    assert [p.name for p in (first.path, second.path, third.path)] == ["102030-42.png", "102030-42-1.png",
                                                                        "102030-42-2.png"]
    assert Image.open(first.path).getpixel((0, 0)) == (255, 0, 0)
    assert Image.open(second.path).getpixel((0, 0)) == (0, 0, 255)
    assert json.loads(second.path.with_suffix(".json").read_text())["file"] == "102030-42-1.png"


def test_reload_newest_first_with_settings(tmp_path):
    writer = OutputsWriter(tmp_path)
    old = writer.save(image(), {**SETTINGS, "seed": 1}, now=NOW)
    new = writer.save(image(), {**SETTINGS, "seed": 2}, now=NOW + 86400)
    old.path.with_suffix(".json").unlink()  # settings then come from the PNG itself
    loaded = load_saved(tmp_path)
    assert [(s.path, s.settings["seed"]) for s in loaded] == [(new.path, 2), (old.path, 1)]
    assert "file" not in loaded[0].settings
    assert load_saved(tmp_path / "missing") == []
