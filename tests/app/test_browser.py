"""The studio in real headless Chromium at 1280×800: generate onto the canvas, the full-screen viewer, explore
then finish, compare, the engine's messages on the page, progress, the gallery's tools, session memory.

A screenshot of each state goes to the `screenshots` folder: a temporary one, or the README's
(docs/screenshots/) when docs/refresh_screenshots.py runs these tests.
"""
from __future__ import annotations

import re

import pytest
from PIL import Image, PngImagePlugin

from cascade_core.images import read_settings

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


def box(page, selector: str) -> dict:
    return page.locator(selector).bounding_box()


def test_generate_streams_preview_then_the_final_image_large_on_the_canvas(page, screenshots):
    page.evaluate(WATCH)  # records when each image area first shows an image
    page.evaluate("""() => { window.__titles = [];
      new MutationObserver(() => window.__titles.push(document.title))
        .observe(document.querySelector('title'), {childList: true, subtree: true, characterData: true}); }""")
    page.fill("#prompt textarea", "a red fox in the snow")
    page.locator("#prompt textarea").press("Enter")  # Enter generates
    page.locator("#stage-c img").wait_for()
    expect(page.locator("#progress .run-progress")).to_have_count(1, timeout=UI_TIMEOUT_MS)
    shot(page, screenshots, "1-preview")
    wait_done(page)
    seen = page.evaluate("() => window.__seen")
    assert seen["preview"] < seen["final"] and seen["preview"] <= seen["stage_b"] <= seen["final"], seen
    assert gallery_count(page) == 1
    assert re.search(r"256×256 · [\d.]+ s · 4\+3( steps)?", page.locator("#gallery").inner_text())
    canvas = box(page, "#canvas img")
    assert canvas["width"] >= 500 and canvas["height"] >= 500  # fit to the free space, not a 300 px box
    titles = page.evaluate("() => window.__titles")
    assert any(re.match(r"\d+% · (Composition|Details) — Cascade Studio", t) for t in titles), titles
    assert page.title() == "Cascade Studio"  # done: the tab's title is the studio's again
    expect(page.locator("#progress .run-progress")).to_have_attribute("data-percent", "100")
    summary = page.locator("#summary")  # the new image is selected: its settings beside the canvas
    expect(summary).to_contain_text("Composition steps 4", timeout=UI_TIMEOUT_MS)
    assert page.locator("#reuse-all-btn").is_visible()
    side, canvas = box(page, "#side"), box(page, "#canvas")
    assert side["x"] >= canvas["x"] + canvas["width"] - 1 and side["y"] < canvas["y"] + canvas["height"]  # beside
    shot(page, screenshots, "2-final")


def test_ctrl_enter_generates_a_second_image_newest_first(page):
    page.locator("#negative textarea").fill("blurry")
    page.locator("#negative textarea").press("Control+Enter")
    page.locator("#run-status").get_by_text("Composition").wait_for()
    wait_done(page)
    assert gallery_count(page) == 2


def test_stop_ends_a_running_generation(page, screenshots):
    set_number(page, "#prior-steps", 200)
    page.click("#generate-btn")
    page.locator("#run-status").get_by_text(re.compile(r"step (?!1/)\d+/200")).wait_for()
    page.click("#stop-btn")
    page.locator("#run-status").get_by_text("Stopped during Composition").wait_for(timeout=UI_TIMEOUT_MS)
    shot(page, screenshots, "3-stopped")
    assert gallery_count(page) == 2  # nothing added, nothing lost
    set_number(page, "#prior-steps", 4)


def test_selecting_shows_the_image_on_the_canvas_and_reuse_seed(page, screenshots):
    seed = select(page, 1)  # the older image
    src = thumbnails(page).nth(1).locator("img").get_attribute("src")
    expect(page.locator("#canvas img")).to_have_attribute("src", re.compile(re.escape(src.split("/")[-1])))
    page.click("#reuse-seed-btn")
    expect(page.locator("#seed input")).to_have_value(seed, timeout=UI_TIMEOUT_MS)
    assert not page.locator("#randomize input").is_checked()
    shot(page, screenshots, "4-selected")


def test_full_screen_viewer_zooms_pans_and_steps_through_the_gallery(page, screenshots):
    select(page, 0)
    page.click("#canvas img")
    viewer = page.locator("#viewer")
    expect(viewer).to_be_visible(timeout=UI_TIMEOUT_MS)
    image = viewer.locator("img")
    assert box(page, "#viewer img")["height"] >= 700  # the whole window
    page.mouse.move(640, 400)
    page.mouse.wheel(0, -300)
    expect(image).to_have_attribute("style", re.compile(r"scale\((1\.[1-9]|[2-9])"))
    page.mouse.down()
    page.mouse.move(700, 450)
    page.mouse.up()
    expect(image).to_have_attribute("style", re.compile(r"translate\((?!0px, 0px)"))
    shot(page, screenshots, "15-viewer")
    first = image.get_attribute("src")
    page.keyboard.press("ArrowRight")  # the next gallery image, selected on the page too
    expect(image).not_to_have_attribute("src", first)
    expect(page.locator("#summary")).to_contain_text("Negative prompt", timeout=UI_TIMEOUT_MS)  # the older image
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()


