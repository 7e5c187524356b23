"""In Chromium: HTML in a prompt stays text, the gallery survives a page reload, the aspect follows the sliders."""
from __future__ import annotations

from .studio_page import (DESKTOP, UI_TIMEOUT_MS, gallery_count, needs_chromium, open_studio, set_number, thumbnails,
                          wait_done, wait_gallery_count)

expect = needs_chromium(allow_module_level=True).expect

KEY = "cascade-studio-gallery"  # the gr.BrowserState's localStorage key (ui/layout.py)
ATTACK = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script> a fox'


def test_html_prompt_is_text_gallery_survives_reload_and_custom_aspect(browser, demo_studio):
    page = open_studio(browser, demo_studio.url, DESKTOP)
    try:
        assert page.locator("#aspect input[value='1:1']").is_checked()  # the default
        set_number(page, "#width", 256)
        set_number(page, "#height", 256)
        custom = page.locator("#aspect input[value='Custom']")
        expect(custom).to_be_checked(timeout=UI_TIMEOUT_MS)  # moved by hand: Custom
        page.get_by_text("Steps and guidance").click()
        set_number(page, "#prior-steps", 1)
        set_number(page, "#decoder-steps", 1)
        page.fill("#prompt textarea", ATTACK)
        page.click("#generate-btn")
        wait_done(page)
        assert gallery_count(page) == 1
        caption = thumbnails(page).inner_text()
        thumbnails(page).click()
        expect(page.locator("#summary")).to_contain_text(ATTACK, timeout=UI_TIMEOUT_MS)  # shown as typed, as text
        assert page.evaluate("() => window.__xss") is None
        assert page.locator("#summary img, #run-status img, #summary script").count() == 0

        stored = page.wait_for_function(f"() => localStorage.getItem('{KEY}')").json_value()  # the browser's copy
        page.reload()
        wait_gallery_count(page, 1)  # restored from the names the browser kept
        expect(thumbnails(page)).to_have_text(caption)
        page.click("#clear-btn")
        page.wait_for_function(f"v => localStorage.getItem('{KEY}') !== v", arg=stored)  # cleared: forgotten too
    finally:
        page.close()
