"""Gallery handlers: select (the canvas and the actions beside it), reuse, one-off runs, remove and
delete, zip, the outputs folder, compare, and the browser's memory of the gallery and the picks.

Selection outputs are (selected path, canvas, summary, detail panel, download file, delete
confirmation), in the order ui/layout.py wires them (`selection`).
"""
from __future__ import annotations

import html
import logging
import os
from typing import NamedTuple

import gradio as gr

from . import gallery, loras
from .archive import ArchiveError, BatchZips
from .generation import Services
from .markdown import md_escape
from .outputs import DeleteRefused, delete_saved, find_saved, load_saved, relative_name
from .presets import Presets
from .summary import compare_html, summary_markdown

log = logging.getLogger(__name__)
MAX_REMEMBERED = 200  # gallery images the browser keeps across page reloads


class Reused(NamedTuple):
    """The controls an image's settings set again: the `controls` of ui/layout.py, by the same names."""
    prompt: str
    negative: str
    style: str
    width: int | None
    height: int | None
    seed: int | None
    randomize: bool
    prior_steps: int | None
    prior_guidance: float | None
    decoder_steps: int | None
    decoder_guidance: float | None


def _unselected() -> tuple:
    return None, None, "", gr.update(visible=False), None, gr.update(visible=False)


def _selected_view(item: dict) -> tuple:
    return (item["path"], item["path"], summary_markdown(item["settings"]), gr.update(visible=True), item["path"],
            gr.update(visible=False))


def _compare_label(chosen: list) -> dict:
    return gr.update(label=f"Compare ({len(chosen)})")


class GalleryActions:
    def __init__(self, services: Services, presets: Presets):
        self.services, self.presets = services, presets
        self.zips = BatchZips(services.writer.root)

    @staticmethod
    def empty_compare() -> str:
        return compare_html([])

    def select(self, items, evt: gr.SelectData):
        """A gallery click: the image on the canvas, its settings and actions beside it."""
        if evt.index is None or not 0 <= evt.index < len(items):
            return _unselected()
        return _selected_view(items[evt.index])

    def _settings(self, items, path) -> dict:
        for item in items:
            if item["path"] == path:
                return item["settings"]
        raise gr.Error("Select an image in the gallery first.", print_exception=False)

    def _reused(self, items, path) -> Reused:
        """All settings of the selected image (prompt and style as typed)."""
        s = self._settings(items, path)
        style = s.get("style") if s.get("style") in self.presets.styles else None
        prompt, negative = s.get("prompt", ""), s.get("negative_prompt", "")
        if style:  # as typed, before the style template
            prompt, negative = s.get("user_prompt", prompt), s.get("user_negative_prompt", negative)
        return Reused(prompt, negative, style or "None", s.get("width"), s.get("height"), s.get("seed"), False,
                      s.get("prior_steps"), s.get("prior_guidance"), s.get("decoder_steps"), s.get("decoder_guidance"))

    def reuse_all(self, items, path) -> tuple:
        """Controls and LoRA slots ← all settings of the selected image."""
        return (*self._reused(items, path), *loras.slot_values(self._settings(items, path).get("loras")))

    def reuse_seed(self, items, path):
        return self._settings(items, path).get("seed"), False

    def once(self, action: str):
        """The handler of a one-off action's button: what ui_once runs, read now (in click order)."""
        def read(items, path, count) -> dict:
            return {"path": path, "settings": self._settings(items, path), "action": action, "count": count}
        return read

    def use_as_input(self, items, path):
        """(picture, panel): the selected image into the image panel, opened."""
        self._settings(items, path)
        return path, gr.update(open=True)

    def remove(self, items, path, chosen) -> tuple:
        """Take the selected image out of this tab's gallery (the file stays)."""
        self._settings(items, path)
        items = gallery.remove_item(items, path)
        chosen = [p for p in chosen if p != path]
        return (gallery.gallery_value(items), items, chosen, _compare_label(chosen), *_unselected())

    def delete_file(self, items, path, chosen) -> tuple:
        """Delete the selected image's PNG and settings from the outputs folder (after the page asked)."""
        self._settings(items, path)
        try:
            removed = delete_saved(self.services.writer.root, path)
        except DeleteRefused as e:
            gr.Warning(html.escape(str(e)))
            return (*[gr.skip()] * 4, *[gr.skip()] * 5, gr.update(visible=False), f"**Not deleted:** {md_escape(str(e))}")
        log.info("deleted %s", ", ".join(p.name for p in removed))
        return (*self.remove(items, path, chosen), f"Deleted {removed[0].name} from the outputs folder.")

    def load_outputs(self, items):
        """Add the images in the outputs folder that this tab's gallery lacks (newest first)."""
        known = {item["path"] for item in items}
        found = [gallery.make_item(s.path, s.settings) for s in load_saved(self.services.writer.root)
                 if str(s.path) not in known]
        items = sorted(items + found, key=lambda item: _mtime(item["path"]), reverse=True)
        return gallery.gallery_value(items), items, f"Loaded {len(found)} image(s) from the outputs folder."

    def zip_gallery(self, items):
        """(zip file, status): the gallery's images as one zip, their settings intact."""
        try:
            archive = self.zips.make(items)
        except ArchiveError as e:
            gr.Warning(html.escape(str(e)))
            return gr.update(visible=False, value=None), f"**No zip:** {md_escape(str(e))}"
        note = f" ({len(archive.skipped)} left out: {'; '.join(archive.skipped)})" if archive.skipped else ""
        return gr.update(visible=True, value=str(archive.path)), md_escape(f"Zip of {archive.count} image(s) ready{note}.")

    def clear(self):
        return ([], [], [], _compare_label([]), *_unselected(), "Gallery cleared (the files stay in the outputs folder).")

    def remember(self, items) -> list[str]:
        """What the browser keeps of this tab's gallery: the images' names in the outputs folder."""
        names = (relative_name(self.services.writer.root, item["path"]) for item in items)
        return [name for name in names if name][:MAX_REMEMBERED]

    def restore(self, names, items):
        """On page load: the gallery back from the names the browser kept; any other name is skipped."""
        if items or not isinstance(names, list):
            return gr.skip(), gr.skip()
        found = (find_saved(self.services.writer.root, name) for name in names[:MAX_REMEMBERED])
        items = [gallery.make_item(s.path, s.settings) for s in found if s]
        return gallery.gallery_value(items), items

    # --- compare ----------------------------------------------------------------------------
    def toggle_compare(self, chosen, path):
        if not path:
            raise gr.Error("Select an image in the gallery first.", print_exception=False)
        chosen = gallery.toggle_compare(chosen, path)
        return chosen, _compare_label(chosen)

    def clear_compare(self):
        return [], _compare_label([])

    def compare_view(self, items, chosen) -> str:
        by_path = {item["path"]: item for item in items}
        return compare_html([by_path[p] for p in chosen if p in by_path])

    def remember_compare(self, chosen) -> list[str]:
        names = (relative_name(self.services.writer.root, path) for path in chosen)
        return [name for name in names if name]

    def restore_compare(self, names, items):
        """On page load, after the gallery: the compare picks that are still in it."""
        if not isinstance(names, list):
            return gr.skip(), gr.skip()
        root = self.services.writer.root
        known = {relative_name(root, item["path"]): item["path"] for item in items}
        chosen = [known[name] for name in names[:gallery.MAX_COMPARE] if isinstance(name, str) and name in known]
        return chosen, _compare_label(chosen)


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0
