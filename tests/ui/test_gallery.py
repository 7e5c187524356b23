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
