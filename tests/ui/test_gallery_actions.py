"""Gallery actions of the page: select, reuse, one-off runs' requests, remove, compare (no server, no model)."""
import pytest

import gradio as gr

from ui import gallery
from ui.gallery_actions import GalleryActions, Reused
from ui.generation import Services
from ui.layout import build_app
from ui.model_holder import ModelHolder
from ui.outputs import OutputsWriter
from ui.presets import load_presets

SETTINGS = {"prompt": "cinematic photo of a fox, 35mm", "negative_prompt": "dark, drawing", "seed": 5, "width": 512,
            "height": 768, "prior_steps": 20, "prior_guidance": 4.0, "decoder_steps": 10, "decoder_guidance": 1.1,
            "style": "Photographic", "user_prompt": "a fox", "user_negative_prompt": "dark"}


@pytest.fixture
def actions(tmp_path):
    return GalleryActions(Services(ModelHolder(), OutputsWriter(tmp_path)), load_presets())


@pytest.fixture
def items():
    return [gallery.make_item("/b.png", {**SETTINGS, "seed": 6, "prior_steps": 30}),
            gallery.make_item("/a.png", SETTINGS)]


class Selected:
    def __init__(self, index):
        self.index = index


NO_LORAS = (None, 1.0) * 3  # the three LoRA slots emptied


def test_reuse_all_restores_the_prompt_as_typed_with_its_style(actions, items):
    expected = ("a fox", "dark", "Photographic", 512, 768, 5, False, 20, 4.0, 10, 1.1, *NO_LORAS)
    assert actions.reuse_all(items, "/a.png") == expected


def test_reuse_all_puts_the_images_loras_back_in_the_slots(actions):
    """The first three LoRAs, strengths held to the sliders' ±2; malformed entries of a settings file skipped."""
    loras = [["fernando", 0.8], ["bad"], ["owner/repo/style.safetensors", 3.5], [7, 1.0], ["x", -0.5], ["y", 1.0]]
    items = [gallery.make_item("/l.png", {**SETTINGS, "loras": loras})]
    assert actions.reuse_all(items, "/l.png")[-6:] == ("fernando", 0.8, "owner/repo/style.safetensors", 2.0, "x", -0.5)


def test_reuse_all_without_a_known_style_uses_the_full_prompt(actions):
    items = [gallery.make_item("/x.png", {**SETTINGS, "style": "Gone"})]
    assert actions.reuse_all(items, "/x.png")[:3] == ("cinematic photo of a fox, 35mm", "dark, drawing", "None")


def test_reuse_seed_and_one_off_actions_read_the_selection(actions, items):
    assert actions.reuse_seed(items, "/b.png") == (6, False)
    once = actions.once("refine")(items, "/b.png", 3)
    assert once == {"path": "/b.png", "settings": items[0]["settings"], "action": "refine", "count": 3}


def test_reused_controls_are_named_as_the_page_wires_them(tmp_path):
    app = build_app(Services(ModelHolder(), OutputsWriter(tmp_path)), load_presets())
    wired = {fn.fn.__name__: [o.elem_id for o in fn.outputs] for fn in app.fns.values()
             if getattr(fn.fn, "__name__", "") == "reuse_all"}
    slots = [f"lora{part}-{k}" for k in (1, 2, 3) for part in ("", "-strength")]
    assert wired == {"reuse_all": [name.replace("_", "-") for name in Reused._fields] + slots}


def test_one_off_actions_never_write_the_controls(tmp_path):
    """Variations, Refine, Vary and Upscale run once: their buttons only fill the one-off state."""
    app = build_app(Services(ModelHolder(), OutputsWriter(tmp_path)), load_presets())
    reads = [fn for fn in app.fns.values() if getattr(fn.fn, "__name__", "") == "read"]
    assert len(reads) == 5 and all([type(o).__name__ for o in fn.outputs] == ["State"] for fn in reads)


def test_action_without_selection_is_a_message(actions, items):
    with pytest.raises(gr.Error, match="Select an image"):
        actions.reuse_seed(items, None)


def test_select_shows_the_image_on_the_canvas_with_its_summary(actions, items):
    path, canvas, summary, detail, download, confirm = actions.select(items, Selected(1))
    assert path == canvas == download == "/a.png" and detail["visible"] is True and confirm["visible"] is False
    assert "a fox" in summary and "**Composition steps** 20" in summary and "**Size** 512×768" in summary
    assert "prior_steps" not in summary and "user_prompt" not in summary
    assert actions.select(items, Selected(5))[0] is None


def test_remove_takes_the_image_out_of_the_gallery_and_the_comparison(actions, items):
    value, left, chosen, tab, *selection = actions.remove(items, "/a.png", ["/a.png", "/b.png"])
    assert [i["path"] for i in left] == ["/b.png"] and chosen == ["/b.png"] and tab["label"] == "Compare (1)"
    assert selection[0] is None and value == [("/b.png", items[0]["caption"])]


def test_compare_shows_only_what_differs_in_words(actions, items):
    assert "Choose 2–4 images" in actions.compare_view(items, ["/a.png"])
    page = actions.compare_view(items, ["/a.png", "/b.png"])
    assert page.count("<figure>") == 2 and "A/B wipe" in page
    assert "<th>Seed</th>" in page and "<th>Composition steps</th>" in page
    assert "Prompt" not in page and "Detail steps" not in page  # the same in both


def test_compare_picks_are_remembered_by_name_and_restored_if_still_shown(actions, tmp_path):
    day = tmp_path / "2026-12-02"
    items = [gallery.make_item(day / "010101-1.png", SETTINGS), gallery.make_item(day / "010102-2.png", SETTINGS)]
    names = actions.remember_compare([items[1]["path"], "/elsewhere.png"])
    assert names == ["2026-12-02/010102-2.png"]
    chosen, tab = actions.restore_compare(names + ["2026-12-02/gone.png"], items)
    assert chosen == [items[1]["path"]] and tab["label"] == "Compare (1)"
