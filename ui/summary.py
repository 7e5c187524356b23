"""What the page writes about images: the selected image's settings beside the canvas, and the
compare view (2–4 images side by side, only the settings that differ), in a designer's words."""
from __future__ import annotations

import html
from urllib.parse import quote

from . import words
from .markdown import md_escape

FILE_URL = "/gradio_api/file="  # how the page fetches a file of the outputs folder (an allowed path)


def summary_markdown(settings: dict) -> str:
    """The selected image's settings: the prompt as a paragraph, the rest as short labelled lines."""
    shown = words.shown_settings(settings)
    lines = []
    for key in words.ordered(shown):
        value = words.value_text(key, shown[key])
        if key == "prompt":
            lines.append(md_escape(value))
        else:
            lines.append(f"**{words.label(key)}** {md_escape(value)}")
    return "\n\n".join(lines) if lines else "This image carries no settings."


def differing(settings_list: list[dict]) -> list[tuple[str, list[str]]]:
    """(label, values) of the settings whose values differ between the images."""
    shown = [words.shown_settings(s) for s in settings_list]
    keys = words.ordered({k for s in shown for k in s} - {"seconds"})
    rows = []
    for key in keys:
        values = [s.get(key) for s in shown]
        if any(v != values[0] for v in values[1:]):
            rows.append((words.label(key), [words.value_text(key, v) for v in values]))
    return rows


def compare_html(items: list[dict]) -> str:
    """2–4 images side by side at the largest size that fits (CSS), each click-to-zoom; an A/B wipe for
    two; a table of what differs. `items`: the gallery's dicts (path, settings, caption)."""
    if len(items) < 2:
        return ('<p class="compare-empty">Choose 2–4 images: select one in the gallery, then '
                '<b>Compare</b>. Your picks stay across reloads.</p>')
    figures = "".join(
        f'<figure><img src="{FILE_URL}{quote(item["path"])}" alt="image {k + 1}" data-zoom>'
        f'<figcaption>{k + 1} · seed {html.escape(str(item["settings"].get("seed", "?")))}</figcaption></figure>'
        for k, item in enumerate(items))
    wipe = '<button type="button" class="wipe-open">A/B wipe</button>' if len(items) == 2 else ""
    rows = differing([item["settings"] for item in items])
    if rows:
        head = "".join(f"<th>{k + 1}</th>" for k in range(len(items)))
        body = "".join(f"<tr><th>{html.escape(name)}</th>" + "".join(f"<td>{html.escape(v)}</td>" for v in values)
                       + "</tr>" for name, values in rows)
        table = f'<table class="compare-diff"><tr><th>Differs</th>{head}</tr>{body}</table>'
    else:
        table = '<p class="compare-same">Same settings: only the images differ.</p>'
    return f'<div class="compare-row n{len(items)}">{figures}</div>{wipe}{table}'
