"""Batch zips: the saved PNGs byte for byte with names that say seed and prompt, only the outputs folder's
images, bounded in count and size, old zips removed."""
import os
import tempfile
import time
import zipfile

import pytest
from PIL import Image

from ui import gallery
from ui.archive import ArchiveError, BatchZips, member_name
from ui.outputs import OutputsWriter
from ui.png_settings import read_png_settings

SETTINGS = {"prompt": "cinematic photo of a red fox, 35mm", "user_prompt": "A red fox, in the snow!", "seed": 42,
            "width": 64, "height": 64, "prior_steps": 2, "prior_guidance": 4.0, "decoder_steps": 2,
            "decoder_guidance": 1.1, "style": "Photographic"}
NOW = time.mktime((2026, 3, 4, 10, 20, 30, 0, 0, -1))


@pytest.fixture
def saved(tmp_path):
    """(outputs root, three gallery items of saved images, newest first)."""
    root = tmp_path / "outputs"
    writer = OutputsWriter(root)
    items = [gallery.make_item(writer.save(Image.new("RGB", (64, 64), colour), {**SETTINGS, "seed": seed}).path,
                               {**SETTINGS, "seed": seed})
             for seed, colour in ((3, "red"), (2, "green"), (1, "blue"))]
    return root, items


def test_the_zip_holds_the_pngs_byte_for_byte_with_their_settings(saved, tmp_path):
    root, items = saved
    archive = BatchZips(root, tmp_path / "zips").make(items, now=NOW)
    assert archive.count == 3 and archive.skipped == ()
    assert archive.path.name == "cascade-studio-20260304-102030-3-images.zip"
    with zipfile.ZipFile(archive.path) as zf:
        assert zf.namelist() == ["01-seed3-a-red-fox-in-the-snow.png", "02-seed2-a-red-fox-in-the-snow.png",
                                 "03-seed1-a-red-fox-in-the-snow.png"]
        for name, item in zip(zf.namelist(), items):
            assert zf.read(name) == open(item["path"], "rb").read()
        zf.extract(zf.namelist()[1], tmp_path / "out")
    assert read_png_settings(tmp_path / "out" / "02-seed2-a-red-fox-in-the-snow.png").seed == 2


def test_member_names():
    assert member_name(7, {"seed": 5, "prompt": "Ünïcode / ../../etc/passwd\n<b>"}) == "07-seed5-unicode-etc-passwd-b.png"
    assert member_name(1, {"seed": 1, "prompt": "word " * 30}) == "01-seed1-word-word-word-word-word-word-word-word.png"
    assert member_name(12, {}) == "12.png"


def test_only_the_outputs_folders_own_pngs_go_in(saved, tmp_path):
    root, items = saved
    stray = tmp_path / "102030-9.png"
    stray.write_bytes(open(items[0]["path"], "rb").read())
    os.symlink(stray, root / items[0]["path"].split(os.sep)[-2] / "102031-8.png")
    extra = [gallery.make_item(stray, SETTINGS), gallery.make_item(os.path.dirname(items[0]["path"]) + "/102031-8.png",
                                                                   SETTINGS),
             {"path": None}, "not an item", items[0]]  # the last: the same image twice
    archive = BatchZips(root, tmp_path / "zips").make(items + extra, now=NOW)
    assert archive.count == 3
    assert archive.skipped == ("4 images not saved in the outputs folder",)


def test_count_and_size_are_bounded(saved, tmp_path):
    root, items = saved
    size = os.path.getsize(items[0]["path"])
    archive = BatchZips(root, tmp_path / "zips", max_images=2).make(items, now=NOW)
    assert archive.count == 2 and "1 image left out: a zip holds at most 2 images" in archive.skipped[0]
    archive = BatchZips(root, tmp_path / "zips", max_bytes=size + 1).make(items, now=NOW)
    assert archive.count == 1


def test_no_saved_image_is_an_error(saved, tmp_path):
    root, _ = saved
    with pytest.raises(ArchiveError, match="the gallery is empty"):
        BatchZips(root, tmp_path / "zips").make([], now=NOW)
    with pytest.raises(ArchiveError, match="1 image not saved in the outputs folder"):
        BatchZips(root, tmp_path / "zips").make([gallery.make_item("/etc/passwd", {})], now=NOW)


def test_old_zips_are_removed_and_close_removes_the_folder(saved, tmp_path):
    root, items = saved
    zips = BatchZips(root, tmp_path / "zips", keep_seconds=60)
    first = zips.make(items[:1], now=NOW)
    second = zips.make(items[:2], now=time.time() + 30)
    assert first.path.exists() and second.path.exists()
    third = zips.make(items, now=time.time() + 120)  # both are older than a minute by then
    assert not first.path.exists() and not second.path.exists() and third.path.exists()
    zips.close()
    assert not (tmp_path / "zips").exists()


def test_by_default_a_private_folder_under_the_system_temp_folder(saved):
    root, items = saved
    zips = BatchZips(root)
    try:
        archive = zips.make(items, now=NOW)
        folder = archive.path.parent.parent
        assert folder.name.startswith("cascade-studio-zips-") and oct(folder.stat().st_mode & 0o777) == "0o700"
        assert archive.path.is_relative_to(tempfile.gettempdir())  # where Gradio serves returned files from
    finally:
        zips.close()
    assert not archive.path.exists()


def test_a_full_disk_is_reported(saved, tmp_path, monkeypatch):
    root, items = saved

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(zipfile.ZipFile, "write", full)
    with pytest.raises(ArchiveError, match="The zip could not be written: No space left on device"):
        BatchZips(root, tmp_path / "zips").make(items, now=NOW)
    assert list((tmp_path / "zips").iterdir()) == []