def test_explore_then_finish_exactly_the_chosen_compositions(page, demo_studio, screenshots):
    set_number(page, "#explore-count", 10)
    page.fill("#prompt textarea", "a red fox in the snow")
    count = gallery_count(page)
    page.click("#explore-btn")
    grid = page.locator("#explore-gallery button.thumbnail-item")
    expect(grid).to_have_count(8, timeout=UI_TIMEOUT_MS * 3)  # the first batch arrives before the rest
    page.locator("#run-status").get_by_text(re.compile(r"^Exploring 10/10.*Done")).wait_for()
    expect(grid).to_have_count(10)
    seeds = [int(re.search(r"seed (\d+)", grid.nth(k).inner_text()).group(1)) for k in range(10)]
    assert seeds == list(range(seeds[0], seeds[0] + 10))  # consecutive seeds
    assert gallery_count(page) == count  # previews only: nothing saved
    grid.nth(2).click()
    expect(page.locator("#finish-btn")).to_have_text("Finish chosen (1)", timeout=UI_TIMEOUT_MS)
    grid.nth(9).click()
    expect(page.locator("#finish-btn")).to_have_text("Finish chosen (2)", timeout=UI_TIMEOUT_MS)
    expect(grid.nth(2)).to_contain_text(f"✓ seed {seeds[2]}")
    page.locator("#explore-gallery").scroll_into_view_if_needed()  # the grid and Finish, below the canvas
    shot(page, screenshots, "16-explore", top=False)
    page.click("#finish-btn")
    wait_gallery_count(page, count + 2)
    page.locator("#run-status").get_by_text(re.compile(r"^Done: 2 images")).wait_for()
    finished = sorted(s["seed"] for s in (read_settings(p) for p in demo_studio.outputs.glob("*/*.png"))
                      if s.get("seed") in (seeds[2], seeds[9]) and s.get("prompt") == "a red fox in the snow")
    assert finished == [seeds[2], seeds[9]]
    shot(page, screenshots, "17-finished")


def test_compare_fits_its_box_zooms_and_wipes(page, screenshots):
    page.get_by_role("tab", name="Gallery").click()
    select(page, 0)
    page.click("#compare-add-btn")
    page.get_by_role("tab", name="Compare (1)").wait_for()
    select(page, 3)
    page.click("#compare-add-btn")
    page.get_by_role("tab", name="Compare (2)").click()
    view = page.locator("#compare-view")
    expect(view.locator("img[data-zoom]")).to_have_count(2, timeout=UI_TIMEOUT_MS)
    tab = box(page, "#compare-view")
    for k in range(2):
        image = box(page, f"#compare-view figure:nth-child({k + 1}) img")
        assert image["width"] >= 300 and image["x"] + image["width"] <= tab["x"] + tab["width"] + 1
    table = view.locator("table.compare-diff")
    assert table.evaluate("t => t.scrollWidth <= t.clientWidth + 1")  # no hidden columns
    text = table.inner_text()
    assert "Seed" in text and "Negative prompt" in text and "blurry" in text and "prior_steps" not in text
    assert "Composition steps" not in text  # the same in both: not listed
    shot(page, screenshots, "5-compare", top=False)
    view.locator("img[data-zoom]").first.click()
    expect(page.locator("#viewer")).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.keyboard.press("Escape")
    view.get_by_text("A/B wipe").click()
    wipe = page.locator("#wipe")
    expect(wipe).to_be_visible(timeout=UI_TIMEOUT_MS)
    wipe.locator("input[type=range]").fill("30")
    expect(wipe.locator(".wipe-b")).to_have_attribute("style", re.compile(r"inset\(0(px)? 0(px)? 0(px)? 30%\)"))
    shot(page, screenshots, "18-wipe")
    page.keyboard.press("Escape")
    expect(wipe).to_be_hidden()


def test_bad_input_gets_the_engines_message_beside_the_control(page, demo_studio, screenshots):
    count, logged = gallery_count(page), len(demo_studio.log.read_text())
    set_number(page, "#width", 5000)
    expect(page.locator("#aspect input[value='Custom']")).to_be_checked(timeout=UI_TIMEOUT_MS)
    page.click("#generate-btn")
    message = "width: 5000 px is outside 256–2048 px"
    expect(page.locator("#run-status")).to_have_text(f"Not generated: {message}", timeout=UI_TIMEOUT_MS)
    expect(page.locator(".toast-body").filter(has_text=message)).to_have_count(1, timeout=UI_TIMEOUT_MS)
    expect(page.locator("#width")).to_have_attribute("data-error", message)
    shot(page, screenshots, "19-bad-input")
    set_number(page, "#width", 256)
    set_number(page, "#seed", 1.5)
    page.locator("#randomize input").uncheck()
    page.click("#generate-btn")
    expect(page.locator("#run-status")).to_have_text("Not generated: seed: must be a whole number, got 1.5",
                                                     timeout=UI_TIMEOUT_MS)
    expect(page.locator("#seed")).to_have_class(re.compile("field-error"))
    expect(page.locator("#width")).not_to_have_class(re.compile("field-error"))
    assert gallery_count(page) == count
    log = demo_studio.log.read_text()[logged:]  # a user's mistake is one log line, not a traceback
    assert "Traceback" not in log and log.count("request refused") == 2
    set_number(page, "#seed", 7)


