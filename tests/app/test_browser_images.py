"""The image panel in real headless Chromium, on the demo model at 256×256 with few steps: every mode runs and
shows its image (and the edge map or mask while it runs), Repaint with a mask painted with the brush, the
gallery's Upscale 2×, Vary and Use as input, and bad pictures answered with the engine's message.

Screenshots go to the `screenshots` folder (docs/screenshots/ when docs/refresh_screenshots.py runs this file).
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image, ImageDraw

from cascade_core.images import read_settings
from cascade_core.picture import Picture

from .studio_page import (UI_TIMEOUT_MS, WATCH_RUN, choose_mode, gallery_count, needs_chromium,
                          open_image_panel, open_small_run_studio, paint_stroke, select, set_number, shot, shown_image,
                          thumbnails, upload_picture, wait_done, wait_gallery_count)

sync_api = needs_chromium(allow_module_level=True)
expect = sync_api.expect


def landscape(width: int, height: int) -> Image.Image:
    """A picture with clear edges: sky, sun, hills, a house."""
    image = Image.new("RGB", (width, height), (120, 175, 230))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width * 0.62, height * 0.1, width * 0.86, height * 0.34), fill=(255, 214, 80))
    hills = [(0, 0.7), (0.35, 0.45), (0.7, 0.68), (1, 0.55), (1, 1), (0, 1)]
    draw.polygon([(width * x, height * y) for x, y in hills], fill=(70, 140, 70))
    draw.rectangle((width * 0.18, height * 0.55, width * 0.4, height * 0.78), fill=(190, 90, 60))
    draw.polygon([(width * 0.15, height * 0.56), (width * 0.29, height * 0.42), (width * 0.43, height * 0.56)],
                 fill=(120, 50, 40))
    return image


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pictures")
    paths = {"landscape": folder / "landscape.png", "tiny": folder / "tiny.png", "notes": folder / "notes.png"}
    landscape(256, 256).save(paths["landscape"])
    landscape(64, 64).save(paths["tiny"])
    paths["notes"].write_text("not a picture, whatever the name says")
    return paths


@pytest.fixture(scope="module")
def page(browser, demo_studio):
    """One tab, kept across the tests in order; 256×256 at 4 + 3 steps."""
    page = open_small_run_studio(browser, demo_studio.url)
    page.fill("#prompt textarea", "a house on a green hill, sunny day")
    yield page
    page.close()


def run(page, button: str = "#generate-btn") -> dict:
    """Press `button`, wait for one more gallery image and the end of the run; when the control map and the
    final image first showed (ms)."""
    count = gallery_count(page)
    page.evaluate(WATCH_RUN)
    page.click(button)
    wait_gallery_count(page, count + 1)
    wait_done(page)
    return page.evaluate("() => window.__run")


def newest_caption(page) -> str:
    return thumbnails(page).nth(0).inner_text()


def details(page) -> str:
    return page.locator("#summary").inner_text()


def saved_settings(demo_studio, key: str, value) -> list[dict]:
    return [s for s in (read_settings(p) for p in demo_studio.outputs.glob("*/*.png")) if s.get(key) == value]


def test_panel_is_closed_by_default_then_a_remix(page, pictures, demo_studio, screenshots):
    assert not page.locator("#picture").is_visible()  # text to image stays simple
    expect(page.locator("#image-panel")).to_contain_text("Image input")
    open_image_panel(page)
    upload_picture(page, pictures["landscape"])
    expect(page.locator("#run-status")).to_have_text("Picture: 256×256 px.", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#image-panel .label-wrap")).to_contain_text("Image input: Remix", timeout=UI_TIMEOUT_MS)
    assert page.locator("#strength").is_visible() and not page.locator("#margin").is_visible()
    run(page)
    assert re.search(r"seed \d+ · 256×256 · remix", newest_caption(page))
    select(page, 0)
    digest = f"sha256:{Picture.open(pictures['landscape']).digest}"
    text = details(page)
    for label, value in (("Mode", "remix"), ("Strength", "0.8"), ("Remixed picture", "a picture")):
        assert re.search(rf"{label}\s+{value}(\s|$)", text), label
    saved = saved_settings(demo_studio, "init_image", digest)  # the PNG records mode, strength and the input's hash
    assert saved and {(s["mode"], s["strength"]) for s in saved} == {("remix", 0.8)}
    shot(page, screenshots, "8-image-remix")


@pytest.mark.parametrize("mode, size, map_shown, screenshot", [
    ("Image prompt", "256×256", False, "12-image-prompt"),
    ("Edges", "256×256", True, "9-image-edges"),
    ("Extend", "256×256", True, "13-image-extend"),  # 256 + 2 × 32 a side, at the request's area
    ("Upscale 2×", "512×512", False, "14-image-upscale"),
])
def test_each_mode_runs_and_shows_an_image(page, screenshots, mode, size, map_shown, screenshot):
    open_image_panel(page)
    choose_mode(page, mode)
    if mode == "Extend":
        set_number(page, "#margin", 32)
    expect(page.locator("#control-map")).to_be_visible(visible=map_shown, timeout=UI_TIMEOUT_MS)
    seen = run(page)
    name = mode.lower().replace("upscale 2×", "upscale")
    assert f"{size} · {name}" in newest_caption(page)
    expect(page.locator("#canvas img")).to_be_visible()
    if map_shown:  # the edge map or mask, shown while the run goes on
        assert seen.get("map") and seen["map"] < seen["final"], seen
        assert page.locator("#control-map img").is_visible()
    if mode == "Edges":
        edges = np.asarray(shown_image(page, "#control-map img").convert("L"))
        assert edges.max() > 128 and (edges > 128).mean() < 0.5  # white edges on black
    shot(page, screenshots, screenshot)  # the result, with the control map where the mode has one


def test_repaint_with_a_painted_mask(page, pictures, demo_studio, screenshots):
    open_image_panel(page)
    choose_mode(page, "Repaint")
    expect(page.locator("#strength input[type=number]")).to_have_value("1", timeout=UI_TIMEOUT_MS)  # Repaint's own
    page.locator("#mask-editor canvas").first.wait_for()
    paint_stroke(page, (0.3, 0.5), (0.7, 0.5))  # across the middle
    seen = run(page)
    assert seen.get("map") and seen["map"] < seen["final"], seen
    assert "256×256 · repaint" in newest_caption(page)
    mask = np.asarray(shown_image(page, "#control-map img").convert("L")) > 128  # the mask the ControlNet saw
    h, w = mask.shape
    assert mask[h // 2, w // 2] and not mask[h // 10, w // 10] and not mask[h - h // 10, w // 2]
    select(page, 0)
    assert re.search(r"Mask\s+a picture(\s|$)", details(page))
    saved = saved_settings(demo_studio, "mode", "repaint")
    assert saved and all(s["mask"].startswith("sha256:") for s in saved)
    page.locator("#mask-editor").scroll_into_view_if_needed()
    shot(page, screenshots, "10-image-repaint", top=False)


def test_gallery_upscale_vary_and_use_as_input_leave_the_controls(page, screenshots):
    seed_before = page.locator("#seed input").input_value()
    select(page, 0)  # the repainted 256×256 image
    run(page, "#upscale-btn")
    assert re.search(r"512×512 · upscale", newest_caption(page))
    select(page, 0)
    assert re.search(r"Mode\s+upscale(\s|$)", details(page))
    set_number(page, "#var-count", 1)
    for button, strength, repainted in (("#vary-subtle-btn", "0.35", 1), ("#vary-strong-btn", "0.7", 2)):
        select(page, repainted)  # the 256×256 repainted image (newer images come first)
        run(page, button)
        assert "256×256 · remix" in newest_caption(page)
        select(page, 0)
        assert re.search(rf"Strength\s+{strength}(\s|$)", details(page))
    # the controls for the next Generate are as they were
    expect(page.locator("#image-mode input[value='Repaint']")).to_be_checked()
    assert page.locator("#seed input").input_value() == seed_before
    page.click("#use-input-btn")  # the selected image into the panel
    expect(page.locator("#picture img")).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page.locator("#image-panel .label-wrap")).to_contain_text("Image input: Repaint")
    select(page, 2)  # the upscaled image, for the screenshot of the gallery and its buttons
    page.locator("#gallery").evaluate("gallery => gallery.scrollIntoView({block: 'start'})")
    shot(page, screenshots, "11-image-gallery-actions", top=False)


def test_bad_pictures_show_the_engines_message(page, pictures):
    open_image_panel(page)
    upload_picture(page, pictures["notes"])  # a text file named .png
    message = "picture: this file is not a picture PIL can read (use PNG, JPEG or WebP)"
    expect(page.locator("#run-status")).to_have_text(f"Picture not used: {message}", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#picture img")).to_have_count(0)  # not kept
    upload_picture(page, pictures["tiny"])
    expect(page.locator("#run-status")).to_have_text("Picture: 64×64 px.", timeout=UI_TIMEOUT_MS)
    choose_mode(page, "Upscale 2×")
    count = gallery_count(page)
    page.click("#generate-btn")
    message = "control_image: upscaling the 64×64 picture 2× makes 128×128; each side must be 256–2048 px"
    expect(page.locator("#run-status")).to_have_text(f"Not generated: {message}", timeout=UI_TIMEOUT_MS)
    assert gallery_count(page) == count
