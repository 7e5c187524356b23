"""Bad input through the page and API handlers: a message naming the field, never a crash; notices shown."""
import html
from types import SimpleNamespace

import gradio as gr
import pytest

from ui.fields import FIELD_CONTROLS
from ui.generation import Services
from ui.handlers import Handlers, PageOut
from ui.outputs import OutputsWriter
from ui.presets import load_presets

from .test_generation import FakeHolder

GOOD = dict(prompt="a fox", negative_prompt="", width=256, height=256, seed=3, prior_steps=1, prior_guidance=4.0,
            decoder_steps=1, decoder_guidance=1.1, num_images=1)
SESSION = SimpleNamespace(session_hash="s")


@pytest.fixture(scope="module")
def handlers(tmp_path_factory, demo_model):
    writer = OutputsWriter(tmp_path_factory.mktemp("outputs"))
    return Handlers(Services(FakeHolder(demo_model, polls=0), writer), load_presets())


@pytest.fixture
def shown(monkeypatch):
    """Messages the handlers show as toasts."""
    messages = []
    monkeypatch.setattr(gr, "Info", messages.append)
    monkeypatch.setattr(gr, "Warning", messages.append)
    return messages


def page(handlers, **fields):
    f = {**GOOD, **fields}
    return list(handlers.ui_generate(f["prompt"], f["negative_prompt"], f["width"], f["height"], f["seed"], False,
                                     f["prior_steps"], f["prior_guidance"], f["decoder_steps"], f["decoder_guidance"],
                                     f["num_images"], "None", [], SESSION))


def api(handlers, **fields):
    f = {**GOOD, **fields}
    return list(handlers.api_generate(*f.values(), SESSION))


@pytest.mark.parametrize("field, value, message", [
    ("prompt", "x" * 10_001, "prompt: is 10,001 characters long; the limit is 10,000"),
    ("negative_prompt", "y" * 20_000, "negative_prompt: is 20,000 characters long"),
    ("width", 8192, "width: 8192 px is outside 256–2048 px"), ("height", 0, "height: 0 px is outside"),
    ("width", "<b>wide</b>", "width: must be a whole number, got &#x27;&lt;b&gt;wide&lt;/b&gt;&#x27;"),
    ("prior_steps", 0, "prior_steps: 0 is outside 1–200"), ("decoder_steps", 201, "decoder_steps: 201 is outside"),
    ("prior_guidance", -0.5, "prior_guidance: -0.5 is outside 0–30"), ("decoder_guidance", 31, "outside 0–30"),
    ("prior_guidance", float("nan"), "prior_guidance: must be a finite number, got nan"),
    ("decoder_guidance", float("inf"), "must be a finite number, got inf"),
    ("num_images", 0, "num_images: 0 is outside 1–8"), ("num_images", 99, "num_images: 99 is outside"),
    ("seed", 2**60, "seed: 1152921504606846976 is outside 0–"), ("seed", 1.5, "seed: must be a whole number"),
])
def test_bad_fields_are_messages_in_the_page_and_the_api(handlers, shown, field, value, message):
    *_, last = page(handlers, **{field: value})
    out = PageOut(*last)
    text = html.unescape(message)  # toasts render HTML, so they get the message escaped; Markdown and the API not
    assert out.status.startswith("**Not generated:** ") and text in out.status.replace("\\", "")
    assert f'data-control="{FIELD_CONTROLS[field]}"' in out.error  # the page marks the control with the message
    assert len(shown) == 1 and message in shown[0]
    with pytest.raises(gr.Error) as error:
        api(handlers, **{field: value})
    assert text in str(error.value)


def test_negative_seed_means_random_and_an_empty_prompt_runs(handlers, shown):
    *_, last = api(handlers, prompt="", seed=-1, negative_prompt="fox " * 230 + "snow city")
    assert last[4].startswith("Done") and 0 <= last[3]["seeds"][0] < 2**32
    notice = next(m for m in shown if "CLIP tokens" in m)  # beyond 3 windows: the user is told what was dropped
    assert notice.startswith("The negative prompt does not fit in 3 windows") and notice.endswith("snow city")


def test_control_characters_are_removed_with_a_notice(handlers, shown):
    *_, last = api(handlers, prompt="a fox\x00\x1b in the snow 🦊")
    assert last[3]["images"][0]["prompt"] == "a fox in the snow 🦊"
    assert "2 control characters removed from the prompt" in shown