def test_gallery_captions_remove_delete_zip(page, demo_studio):
    page.get_by_role("tab", name="Gallery").click()
    count = gallery_count(page)
    select(page, 0)
    page.click("#remove-btn")
    wait_gallery_count(page, count - 1)
    assert not page.locator("#detail").is_visible()
    path = select_path(page, demo_studio, 0)
    page.click("#delete-btn")
    expect(page.locator("#delete-confirm")).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.click("#delete-yes-btn")
    wait_gallery_count(page, count - 2)
    expect(page.locator("#run-status")).to_contain_text(f"Deleted {path.name}", timeout=UI_TIMEOUT_MS)
    assert not path.exists() and not path.with_suffix(".json").exists()
    page.click("#zip-btn")
    link = page.locator("#zip-file a").first
    expect(link).to_be_visible(timeout=UI_TIMEOUT_MS)
    with page.expect_download(timeout=UI_TIMEOUT_MS) as download:
        link.click()
    assert download.value.suggested_filename.endswith(".zip")


def select_path(page, demo_studio, n: int):
    """Select the n-th gallery image; its PNG in the outputs folder (found by its seed)."""
    seed = int(select(page, n))
    return next(p for p in demo_studio.outputs.glob("*/*.png") if read_settings(p).get("seed") == seed)


def test_a_dropped_png_sets_the_controls(page, tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a castle on a hill\nNegative prompt: fog\nSteps: 30, Sampler: Euler a, "
                                "CFG scale: 6.5, Seed: 4242, Size: 768x512, Model: sdxl")
    path = tmp_path / "a1111.png"
    Image.new("RGB", (64, 64)).save(path, pnginfo=info)
    page.locator("#png-drop input[type=file]").set_input_files(str(path))
    expect(page.locator("#prompt textarea")).to_have_value("a castle on a hill", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#negative textarea")).to_have_value("fog")
    expect(page.locator("#seed input")).to_have_value("4242")
    expect(page.locator("#width input")).to_have_value("768")
    expect(page.locator("#height input")).to_have_value("512")
    assert not page.locator("#randomize input").is_checked()
    expect(page.locator("#run-status")).to_contain_text("made by AUTOMATIC1111", timeout=UI_TIMEOUT_MS)


def test_controls_and_compare_picks_survive_a_reload_and_one_off_runs_leave_them(page):
    set_number(page, "#width", 256)
    set_number(page, "#height", 256)
    page.fill("#prompt textarea", "a quiet harbour")
    page.locator("#style input").fill("Photographic")
    page.locator("#style input").press("Enter")
    set_number(page, "#decoder-steps", 2)
    page.wait_for_timeout(1000)  # the browser's copy is written after each change
    page.reload()
    page.get_by_text("ready on").wait_for()
    expect(page.locator("#prompt textarea")).to_have_value("a quiet harbour", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#style input")).to_have_value("Photographic")
    page.get_by_text("Steps and guidance").click()  # closed again after the reload
    expect(page.locator("#decoder-steps input[type=number]")).to_have_value("2")
    expect(page.locator("#width input")).to_have_value("256")
    page.get_by_role("tab", name="Compare (1)").wait_for(timeout=UI_TIMEOUT_MS)  # one pick left after the deletes
    count = gallery_count(page)
    select(page, 0)
    set_number(page, "#var-count", 2)
    page.click("#variations-btn")
    wait_gallery_count(page, count + 2)
    wait_done(page)
    expect(page.locator("#num-images input[type=number]")).to_have_value("1")  # left as it was
    page.click("#refine-btn")
    wait_gallery_count(page, count + 3)
    wait_done(page)
    expect(page.locator("#decoder-steps input[type=number]")).to_have_value("2")  # not ×1.5 for the next run
    expect(page.locator("#summary")).to_contain_text("Detail steps 4")  # the refined image: ×1.5 of 3


def test_phone_shows_the_results_after_generate_and_clips_nothing(browser, demo_studio, screenshots):
    phone = open_small_run_studio(browser, demo_studio.url, {"width": 390, "height": 844})
    try:
        overflow = phone.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        label = phone.locator("#randomize label")
        assert label.evaluate("l => l.scrollWidth <= l.clientWidth + 1")  # "New seed each run" not clipped
        phone.fill("#prompt textarea", "a lighthouse")
        phone.click("#generate-btn")
        wait_done(phone)
        outputs = phone.locator("#outputs").bounding_box()
        assert outputs["y"] < 844 and outputs["y"] + outputs["height"] > 0  # scrolled to the results
        shot(phone, screenshots, "6-phone", top=False)
        thumbnail = thumbnails(phone).first.bounding_box()
        assert thumbnail["width"] >= 150  # large enough to judge
    finally:
        phone.close()
