"""Gallery actions of the page: reuse, variations, refine, compare (no server, no model)."""
import re

import pytest

import gradio as gr

from ui import gallery
from ui.generation import Services
from ui.handlers import Handlers, Reused
from ui.layout import build_app
from ui.model_holder import ModelHolder
from ui.outputs import OutputsWriter
from ui.presets import load_presets

SETTINGS = {"prompt": "cinematic photo of a fox, 35mm", "negative_prompt": "dark, drawing", "seed": 5, "width": 512,
            "height": 768, "prior_steps": 20, "prior_guidance": 4.0, "decoder_steps": 10, "decoder_guidance": 1.1,
            "style": "Photographic", "user_prompt": "a fox", "user_negative_prompt": "dark"}


@pytest.fixture
def handlers(tmp_path):
    return Handlers(Services(ModelHolder(), OutputsWriter(tmp_path)), load_presets())


@pytest.fixture
def items():
    return [gallery.make_item("/b.png", {**SETTINGS, "seed": 6, "prior_steps": 30}),
            gallery.make_item("/a.png", SETTINGS)]


def test_reuse_all_restores_the_prompt_as_typed_with_its_style(handlers, items):
    expected = ("a fox", "dark", "Photographic", 512, 768, 5, False, 20, 4.0, 10, 1.1)
    assert handlers.reuse_all(items, "/a.png") == expected


def test_reuse_all_without_a_known_style_uses_the_full_prompt(handlers):
    items = [gallery.make_item("/x.png", {**SETTINGS, "style": "Gone"})]
    assert handlers.reuse_all(items, "/x.png")[:3] == ("cinematic photo of a fox, 35mm", "dark, drawing", "None")


def test_reuse_seed_variations_refine(handlers, items):
    assert handlers.reuse_seed(items, "/b.png") == (6, False)
    variations = handlers.variations(items, "/a.png", 3)
    assert variations[6] is True and variations[-1] == 3  # random seeds, three images
    refine = handlers.refine(items, "/a.png")
    assert (refine[5], refine[6], refine[7], refine[9], refine[-1]) == (5, False, 30, 15, 1)


def test_variations_and_refine_change_only_their_controls(handlers, items):
    reused = handlers.reuse_all(items, "/a.png")
    assert handlers.variations(items, "/a.png", 3) == (*reused[:6], True, *reused[7:], 3)
    assert handlers.refine(items, "/a.png") == (*reused[:7], 30, 4.0, 15, 1.1, 1)
    capped = [gallery.make_item("/c.png", {**SETTINGS, "prior_steps": 150, "decoder_steps": 199})]
    assert handlers.refine(capped, "/c.png")[7:10] == (200, 4.0, 200)  # ×1.5, at most 200


def test_reused_controls_are_named_as_the_page_wires_them(tmp_path):
    app = build_app(Services(ModelHolder(), OutputsWriter(tmp_path)), load_presets())
    wired = {fn.fn.__name__: [o.elem_id for o in fn.outputs] for fn in app.fns.values()
             if getattr(fn.fn, "__name__", "") in ("reuse_all", "variations", "refine")}
    controls = [name.replace("_", "-") for name in Reused._fields]
    assert wired == {"reuse_all": controls, "variations": controls + ["num-images"],
                     "refine": controls + ["num-images"]}


def test_action_without_selection_is_a_message(handlers, items):
    with pytest.raises(gr.Error, match="Select an image"):
        handlers.reuse_seed(items, None)


def test_compare_view_needs_two_and_highlights_differences(handlers, items):
    assert handlers.compare_view(items, ["/a.png"])[1] is None
    images, table, note = handlers.compare_view(items, ["/a.png", "/b.png"])
    assert [path for path, _ in images] == ["/a.png", "/b.png"]
    assert note.startswith("2 setting(s) differ")
    css = table.to_html().split("</style>")[0]  # "#T_…_row2_col0, … { background-color: #fff3bf; … }"
    highlighted = {table.data.iloc[int(row), 0] for row in re.findall(r"_row(\d+)_col\d+", css)}
    assert highlighted == {"seed", "prior_steps"}
