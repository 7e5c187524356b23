"""Settings read back from PNGs built here with Pillow, one per tool, and every way a file can fail:
each failure is a PngSettingsError with a message for the user, never another exception."""
import json
import zlib

import pytest
from PIL import Image, PngImagePlugin

from cascade_core.images import a1111_parameters
from ui import png_settings
from ui.outputs import OutputsWriter
from ui.png_settings import NO_SETTINGS, PngSettingsError, describe, read_png_settings

from .comfy_graphs import CASCADE_WORKFLOW, POSITIVE, cascade_prompt
from .test_infotext import A1111_TEXT

STUDIO_SETTINGS = {"prompt": "cinematic photo of a fox, 35mm", "negative_prompt": "drawing", "seed": 42, "width": 1024,
                   "height": 768, "prior_steps": 20, "prior_guidance": 4.0, "decoder_steps": 10,
                   "decoder_guidance": 1.1, "model": "m", "version": "0.1", "style": "Photographic",
                   "user_prompt": "a fox", "user_negative_prompt": "", "seconds": 3.2, "mode": "text"}


def png(tmp_path, name="x.png", **chunks) -> str:
    """An 8×8 PNG with these text chunks (tEXt, as A1111 and ComfyUI write them)."""
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value if isinstance(value, str) else json.dumps(value))
    path = tmp_path / name
    Image.new("RGB", (8, 8), "teal").save(path, pnginfo=info)
    return str(path)


def test_this_studios_png(tmp_path):
    saved = OutputsWriter(tmp_path).save(Image.new("RGB", (8, 8)), STUDIO_SETTINGS)
    found = read_png_settings(saved.path)
    assert found.source == "Cascade Studio" and found.notes == ()
    expected = {k: STUDIO_SETTINGS[k] for k in ("prompt", "negative_prompt", "seed", "width", "height", "prior_steps",
                                                "prior_guidance", "decoder_steps", "decoder_guidance", "style",
                                                "user_prompt", "user_negative_prompt")}
    assert found.as_settings() == expected  # what ui/handlers reuses for an image in the gallery


def test_a_studio_pngs_loras_keep_their_names(tmp_path):
    loras = [["owner/repo/styles/paper.safetensors", 0.8], ["fernando", 1.0], ["bad"]]
    saved = OutputsWriter(tmp_path).save(Image.new("RGB", (8, 8)), {**STUDIO_SETTINGS, "loras": loras})
    found = read_png_settings(saved.path)
    assert found.loras == (("owner/repo/styles/paper.safetensors", 0.8), ("fernando", 1.0)) and found.notes == ()


def test_a_studio_png_made_from_a_picture_says_so(tmp_path):
    saved = OutputsWriter(tmp_path).save(Image.new("RGB", (8, 8)), {**STUDIO_SETTINGS, "mode": "remix"})
    assert "remix mode" in read_png_settings(saved.path).notes[0]


def test_a_studio_png_without_its_json_chunk_reads_the_parameters_text(tmp_path):
    found = read_png_settings(png(tmp_path, prompt="a fox", parameters=a1111_parameters(STUDIO_SETTINGS)))
    assert found.source == "Cascade Studio"  # its plain `prompt` chunk is not taken for a ComfyUI graph
    assert (found.prompt, found.decoder_steps, found.decoder_guidance) == (STUDIO_SETTINGS["prompt"], 10, 1.1)


def test_an_a1111_png(tmp_path):
    found = read_png_settings(png(tmp_path, parameters=A1111_TEXT))
    assert (found.source, found.width, found.height, found.seed, found.prior_steps) == ("AUTOMATIC1111", 832, 1216,
                                                                                          1234567890, 28)
    assert found.notes[-1].startswith("No detail (Stage B) steps or guidance")


