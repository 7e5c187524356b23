"""In Chromium: HTML in a prompt stays text, the gallery survives a page reload, the aspect follows the sliders."""
from __future__ import annotations

from .test_browser import browser, gallery_count, set_number, sync_api, wait_done  # noqa: F401 - browser: a fixture

KEY = "cascade-studio-gallery"  # the gr.BrowserState's localStorage key (ui/layout.py)
ATTACK = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script> a fox'


def test_html_prompt_is_text_gallery_survives_reload_and_custom_aspect(browser, demo_studio):  # noqa: F811
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(90_000)
    page.goto(demo_studio.url)
    page.get_by_text("ready on").wait_for()
    assert page.locator("#aspect input[value='1:1']").is_checked()
    set_number(page, "#width", 256)
    set_number(page, "#height", 256)
    sync_api.expect(page.locator("#aspect input[value='Custom']")).to_be_checked()  # moved by hand: Custom
    page.get_by_text("Steps and guidance").click()
    set_number(page, "#prior-steps", 1)
    set_number(page, "#decoder-steps", 1)
    page.fill("#prompt textarea", ATTACK)
    page.click("#generate-btn")
    wait_done(page)
    assert gallery_count(page) == 1
    caption = page.locator("#gallery button.thumbnail-item").inner_text()
    page.locator("#gallery button.thumbnail-item").click()
    sync_api.expect(page.locator("#details")).to_contain_text(ATTACK)  # shown as typed, as text
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("#details img, #run-status img, #details script").count() == 0

    stored = page.wait_for_function(f"() => localStorage.getItem('{KEY}')").json_value()  # the browser's copy
    page.reload()
    page.wait_for_function("() => document.querySelectorAll('#gallery button.thumbnail-item').length === 1")
    assert page.locator("#gallery button.thumbnail-item").inner_text() == caption
    page.click("#clear-btn")
    page.wait_for_function(f"v => localStorage.getItem('{KEY}') !== v", arg=stored)  # cleared: forgotten too
    page.close()
