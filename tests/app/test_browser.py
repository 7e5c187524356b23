"""The studio in real headless Chromium: generate, stream, stop, gallery, compare, reuse seed.

A screenshot of each state goes to the `screenshots` folder: a temporary one, or the README's
(docs/screenshots/) when docs/refresh_screenshots.py runs these tests.
"""
from __future__ import annotations

import re

import pytest
from PIL import Image

from .studio_page import (UI_TIMEOUT_MS, WATCH, gallery_count, needs_chromium, open_small_run_studio, select,
                          set_number, shot, thumbnails, wait_done, wait_gallery_count)

sync_api = needs_chromium(allow_module_level=True)
expect = sync_api.expect


@pytest.fixture(scope="module")
def page(browser, demo_studio):
    """One tab, kept across the tests in order (like a designer's session)."""
    page = open_small_run_studio(browser, demo_studio.url)
    yield page
    page.close()


def test_generate_streams_preview_then_final(page, screenshots):
    page.evaluate(WATCH)  # records when each image area first shows an image
    page.fill("#prompt textarea", "a red fox in the snow")
    page.locator("#prompt textarea").press("Enter")  # Enter generates
    page.locator("#stage-c img").wait_for()
    shot(page, screenshots, "1-preview")
    wait_done(page)
    seen = page.evaluate("() => window.__seen")
    assert seen["preview"] < seen["final"] and seen["preview"] <= seen["stage_b"] <= seen["final"], seen
    assert gallery_count(page) == 1
    assert re.search(r"seed \d+ · 256×256 · [\d.]+ s", page.locator("#gallery").inner_text())
    shot(page, screenshots, "2-final")


def test_ctrl_enter_generates_second_image_newest_first(page):
    page.locator("#negative textarea").fill("blurry")
    page.locator("#negative textarea").press("Control+Enter")
    page.locator("#run-status").get_by_text("Stage C").wait_for()
    wait_done(page)
    assert gallery_count(page) == 2


def test_stop_ends_a_running_generation(page, screenshots):
    set_number(page, "#prior-steps", 200)
    page.click("#generate-btn")
    page.locator("#run-status").get_by_text(re.compile(r"step (?!1/)\d+/200")).wait_for()
    page.click("#stop-btn")
    page.locator("#run-status").get_by_text("Stopped during Stage C").wait_for(timeout=UI_TIMEOUT_MS)
    shot(page, screenshots, "3-stopped")
    assert gallery_count(page) == 2  # nothing added, nothing lost
    set_number(page, "#prior-steps", 4)


def test_select_and_reuse_seed(page, screenshots):
    seed = select(page, 1)  # the older image
    page.click("#reuse-seed-btn")
    expect(page.locator("#seed input")).to_have_value(seed, timeout=UI_TIMEOUT_MS)
    assert not page.locator("#randomize input").is_checked()
    shot(page, screenshots, "4-selected", top=False)


def test_compare_two_images(page, screenshots):
    select(page, 0)
    page.click("#compare-add-btn")
    page.get_by_role("tab", name="Compare (1)").wait_for()
    select(page, 1)
    page.click("#compare-add-btn")
    page.get_by_role("tab", name="Compare (2)").click()
    table = page.locator("#compare-table")
    table.get_by_text("negative_prompt", exact=True).first.wait_for()
    expect(page.locator("#compare-gallery button.thumbnail-item")).to_have_count(2, timeout=UI_TIMEOUT_MS)
    assert "blurry" in table.inner_text()
    assert re.search(r"\d+ setting\(s\) differ", page.locator("#compare-note").inner_text())
    shot(page, screenshots, "5-compare", top=False)


def test_phone_layout_has_no_horizontal_scroll(browser, demo_studio, screenshots):
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    try:
        phone.goto(demo_studio.url)
        phone.wait_for_selector("#generate-btn")
        overflow = phone.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        shot(phone, screenshots, "6-phone", top=False)
    finally:
        phone.close()
    assert overflow <= 0


def test_download_variations_and_refine(page):
    page.get_by_role("tab", name="Gallery").click()
    select(page, 0)
    with page.expect_download(timeout=UI_TIMEOUT_MS) as download:
        page.click("#download-btn")
    assert download.value.suggested_filename.endswith(".png")
    assert "parameters" in Image.open(download.value.path()).text  # the PNG keeps its metadata
    set_number(page, "#var-count", 2)
    page.click("#variations-btn")
    wait_gallery_count(page, 4)
    wait_done(page)
    seed = select(page, 0)
    base = page.locator("#details").inner_text()
    steps = {k: int(re.search(rf"{k}\s+(\d+)", base).group(1)) for k in ("prior_steps", "decoder_steps")}
    page.click("#refine-btn")
    wait_gallery_count(page, 5)
    wait_done(page)
    assert select(page, 0) == seed  # the newest, re-rendered gallery's first image: the refined one
    details = page.locator("#details")  # refined: the selected image's seed and settings, steps ×1.5
    for key, value in steps.items():
        expect(details).to_contain_text(re.compile(rf"{key}\s+{round(value * 1.5)}\s"), timeout=UI_TIMEOUT_MS)
    assert f"seed {seed} " in thumbnails(page).nth(0).inner_text()


def test_clear_then_reload_from_outputs(page, demo_studio, screenshots):
    page.click("#clear-btn")
    wait_gallery_count(page, 0)
    saved = sum(not p.name.startswith(".") for p in demo_studio.outputs.glob("*/*.png"))  # ours and other tests'
    assert saved >= 5
    page.click("#reload-btn")
    wait_gallery_count(page, saved)
    expect(page.locator("#run-status")).to_contain_text(f"Loaded {saved} image(s) from the outputs folder.",
                                                         timeout=UI_TIMEOUT_MS)
    shot(page, screenshots, "7-reloaded")


def test_aspect_and_quality_presets_fill_the_controls(page):
    page.get_by_label("16:9").check()
    expect(page.locator("#width input[type=number]")).to_have_value("1344", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#height input[type=number]")).to_have_value("768", timeout=UI_TIMEOUT_MS)
    page.get_by_label("draft").check()
    expect(page.locator("#prior-steps input[type=number]")).to_have_value("12", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#decoder-steps input[type=number]")).to_have_value("4", timeout=UI_TIMEOUT_MS)
