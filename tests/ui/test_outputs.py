"""The outputs writer: dated folders, PNG with metadata + sidecar, atomic, never overwrites; deleting only
what it wrote."""
import errno
import json
import os
import time

import pytest
from PIL import Image

from cascade_core.images import read_settings
from ui.outputs import DeleteRefused, OutputsWriter, delete_saved, load_saved, owned_png

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


# --- deleting (ui/outputs.delete_saved): only PNGs this studio wrote, inside the outputs folder ---------------


@pytest.fixture
def outputs(tmp_path):
    """(root, a saved image, a copy of it outside root, a PNG in root's day folder that the studio did not write)."""
    root = tmp_path / "outputs"
    saved = OutputsWriter(root).save(image(), SETTINGS, now=NOW)
    outside = tmp_path / "102030-42.png"
    outside.write_bytes(saved.path.read_bytes())
    foreign = saved.path.parent / "102031-7.png"
    image("blue").save(foreign)  # a plain PNG, no studio settings chunk
    return root, saved.path, outside, foreign


def test_delete_removes_the_png_and_its_sidecar(outputs):
    root, png, _, foreign = outputs
    assert delete_saved(root, png) == (png, png.with_suffix(".json"))
    assert not png.exists() and not png.with_suffix(".json").exists() and foreign.exists()
    with pytest.raises(DeleteRefused):
        delete_saved(root, png)  # gone now


def test_delete_by_its_name_in_the_outputs_folder(outputs):
    root, png, _, _ = outputs
    assert delete_saved(root, f"{png.parent.name}/{png.name}")[0] == png


def test_a_sidecar_that_is_a_link_is_left_alone(outputs, tmp_path):
    root, png, _, _ = outputs
    keep = tmp_path / "keep.json"
    keep.write_text("{}")
    png.with_suffix(".json").unlink()
    os.symlink(keep, png.with_suffix(".json"))
    assert delete_saved(root, png) == (png,)
    assert keep.exists() and os.path.islink(png.with_suffix(".json"))


@pytest.mark.parametrize("name", [
    "{outside}", "{root}/{day}/../../102030-42.png", "{day}/../../102030-42.png", "../102030-42.png",
    "{foreign}", "{day}/102030-42.json", "{day}/link.png", "{linkday}/102030-42.png", "{root}", "{day}",
    "{day}/102030-42.png\0", "", None, 42, ["{day}", "102030-42.png"], "/etc/passwd", "{other}",
    "{root}/../other/{day}/102030-42.png",
])
def test_delete_refuses_anything_else_and_touches_nothing(outputs, tmp_path, name):
    root, png, outside, foreign = outputs
    os.symlink(outside, png.parent / "102032-1.png")
    os.symlink(png.parent, root / "2026-03-05")  # a day folder that is a link to a real one
    other = OutputsWriter(tmp_path / "other").save(image(), SETTINGS, now=NOW).path  # another outputs folder's
    fill = dict(outside=outside, root=root, day=png.parent.name, foreign=foreign, linkday="2026-03-05", other=other)
    name = name.format(**fill).replace("link.png", "102032-1.png") if isinstance(name, str) else name
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert owned_png(root, name) is None
    with pytest.raises(DeleteRefused, match="Only images this studio saved"):
        delete_saved(root, name)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_delete_without_folder_descriptors(outputs, monkeypatch):
    """Where the OS has no unlink relative to a folder (Windows), the same checks by path."""
    root, png, _, _ = outputs
    monkeypatch.setattr(os, "supports_dir_fd", set())
    assert delete_saved(root, png) == (png, png.with_suffix(".json"))


def test_a_folder_that_refuses_is_reported(outputs, monkeypatch):
    root, png, _, _ = outputs

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(os, "unlink", refuse)
    monkeypatch.setattr(os, "supports_dir_fd", os.supports_dir_fd | {refuse})
    with pytest.raises(DeleteRefused, match="Could not delete 102030-42.png: Permission denied"):
        delete_saved(root, png)
    assert png.exists()
