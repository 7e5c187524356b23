"""Driving the studio's page in headless Chromium through Playwright: shared by the browser tests
(tests/app/test_browser*.py) and, through them, by docs/refresh_screenshots.py."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--no-first-run"]
RUN_TIMEOUT_MS = 90_000  # a run, or loading a page
UI_TIMEOUT_MS = 20_000  # the page's answer to a click (one event, no run)
DESKTOP = {"width": 1280, "height": 800}


def needs_chromium(allow_module_level: bool = False):
    """playwright.sync_api; skips (with how to install it) when Chromium or playwright is missing."""
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium (apt-get install -y chromium chromium-driver)",
                    allow_module_level=allow_module_level)
    return pytest.importorskip("playwright.sync_api", reason="needs the playwright package (pip install playwright)")


def open_small_run_studio(browser, url: str, viewport: dict = DESKTOP):
    """A tab (desktop unless `viewport`) set to 256×256 images at 4 + 3 steps: every test run is quick."""
    page = open_studio(browser, url, viewport)
    set_number(page, "#width", 256)
    set_number(page, "#height", 256)
    page.get_by_text("Steps and guidance").click()
    set_number(page, "#prior-steps", 4)
    set_number(page, "#decoder-steps", 3)
    return page


def open_studio(browser, url: str, viewport: dict = DESKTOP):
    """A new tab (its own browser context, so its own localStorage) on the studio, once the model is ready."""
    page = browser.new_page(viewport=viewport)
    page.set_default_timeout(RUN_TIMEOUT_MS)
    page.goto(url)
    page.wait_for_selector("#prompt textarea")
    page.get_by_text("ready on").wait_for()
    return page


def set_number(page, elem_id: str, value) -> None:
    box = page.locator(f"{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Tab")


def shot(page, folder: Path, name: str, top: bool = True) -> Path:
    """Save a screenshot of the viewport as folder/name.png, scrolled to the top unless `top` is False."""
    folder.mkdir(parents=True, exist_ok=True)
    if top:
        page.evaluate("() => window.scrollTo(0, 0)")
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    with Image.open(path) as image:  # the whole viewport, as a PNG
        assert (image.format, image.size) == ("PNG", (page.viewport_size["width"], page.viewport_size["height"]))
    return path


def thumbnails(page):
    return page.locator("#gallery button.thumbnail-item")


def gallery_count(page) -> int:
    return thumbnails(page).count()


def wait_gallery_count(page, count: int) -> None:
    """Wait (Playwright's retrying assertion, the page's timeout) until the gallery shows `count` images."""
    from playwright.sync_api import expect
    expect(thumbnails(page)).to_have_count(count, timeout=RUN_TIMEOUT_MS)


def select(page, n: int) -> str:
    """Click the n-th gallery image and wait until its settings are shown; returns its seed."""
    from playwright.sync_api import expect
    thumbnail = thumbnails(page).nth(n)
    seed = re.search(r"seed (\d+)", thumbnail.inner_text()).group(1)
    thumbnail.click()
    expect(page.locator("#summary")).to_contain_text(re.compile(rf"Seed\s+{seed}\s"), timeout=UI_TIMEOUT_MS)
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
    mark("stage_b", "#canvas img");
    mark("final", "#gallery button.thumbnail-item");
  }).observe(document.body, {subtree: true, childList: true, attributes: true});
}"""


# --- the image panel (tests/app/test_browser_images.py) ---------------------------------------------------
def open_image_panel(page) -> None:
    """Open the image panel (closed by default) once; wait for its picture area."""
    if not page.locator("#picture").is_visible():
        page.locator("#image-panel .label-wrap").first.click()
    page.locator("#picture").wait_for()


def upload_picture(page, path: Path) -> None:
    """Give the panel a picture as a file chooser would (the page checks it and says so in the status line)."""
    page.locator("#picture input[type=file]").set_input_files(str(path))


def choose_mode(page, mode: str) -> None:
    page.locator("#image-mode").get_by_label(mode, exact=True).check()


def paint_stroke(page, start: tuple[float, float], end: tuple[float, float], steps: int = 24) -> None:
    """Paint with the mask editor's brush from `start` to `end`, given as fractions of its canvas."""
    editor = page.locator("#mask-editor")
    editor.scroll_into_view_if_needed()
    editor.get_by_label("Brush", exact=True).click()
    box = editor.locator("canvas").first.bounding_box()
    at = lambda fx, fy: (box["x"] + fx * box["width"], box["y"] + fy * box["height"])
    page.mouse.move(*at(*start))
    page.mouse.down()
    for k in range(1, steps + 1):
        t = k / steps
        page.mouse.move(*at(start[0] + t * (end[0] - start[0]), start[1] + t * (end[1] - start[1])))
    page.mouse.up()


def shown_image(page, selector: str) -> Image.Image:
    """The image an <img> of the page shows, fetched from the server as the browser got it."""
    import io
    src = page.locator(selector).get_attribute("src")
    response = page.request.get(src)
    assert response.ok, (src, response.status)
    return Image.open(io.BytesIO(response.body()))


WATCH_RUN = """() => {
  // When the next run's control map first shows and when its image joins the gallery (both may be there before).
  const run = window.__run = {};
  const count = () => document.querySelectorAll("#gallery button.thumbnail-item").length;
  const map = () => document.querySelector("#control-map img")?.getAttribute("src") || null;
  const before = {count: count(), map: map()};
  window.__runWatch?.disconnect();  // the last run's watch: it would see this run as its own
  window.__runWatch = new MutationObserver(() => {
    const now = performance.now();
    if (!run.map && map() && map() !== before.map) run.map = now;
    if (!run.final && count() > before.count) run.final = now;
  });
  window.__runWatch.observe(document.body, {subtree: true, childList: true, attributes: true});
}"""