def test_an_a1111_png_with_a_compressed_itxt_chunk(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_itxt("parameters", A1111_TEXT, zip=True)
    path = tmp_path / "i.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    assert read_png_settings(path).seed == 1234567890


def test_a_comfyui_stable_cascade_png(tmp_path):
    found = read_png_settings(png(tmp_path, prompt=cascade_prompt(), workflow=CASCADE_WORKFLOW))
    assert found.source == "ComfyUI" and found.prompt == POSITIVE  # the `prompt` graph wins over the workflow
    assert (found.prior_steps, found.prior_guidance, found.decoder_steps, found.decoder_guidance) == (20, 4.0, 10, 1.1)


def test_a_comfyui_png_with_a_broken_prompt_chunk_falls_back_to_its_workflow(tmp_path):
    found = read_png_settings(png(tmp_path, prompt='{"3": {"class_type": "KSampl', workflow=CASCADE_WORKFLOW))
    assert (found.source, found.prior_steps, found.decoder_steps) == ("ComfyUI", 24, 12)


def test_a_comfyui_png_with_a_custom_saver_falls_back_to_its_parameters(tmp_path):
    found = read_png_settings(png(tmp_path, prompt={"1": {"class_type": "Note", "inputs": {}}}, parameters=A1111_TEXT))
    assert found.source == "AUTOMATIC1111"


@pytest.mark.parametrize("chunks, message", [
    ({}, NO_SETTINGS),
    ({"Software": "GIMP 2.10", "Comment": "holiday"}, NO_SETTINGS),
    ({"parameters": "   "}, NO_SETTINGS),
    ({"prompt": '{"3": {"inputs": '}, "its `prompt` text is not valid JSON (Expecting value, line 1 column 18)"),
    ({"workflow": "[" * 100_000 + "]" * 100_000}, "nested too deeply"),
    ({"prompt": {"1": {"class_type": "SaveImage", "inputs": {}}}}, "has no sampler"),
    ({"cascade_studio": "[1, 2]"}, "not an object of settings"),
])
def test_pngs_without_usable_settings_say_why(tmp_path, chunks, message):
    with pytest.raises(PngSettingsError) as e:
        read_png_settings(png(tmp_path, **chunks))
    assert message in str(e.value)
    if message != NO_SETTINGS:
        assert str(e.value).startswith("This PNG has generation settings, but they could not be read")


def test_a_huge_chunk_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(png_settings, "MAX_CHUNK_CHARS", 1000)
    with pytest.raises(PngSettingsError, match="its `parameters` text is 2,000 characters, more than the 1,000 read"):
        read_png_settings(png(tmp_path, parameters="x" * 2000))


def test_a_compressed_chunk_that_expands_past_pillows_limit(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a" * (PngImagePlugin.MAX_TEXT_CHUNK + 1), zip=True)  # a few kB on disk
    path = tmp_path / "bomb.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    assert path.stat().st_size < 10_000
    with pytest.raises(PngSettingsError, match="metadata is too large to read"):
        read_png_settings(path)


def test_a_decompression_bomb_is_refused_by_pillows_limit(tmp_path, monkeypatch):
    path = png(tmp_path, parameters=A1111_TEXT)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # 8×8 = 64 pixels > 2 × 10
    with pytest.raises(PngSettingsError, match="more than 20 pixels, too many to open safely"):
        read_png_settings(path)


def test_a_file_over_the_size_limit_is_not_opened(tmp_path, monkeypatch):
    monkeypatch.setattr(png_settings, "MAX_FILE_BYTES", 100)
    monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("opened"))
    with pytest.raises(PngSettingsError, match="settings are read from PNGs up to"):
        read_png_settings(png(tmp_path, parameters=A1111_TEXT))


@pytest.mark.parametrize("make, message", [
    (lambda p: Image.new("RGB", (8, 8)).save(p, "JPEG"), "not a PNG image"),
    (lambda p: p.write_text("Steps: 20, Sampler: Euler a, CFG scale: 7"), "not a PNG image"),
    (lambda p: p.write_bytes(b""), "not a PNG image"),
    (lambda p: None, "could not be read"),
    (lambda p: p.mkdir(), "damaged"),
])
def test_files_that_are_not_pngs(tmp_path, make, message):
    path = tmp_path / "file.png"
    make(path)
    with pytest.raises(PngSettingsError, match=message):
        read_png_settings(path)


def test_a_png_cut_short_in_its_text(tmp_path):
    path = png(tmp_path, parameters=A1111_TEXT)
    data = open(path, "rb").read()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: data.index(b"parameters") + 100])
    with pytest.raises(PngSettingsError, match="damaged"):
        read_png_settings(cut)


def test_a_png_with_a_bad_compressed_chunk(tmp_path):
    path = png(tmp_path)
    data = open(path, "rb").read()
    body = b"parameters\0\0" + b"not zlib"
    chunk = len(body).to_bytes(4, "big") + b"zTXt" + body + zlib.crc32(b"zTXt" + body).to_bytes(4, "big")
    bad = tmp_path / "bad.png"
    bad.write_bytes(data[:33] + chunk + data[33:])  # after the 8-byte signature and the 25-byte IHDR
    with pytest.raises(PngSettingsError, match=NO_SETTINGS[:30]):  # Pillow skips a chunk that does not inflate
        read_png_settings(bad)


def test_describe_lists_what_was_set_and_the_notes_as_escaped_markdown(tmp_path):
    found = read_png_settings(png(tmp_path, prompt=cascade_prompt()))
    text = describe(found)
    assert text.startswith("Settings read from this PNG, made by **ComfyUI**: prompt, negative prompt, size 1024×1536, "
                           "seed 314307448448003, composition 20 steps / 4 guidance, detail 10 steps / 1.1 guidance.")
    assert "\n- Not used \\(the studio has its own sampler\\)" in text
