"""The studio in real headless Chromium: generate, stream, stop, gallery, compare, reuse seed.

Screenshots of each state go to docs/screenshots/ (shown in the README).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("needs /usr/bin/chromium (apt-get install -y chromium chromium-driver)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (pip install playwright)")

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--no-first-run"]
RUN_TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(browser, demo_studio):
    """One tab, kept across the tests in order (like a designer's session)."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(RUN_TIMEOUT_MS)
    page.goto(demo_studio.url)
    page.wait_for_selector("#prompt textarea")
    page.get_by_text("ready on").wait_for()
    set_number(page, "#width", 256)
    set_number(page, "#height", 256)
    page.get_by_text("Steps and guidance").click()
    set_number(page, "#prior-steps", 4)
    set_number(page, "#decoder-steps", 3)
    yield page
    page.close()


def set_number(page, elem_id: str, value) -> None:
    box = page.locator(f"{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Tab")


def shot(page, name: str, top: bool = True) -> None:
    """Save a screenshot of the viewport, scrolled to the top unless `top` is False."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if top:
        page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def gallery_count(page) -> int:
    return page.locator("#gallery button.thumbnail-item").count()


def select(page, n: int) -> str:
    """Click the n-th gallery image and wait until its settings are shown; returns its seed."""
    thumbnail = page.locator("#gallery button.thumbnail-item").nth(n)
    seed = re.search(r"seed (\d+)", thumbnail.inner_text()).group(1)
    thumbnail.click()
    sync_api.expect(page.locator("#details")).to_contain_text(re.compile(rf"seed\s+{seed}\s"), timeout=20_000)
    return seed


def wait_done(page) -> None:
    page.locator("#run-status").get_by_text(re.compile(r"^(Done|Stopped)")).wait_for()


WATCH = """() => {
  window.__seen = {};
  const mark = (name, selector) => {
    if (!window.__seen[name] && document.querySelector(selector)) window.__seen[name] = performance.now();
  };
  new MutationObserver(() => {
    mark("preview", "#stage-c img");
    mark("stage_b", "#stage-b img");
    mark("final", "#gallery button.thumbnail-item");
  }).observe(document.body, {subtree: true, childList: true, attributes: true});
}"""


def test_generate_streams_preview_then_final(page):
    page.evaluate(WATCH)  # records when each image area first shows an image
    page.fill("#prompt textarea", "a red fox in the snow")
    page.locator("#prompt textarea").press("Enter")  # Enter generates
    page.locator("#stage-c img").wait_for()
    shot(page, "1-preview")
    wait_done(page)
    seen = page.evaluate("() => window.__seen")
    assert seen["preview"] < seen["final"] and seen["preview"] <= seen["stage_b"] <= seen["final"], seen
    assert gallery_count(page) == 1
    assert re.search(r"seed \d+ · 256×256 · [\d.]+ s", page.locator("#gallery").inner_text())
    shot(page, "2-final")


def test_ctrl_enter_generates_second_image_newest_first(page):
    page.locator("#negative textarea").fill("blurry")
    page.locator("#negative textarea").press("Control+Enter")
    page.locator("#run-status").get_by_text("Stage C").wait_for()
    wait_done(page)
    assert gallery_count(page) == 2


def test_stop_ends_a_running_generation(page):
    set_number(page, "#prior-steps", 200)
    page.click("#generate-btn")
    page.locator("#run-status").get_by_text(re.compile(r"step (?!1/)\d+/200")).wait_for()
    page.click("#stop-btn")
    page.locator("#run-status").get_by_text("Stopped during Stage C").wait_for(timeout=20_000)
    shot(page, "3-stopped")
    assert gallery_count(page) == 2  # nothing added, nothing lost
    set_number(page, "#prior-steps", 4)


def test_select_and_reuse_seed(page):
    seed = select(page, 1)  # the older image
    page.click("#reuse-seed-btn")
    page.wait_for_function(f"() => document.querySelector('#seed input').value === '{seed}'")
    assert not page.locator("#randomize input").is_checked()
    shot(page, "4-selected", top=False)


def test_compare_two_images(page):
    select(page, 0)
    page.click("#compare-add-btn")
    page.get_by_role("tab", name="Compare (1)").wait_for()
    select(page, 1)
    page.click("#compare-add-btn")
    page.get_by_role("tab", name="Compare (2)").click()
    table = page.locator("#compare-table")
    table.get_by_text("negative_prompt", exact=True).first.wait_for()
    assert page.locator("#compare-gallery button.thumbnail-item").count() == 2
    assert "blurry" in table.inner_text()
    assert re.search(r"\d+ setting\(s\) differ", page.locator("#compare-note").inner_text())
    shot(page, "5-compare", top=False)


def test_phone_layout_has_no_horizontal_scroll(browser, demo_studio):
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    phone.goto(demo_studio.url)
    phone.wait_for_selector("#generate-btn")
    overflow = phone.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    phone.screenshot(path=str(SCREENSHOTS / "6-phone.png"))
    phone.close()
    assert overflow <= 0


def test_download_variations_and_refine(page):
    page.get_by_role("tab", name="Gallery").click()
    select(page, 0)
    with page.expect_download(timeout=20_000) as download:
        page.click("#download-btn")
    assert download.value.suggested_filename.endswith(".png")
    assert "parameters" in Image.open(download.value.path()).text  # the PNG keeps its metadata
    set_number(page, "#var-count", 2)
    page.click("#variations-btn")
    page.wait_for_function("() => document.querySelectorAll('#gallery button.thumbnail-item').length === 4")
    wait_done(page)
    seed = select(page, 0)
    base = page.locator("#details").inner_text()
    steps = {k: int(re.search(rf"{k}\s+(\d+)", base).group(1)) for k in ("prior_steps", "decoder_steps")}
    page.click("#refine-btn")
    page.wait_for_function("() => document.querySelectorAll('#gallery button.thumbnail-item').length === 5")
    wait_done(page)
    assert select(page, 0) == seed  # the newest, re-rendered gallery's first image: the refined one
    details = page.locator("#details")  # refined: the selected image's seed and settings, steps ×1.5
    for key, value in steps.items():
        sync_api.expect(details).to_contain_text(re.compile(rf"{key}\s+{round(value * 1.5)}\s"), timeout=20_000)
    assert f"seed {seed} " in page.locator("#gallery button.thumbnail-item").nth(0).inner_text()


def test_clear_then_reload_from_outputs(page):
    page.click("#clear-btn")
    page.wait_for_function("() => document.querySelectorAll('#gallery button.thumbnail-item').length === 0")
    page.click("#reload-btn")
    page.wait_for_function("() => document.querySelectorAll('#gallery button.thumbnail-item').length >= 5")
    shot(page, "7-reloaded")


def test_aspect_and_quality_presets_fill_the_controls(page):
    page.get_by_label("16:9").check()
    page.wait_for_function("() => document.querySelector('#width input[type=number]').value === '1344'")
    assert page.locator("#height input[type=number]").input_value() == "768"
    page.get_by_label("draft").check()
    page.wait_for_function("() => document.querySelector('#prior-steps input[type=number]').value === '12'")
    assert page.locator("#decoder-steps input[type=number]").input_value() == "4"
