"""The AUTOMATIC1111 / Forge `parameters` text: prompts over several lines, quoted values, LoRA tags,
the Stable Cascade keys (this studio's and the A1111/Forge extension's), values the studio cannot take."""
import pytest

from cascade_core.images import a1111_parameters
from ui.infotext import A1111, A1111_STYLE, CASCADE_EXTENSION, FORGE, SD_NEXT, STUDIO, parse_parameters

A1111_TEXT = """masterpiece, best quality, (a red fox:1.2) sitting in the snow, <lora:add_detail:0.5>, <lora:fox_v2:0.8>
detailed fur, soft light, bokeh
Negative prompt: (worst quality, low quality:1.4), EasyNegative,
blurry, watermark
Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234567890, Size: 832x1216, \
Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Denoising strength: 0.35, Hires upscale: 1.5, \
Lora hashes: "add_detail: 7c6bad76eb54, fox_v2: 0123456789ab", TI hashes: "EasyNegative: c74b4e810b03", \
Version: v1.10.1"""


def test_a_realistic_a1111_text():
    found = parse_parameters(A1111_TEXT)
    assert found.source == A1111
    assert found.prompt == "masterpiece, best quality, (a red fox:1.2) sitting in the snow\ndetailed fur, soft light, bokeh"
    assert found.negative_prompt == "(worst quality, low quality:1.4), EasyNegative,\nblurry, watermark"
    assert (found.width, found.height, found.seed) == (832, 1216, 1234567890)
    assert (found.prior_steps, found.prior_guidance) == (28, 6.5)
    assert found.decoder_steps is None and found.decoder_guidance is None
    assert found.loras == (("add_detail", 0.5), ("fox_v2", 0.8))  # taken out of the prompt, which keeps its weights
    assert found.as_settings()["loras"] == [["add_detail", 0.5], ["fox_v2", 0.8]]
    assert "Taken out of the prompt: <lora:add_detail:0.5>, <lora:fox_v2:0.8>" in found.notes
    unused = next(note for note in found.notes if note.startswith("Not used"))
    # the quoted value is read whole: its commas and colons do not start new keys
    assert '"add_detail: 7c6bad76eb54, fox_v2: 0123456789ab"' in unused and "Sampler: DPM++ 2M" in unused
    assert "fox_v2: 0123456789ab\"" in unused and "Version" not in unused


def test_quoted_values_are_json_strings():
    text = 'a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 512x768, Comment: "say \\"hi\\", then: bye"'
    found = parse_parameters(text)
    assert (found.prompt, found.prior_steps, found.width, found.height) == ("a cat", 20, 512, 768)
    assert 'Comment: "say \\"hi\\", then: bye"' in found.notes[-1]


def test_a_last_line_with_fewer_than_three_pairs_is_still_prompt():
    found = parse_parameters("a poem\nin two lines: really, truly")
    assert found.prompt == "a poem\nin two lines: really, truly"
    assert found.prior_steps is None and found.notes == ()


def test_only_parameters_and_no_prompt():
    found = parse_parameters("Steps: 20, CFG scale: 7, Seed: 3, Size: 1024x1024")
    assert (found.prompt, found.negative_prompt, found.seed) == ("", "", 3)


def test_this_studios_own_parameters_text_reads_back_with_both_stages():
    settings = {"prompt": "a lighthouse, at dusk", "negative_prompt": "fog", "seed": 7, "width": 1024, "height": 1536,
                "prior_steps": 30, "prior_guidance": 4.5, "decoder_steps": 12, "decoder_guidance": 1.1, "model": "m",
                "version": "0.1"}
    found = parse_parameters(a1111_parameters(settings))
    assert found.source == STUDIO
    assert {k: v for k, v in found.as_settings().items()} == {k: settings[k] for k in settings
                                                               if k not in ("model", "version")}
    assert found.notes == ()  # its sampler name and model are the studio's own, not foreign settings


def test_the_stable_cascade_extension_for_a1111_and_forge():
    text = ("Model: StableCascade (lite/full/default)\nPrompt: a castle on a hill\nat night\n"
            "Negative: people\nSize: 1024x1536, Seed: 99, Scheduler: default, Steps(Prior/Decoder): 24/12, CFG: 4.5")
    found = parse_parameters(text)
    assert found.source == CASCADE_EXTENSION
    assert (found.prompt, found.negative_prompt) == ("a castle on a hill\nat night", "people")
    assert (found.width, found.height, found.seed) == (1024, 1536, 99)
    assert (found.prior_steps, found.decoder_steps, found.prior_guidance) == (24, 12, 4.5)
    assert found.notes[0] == "Models: StableCascade (lite/full/default)"


@pytest.mark.parametrize("version, app, source", [
    ("f2.0.1v1.10.1-previous-313-g8a042934", None, FORGE), ("v1.9.4", None, A1111), ("", "SD.Next", SD_NEXT),
    ("", None, A1111_STYLE),
])
def test_the_tool_is_named(version, app, source):
    tail = (f", Version: {version}" if version else "") + (f", App: {app}" if app else "")
    assert parse_parameters(f"x\nSteps: 20, CFG scale: 7, Seed: 1{tail}").source == source


@pytest.mark.parametrize("pairs, note", [
    ("Steps: 500, CFG scale: 7, Seed: 1", "composition steps 500 is outside the studio's 1–200"),
    ("Steps: 20, CFG scale: 45, Seed: 1", "composition guidance 45 is outside the studio's 0–30"),
    ("Steps: 20, CFG scale: 7, Seed: -1", "seed -1 is outside"),
    ("Steps: 20, CFG scale: 7, Seed: 1, Size: 4096x512", "width 4096 is outside the studio's 256–2048"),
    ("Steps: twenty, CFG scale: 7, Seed: 1", "composition steps 'twenty' is not a whole number"),
    ("Steps: 20, CFG scale: nan, Seed: 1", "composition guidance 'nan' is not a number"),
    ("Steps: 20, CFG scale: 7, Size: big", "Size 'big' is not WIDTHxHEIGHT"),
])
def test_values_the_controls_cannot_take_are_left_out_with_a_note(pairs, note):
    found = parse_parameters(f"a fox\n{pairs}")
    assert any(n.startswith(note) for n in found.notes), found.notes
    assert found.prompt == "a fox"


def test_a_huge_text_makes_bounded_notes():
    pairs = ", ".join(f"Key{k}: {'v' * 1000}" for k in range(2000))
    found = parse_parameters(f"a fox\nSteps: 20, CFG scale: 7, Seed: 1, {pairs}")
    assert found.prior_steps == 20 and max(len(n) for n in found.notes) <= 300


def test_extra_network_tags():
    found = parse_parameters("<lora:a:1.5:0.5> a fox, <LORA:dir\\b.safetensors>, <hypernet:h:1>, <lora:a:0.5>\n"
                             "Steps: 20, CFG scale: 7, Seed: 1")
    assert found.prompt == "a fox"
    assert found.loras == (("a", 2.0), ("b", 1.0))  # a LoRA named twice: strengths added, as the engine wants
    assert "Hypernetwork h not used (the studio has none)" in found.notes
    assert parse_parameters("<lora:a:x> fox\nSteps: 20, CFG scale: 7, Seed: 1").notes[0].startswith("LoRA 'a' with")
