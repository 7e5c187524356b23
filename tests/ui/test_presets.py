"""Preset files: the shipped ones load; malformed ones give errors naming the file and the entry."""
import json

import pytest

from ui.presets import PresetError, apply_style, load_presets


def write(folder, quality=None, sizes=None, styles=None):
    defaults = {
        "quality.json": {"balanced": {"prior_steps": 20, "prior_guidance": 4.0, "decoder_steps": 10,
                                      "decoder_guidance": 1.1}},
        "sizes.json": {"1:1": {"width": 1024, "height": 1024}},
        "styles.json": {"None": {"prompt": "{prompt}"}},
    }
    for name, data in (("quality.json", quality), ("sizes.json", sizes), ("styles.json", styles)):
        (folder / name).write_text(data if isinstance(data, str) else json.dumps(data or defaults[name]))
    return folder


def test_shipped_presets_load_with_balanced_default():
    presets = load_presets()
    assert list(presets.quality) == ["draft", "balanced", "quality", "max"]
    balanced = presets.quality["balanced"]
    assert (balanced["prior_steps"], balanced["decoder_steps"]) == (20, 10)
    for q in presets.quality.values():  # Stage C is cheap: presets spend more steps there than on Stage B
        assert q["prior_steps"] > q["decoder_steps"]
    assert set(presets.sizes) == {"1:1", "4:3", "3:4", "3:2", "2:3", "16:9", "9:16", "21:9"}
    for width, height in presets.sizes.values():
        assert width % 8 == 0 and height % 8 == 0
        assert 0.9e6 < width * height < 1.15e6  # around one megapixel
    assert all(style["prompt"].count("{prompt}") == 1 for style in presets.styles.values())


@pytest.mark.parametrize("kwargs, message", [
    ({"quality": "{not json"}, r"quality.json: invalid JSON at line 1"),
    ({"quality": {"balanced": {"prior_steps": 20}}}, r"'balanced' lacks decoder_guidance, decoder_steps"),
    ({"quality": {"balanced": {"prior_steps": 2.5, "prior_guidance": 4, "decoder_steps": 10,
                               "decoder_guidance": 1}}}, r"prior_steps must be a whole number"),
    ({"quality": {"fast": {"prior_steps": 2, "prior_guidance": 4, "decoder_steps": 1, "decoder_guidance": 1}}},
     r"'balanced' is missing"),
    ({"sizes": {"odd": {"width": 1001, "height": 1024}}}, r"'odd': 1001×1024 must be multiples of 8"),
    ({"sizes": {"big": {"width": 4096, "height": 1024}}}, r"width = 4096 is outside"),
    ({"styles": {"bad": {"prompt": "no placeholder"}}}, r"style 'bad': 'prompt' must be text containing \{prompt\}"),
    ({"styles": [1]}, r"styles.json: expected a non-empty JSON object"),
])
def test_malformed_presets_are_clear_errors(tmp_path, kwargs, message):
    with pytest.raises(PresetError, match=message):
        load_presets(write(tmp_path, **kwargs))


def test_missing_file(tmp_path):
    with pytest.raises(PresetError, match="sizes.json: file not found"):
        write(tmp_path)
        (tmp_path / "sizes.json").unlink()
        load_presets(tmp_path)


def test_apply_style_replaces_literally_and_joins_negatives():
    style = {"prompt": "photo of {prompt}, {sharp}", "negative_prompt": "blurry"}
    assert apply_style(style, "a {cat}", "dark") == ("photo of a {cat}, {sharp}", "dark, blurry")
    assert apply_style(style, "x", "") == ("photo of x, {sharp}", "blurry")
    assert apply_style(None, "x", "y") == ("x", "y")
