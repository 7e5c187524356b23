"""Gallery items, captions, the compare diff and the compare selection."""
from ui import gallery


def test_caption_and_newest_first():
    a = gallery.make_item("/a.png", {"seed": 1, "width": 1024, "height": 768, "seconds": 3.14159})
    b = gallery.make_item("/b.png", {"seed": 2, "width": 512, "height": 512})
    assert a["caption"] == "seed 1 · 1024×768 · 3.1 s"
    items = gallery.add_items(gallery.add_items([], [a]), [b])
    assert gallery.gallery_value(items) == [("/b.png", b["caption"]), ("/a.png", a["caption"])]


def test_diff_rows_flag_only_differing_settings():
    rows, differs = gallery.diff_rows([
        {"prompt": "fox", "seed": 1, "prior_steps": 20, "prior_guidance": 4.0},
        {"prompt": "fox", "seed": 2, "prior_steps": 20, "prior_guidance": 4.0, "style": "Photographic"},
    ])
    table = {row[0]: (row[1:], d) for row, d in zip(rows, differs)}
    assert [row[0] for row in rows] == ["prompt", "seed", "prior_steps", "prior_guidance", "style"]
    assert table["seed"] == (["1", "2"], True)
    assert table["prompt"] == (["fox", "fox"], False)
    assert table["prior_guidance"] == (["4", "4"], False)
    assert table["style"] == (["—", "Photographic"], True)


def test_toggle_compare_keeps_at_most_four():
    chosen = []
    for key in "abcde":
        chosen = gallery.toggle_compare(chosen, key)
    assert chosen == ["b", "c", "d", "e"]
    assert gallery.toggle_compare(chosen, "c") == ["b", "d", "e"]


def test_caption_with_steps_keeps_to_about_40_characters():
    settings = {"seed": 42, "width": 1024, "height": 1024, "seconds": 12.34, "prior_steps": 20, "decoder_steps": 10}
    assert gallery.caption(settings) == "seed 42 · 1024×1024 · 12.3 s · 20+10 steps"
    long_seed = gallery.caption({**settings, "seed": 3141592653})
    assert long_seed == "seed 3141592653 · 1024×1024 · 12.3 s · 20+10"  # a random run's seed: the word goes
    assert len(long_seed) <= gallery.MAX_CAPTION_CHARS
    assert gallery.caption({**settings, "mode": "remix", "seconds": None}) == "seed 42 · 1024×1024 · remix · 20+10 steps"
    assert gallery.caption({"seed": 1, "width": 8, "height": 8, "prior_steps": True, "decoder_steps": 2}) == \
        "seed 1 · 8×8"  # a flag is not a step count


def test_remove_item_drops_only_that_image():
    a, b = gallery.make_item("/a.png", {"seed": 1}), gallery.make_item("/b.png", {"seed": 2})
    assert gallery.remove_item([a, b], "/a.png") == [b]
    assert gallery.remove_item([a, b], "/c.png") == [a, b]
