"""Event handlers of the page and the API: plain functions over component values and state.

Handler outputs are tuples in the order the layout wires them (see ui/layout.py).
"""
from __future__ import annotations

import dataclasses
import html
import os
from typing import NamedTuple

import cascade_core as cc
import gradio as gr
import pandas as pd  # a gradio dependency; styles the compare table
from cascade_core.picture import Picture

from . import gallery, pictures
from .display_files import DisplayFiles, display_files
from .generation import Frame, Services, StudioError, stream
from .markdown import md_escape
from .outputs import find_saved, load_saved, relative_name
from .presets import CUSTOM_SIZE, Presets, apply_style

REFINE_FACTOR = 1.5
_NOTHING_YET = object()  # no live image sent yet: the first frame replaces (or clears) the last run's
PAGE_IMAGE_FORMAT = "webp"  # the page's live images, as gr.Image sends them by default: small to send
API_IMAGE_FORMAT = "png"  # /generate's images are lossless (the format of its components in ui/layout.py)
MAX_REMEMBERED = 200  # gallery images the browser keeps across page reloads


def _request(prompt, negative_prompt, width, height, seed, prior_steps, prior_guidance, decoder_steps,
             decoder_guidance, num_images) -> cc.GenerationRequest:
    """Component values → a request; the engine validates it (RequestError names the field)."""
    seed = None if seed is None or seed == "" or (isinstance(seed, (int, float)) and seed < 0) else seed
    return cc.GenerationRequest(prompt or "", negative_prompt or "", width, height, seed, prior_steps,
                                prior_guidance, decoder_steps, decoder_guidance, num_images)


def _refused(message: str) -> tuple:
    """The page's outputs when a run could not start or failed: the message in the status line."""
    gr.Warning(html.escape(message))  # toasts render HTML: show the message as text
    return gr.skip(), gr.skip(), f"**Not generated:** {md_escape(message)}", gr.skip(), gr.skip(), gr.skip(), gr.skip()


def _show_notices(frame: Frame) -> None:
    for notice in frame.notices:
        gr.Info(html.escape(notice))


def _settings_json(frame: Frame) -> dict:
    """Seeds and settings of every finished image; "file" is None for one the folder could not take."""
    files = {s.settings.get("seed"): str(s.path) for s in frame.saved}
    return {"seeds": [s.get("seed") for s in frame.settings],
            "images": [{**s, "file": files.get(s.get("seed"))} for s in frame.settings],
            "error": frame.unsaved}


def _show_saved(frame: Frame, files: DisplayFiles) -> None:
    """A single finished image is shown from its saved PNG, so no second encode delays it."""
    if len(frame.images) == 1 and len(frame.saved) == 1:
        files.adopt(frame.images[0], frame.saved[0].path)


def _final_images(frame: Frame, files: DisplayFiles) -> list:
    """The API's images: saved PNG paths (with metadata), or files of the images when not saved."""
    if frame.unsaved:
        return [(files.path(image), gallery.caption(s)) for image, s in zip(frame.images, frame.settings)]
    return gallery.gallery_value([gallery.make_item(s.path, s.settings) for s in frame.saved])


def _unblended_images(frame: Frame, files: DisplayFiles) -> list | None:
    """/generate_with_images' raw outputs of a repaint or an extend (the images before the picture was blended
    back in): a file each, written once, on the run's last update only; None otherwise."""
    return [(files.path(image), gallery.caption(s)) for image, s in zip(frame.unblended, frame.settings)] or None


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

    def outputs(self, *more) -> tuple:
        """A handler's outputs: these controls in their order, then `more` (the image count)."""
        return (*self, *more)


def _refined(steps: int) -> int:
    return min(200, round(steps * REFINE_FACTOR))


class Handlers:
    def __init__(self, services: Services, presets: Presets):
        self.services, self.presets = services, presets

    # --- generation -------------------------------------------------------------------------
    def api_generate(self, prompt, negative_prompt, width, height, seed, prior_steps, prior_guidance,
                     decoder_steps, decoder_guidance, num_images, request: gr.Request):
        """/generate: yields (stage C preview, Stage B image, final images, settings JSON, status)."""
        req = _request(prompt, negative_prompt, width, height, seed, prior_steps, prior_guidance, decoder_steps,
                       decoder_guidance, num_images)
        for output in self._api_run(req, request.session_hash):
            yield output[:5]

    def api_generate_with_images(self, prompt, negative_prompt, width, height, seed, prior_steps, prior_guidance,
                                 decoder_steps, decoder_guidance, num_images, init_image=None, strength=None,
                                 image_size=None, image_prompt=None, control="none", control_image=None, mask=None,
                                 margin=0, control_scale=1.0, request: gr.Request = None):
        """/generate_with_images: /generate's parameters, then the engine's picture fields (pictures as files);
        yields /generate's outputs and the control map (edges or mask) once the pictures are prepared. The
        defaults (None: no picture) make each picture field optional for gradio_client's keyword calls. A seventh
        output holds a repaint's or an extend's unblended images on the last update (None otherwise)."""
        req = _request(prompt, negative_prompt, width, height, seed, prior_steps, prior_guidance, decoder_steps,
                       decoder_guidance, num_images)
        try:
            req = dataclasses.replace(req, **pictures.api_fields(init_image, strength, image_size, image_prompt,
                                                                 control, control_image, mask, margin, control_scale))
        except cc.RequestError as e:  # a picture the engine refuses: its message, as for any other field
            raise gr.Error(str(e), print_exception=False) from None
        yield from self._api_run(req, request.session_hash)

    def _api_run(self, req: cc.GenerationRequest, session: str):
        try:
            with display_files(API_IMAGE_FORMAT) as files:
                for frame in stream(self.services, session, req):
                    _show_notices(frame)
                    _show_saved(frame, files)
                    yield (files.path(frame.stage_c), files.path(frame.stage_b), _final_images(frame, files) or None,
                           _settings_json(frame) if frame.images else None, frame.status, files.path(frame.inputs),
                           _unblended_images(frame, files))
        except StudioError as e:
            raise gr.Error(str(e), print_exception=False) from None

    def ui_generate(self, prompt, negative_prompt, width, height, seed, randomize, prior_steps, prior_guidance,
                    decoder_steps, decoder_guidance, num_images, style, items, request: gr.Request,
                    mode=pictures.DEFAULT_MODE, picture=None, editor=None, strength=pictures.Panel.strength,
                    margin=pictures.DEFAULT_MARGIN, control_scale=1.0):
        """The page's Generate: outputs (stage C, stage B, status, gallery, items, seed, control map).

        The image panel's values follow `request` (Gradio passes that by its type), so that a call
        without them is text to image; the panel's picture, if any, goes in as its mode says.
        """
        template = self.presets.styles.get(style)
        styled, styled_negative = apply_style(template, prompt or "", negative_prompt or "")
        req = _request(styled, styled_negative, width, height, None if randomize else seed, prior_steps,
                       prior_guidance, decoder_steps, decoder_guidance, num_images)
        extra = {"style": style, "user_prompt": prompt or "", "user_negative_prompt": negative_prompt or ""}
        try:
            panel = pictures.Panel(mode, picture, editor, strength, margin, control_scale)
            req = dataclasses.replace(req, **pictures.panel_fields(panel))
        except cc.RequestError as e:
            yield _refused(str(e))
            return
        yield from self._page_run(req, extra, items, request.session_hash)

    def ui_once(self, once, items, request: gr.Request):
        """A gallery action's one run (Vary, Upscale 2×) from the selected image: the page's outputs, the
        seed and the other controls left as they are for the next Generate."""
        if not once:
            return
        settings = once["settings"]
        try:
            req, extra = pictures.from_gallery(once["path"], settings, once["action"], once["count"],
                                               self.presets.quality["balanced"])
        except cc.RequestError as e:
            yield _refused(str(e))
            return
        yield from self._page_run(req, extra, items, request.session_hash, show_seed=False)

    def _page_run(self, req: cc.GenerationRequest, extra: dict, items, session: str, show_seed: bool = True):
        """A run's page outputs. A live image is sent when it changes; otherwise gr.skip() keeps the one the
        page shows."""
        shown = [_NOTHING_YET] * 3  # the live images' files as last sent (None: cleared)
        try:
            with display_files(PAGE_IMAGE_FORMAT) as files:
                for frame in stream(self.services, session, req, extra):
                    _show_notices(frame)
                    if frame.unsaved:
                        gr.Warning(html.escape(f"Not saved: {frame.unsaved}"))
                    _show_saved(frame, files)
                    live = [files.path(frame.stage_c), files.path(frame.stage_b), files.path(frame.inputs)]
                    stage_c, stage_b, inputs = (gr.skip() if new == old else new for new, old in zip(live, shown))
                    shown = live
                    if frame.images:
                        items = gallery.add_items(items, [gallery.make_item(s.path, s.settings) for s in frame.saved])
                        yield (stage_c, stage_b, md_escape(frame.status), gallery.gallery_value(items), items,
                               frame.request.seed if show_seed else gr.skip(), inputs)
                    else:
                        yield stage_c, stage_b, md_escape(frame.status), gr.skip(), gr.skip(), gr.skip(), inputs
        except StudioError as e:
            yield _refused(str(e))

    # --- image panel ------------------------------------------------------------------------
    def check_picture(self, payload):
        """A picture dropped, pasted or uploaded (the upload as sent, not yet opened by Gradio): kept if the
        engine can use it, else removed, with the engine's message in the status line."""
        path = payload.get("path") if isinstance(payload, dict) else None
        if not path:
            return gr.skip(), gr.skip()
        try:
            picture = Picture.open(path, "picture")
        except cc.RequestError as e:
            gr.Warning(html.escape(str(e)))
            return None, f"**Picture not used:** {md_escape(str(e))}"
        return gr.skip(), f"Picture: {picture.size[0]}×{picture.size[1]} px."

    def picture_changed(self, mode, picture):
        """(mask editor, panel): the editor gets the new picture (Repaint), the panel's title says it is in use."""
        return pictures.editor_value(mode, picture), gr.update(label=pictures.panel_label(mode, picture))

    def mode_changed(self, mode, picture):
        """(strength, margin, control strength, mask editor, control map, help, panel): each mode's controls."""
        strength = pictures.STRENGTH_DEFAULTS.get(mode)
        return (gr.update(visible=strength is not None, **({"value": strength} if strength is not None else {})),
                gr.update(visible=mode == "Extend"),
                gr.update(visible=mode in pictures.CONTROLS),
                gr.update(visible=mode == "Repaint", value=pictures.editor_value(mode, picture)),
                gr.update(visible=mode in pictures.MAP_MODES),
                pictures.HELP.get(mode, ""),
                gr.update(label=pictures.panel_label(mode, picture)))

    def stop(self, request: gr.Request) -> str:
        """Stop this session's run; it ends within one engine step."""
        found = self.services.stops.stop(request.session_hash)
        return "Stopping…" if found else "Nothing is running."

    # --- model status -----------------------------------------------------------------------
    def model_status(self):
        holder = self.services.holder
        return holder.status_markdown(), gr.Timer(active=not holder.finished)

    # --- presets ----------------------------------------------------------------------------
    def apply_size(self, name):
        width, height = self.presets.sizes.get(name, (gr.skip(), gr.skip()))
        return width, height

    def match_size(self, width, height):
        """The aspect preset of a size, or Custom."""
        return next((name for name, size in self.presets.sizes.items() if size == (width, height)), CUSTOM_SIZE)

    def apply_quality(self, name):
        q = self.presets.quality.get(name)
        if q is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return q["prior_steps"], q["prior_guidance"], q["decoder_steps"], q["decoder_guidance"]

    # --- gallery ----------------------------------------------------------------------------
    def select(self, items, evt: gr.SelectData):
        """A gallery click: (selected path, settings table, download file, detail visibility)."""
        if evt.index is None or not 0 <= evt.index < len(items):
            return None, [], None, gr.update(visible=False)
        item = items[evt.index]
        return item["path"], gallery.settings_rows(item["settings"]), item["path"], gr.update(visible=True)

    def _selected(self, items, path) -> dict:
        for item in items:
            if item["path"] == path:
                return item["settings"]
        raise gr.Error("Select an image in the gallery first.", print_exception=False)

    def _reused(self, items, path) -> Reused:
        """All settings of the selected image (prompt and style as typed)."""
        s = self._selected(items, path)
        style = s.get("style") if s.get("style") in self.presets.styles else None
        prompt, negative = s.get("prompt", ""), s.get("negative_prompt", "")
        if style:  # as typed, before the style template
            prompt, negative = s.get("user_prompt", prompt), s.get("user_negative_prompt", negative)
        return Reused(prompt, negative, style or "None", s.get("width"), s.get("height"), s.get("seed"), False,
                      s.get("prior_steps"), s.get("prior_guidance"), s.get("decoder_steps"), s.get("decoder_guidance"))

    def reuse_all(self, items, path) -> tuple:
        """Controls ← all settings of the selected image."""
        return self._reused(items, path).outputs()

    def reuse_seed(self, items, path):
        return self._selected(items, path).get("seed"), False

    def variations(self, items, path, count) -> tuple:
        """Same settings, new seeds: randomize on and `count` images."""
        return self._reused(items, path)._replace(randomize=True).outputs(int(count))

    def refine(self, items, path) -> tuple:
        """Same seed, more steps (×1.5 on both stages), one image."""
        reused = self._reused(items, path)
        return reused._replace(prior_steps=_refined(reused.prior_steps),
                               decoder_steps=_refined(reused.decoder_steps)).outputs(1)

    def use_as_input(self, items, path):
        """(picture, panel): the selected image into the image panel, opened."""
        self._selected(items, path)
        return path, gr.update(open=True)

    def vary_subtle(self, items, path, count) -> dict:
        return self._once(items, path, "vary subtle", count)

    def vary_strong(self, items, path, count) -> dict:
        return self._once(items, path, "vary strong", count)

    def upscale(self, items, path) -> dict:
        return self._once(items, path, "upscale", 1)

    def _once(self, items, path, action: str, count) -> dict:
        """What ui_once runs: the action on the selected image (read now, in click order)."""
        return {"path": path, "settings": self._selected(items, path), "action": action, "count": int(count)}

    def load_outputs(self, items):
        """Add the images in the outputs folder that this tab's gallery lacks (newest first)."""
        known = {item["path"] for item in items}
        found = [gallery.make_item(s.path, s.settings) for s in load_saved(self.services.writer.root)
                 if str(s.path) not in known]
        items = sorted(items + found, key=lambda item: _mtime(item["path"]), reverse=True)
        return gallery.gallery_value(items), items, f"Loaded {len(found)} image(s) from the outputs folder."

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

    def clear(self):
        return [], [], [], None, gr.update(visible=False), "Gallery cleared (the files stay in the outputs folder)."

    # --- compare ----------------------------------------------------------------------------
    def toggle_compare(self, chosen, path):
        if not path:
            raise gr.Error("Select an image in the gallery first.", print_exception=False)
        chosen = gallery.toggle_compare(chosen, path)
        return chosen, gr.update(label=f"Compare ({len(chosen)})")

    def clear_compare(self):
        return [], gr.update(label="Compare (0)")

    def compare_view(self, items, chosen):
        """(images side by side, diff table with differing rows highlighted, note)."""
        by_path = {item["path"]: item for item in items}
        picked = [by_path[p] for p in chosen if p in by_path]
        if len(picked) < 2:
            return [], None, "Choose 2–4 images: select one in the gallery, then **Add to compare**."
        rows, differs = gallery.diff_rows([item["settings"] for item in picked])
        headers = ["setting"] + [f"image {k + 1}" for k in range(len(picked))]
        table = _highlight(rows, differs, headers)
        note = f"{sum(differs)} setting(s) differ, highlighted."
        return [(item["path"], f"image {k + 1}: {item['caption']}") for k, item in enumerate(picked)], table, note


def _highlight(rows, differs, headers):
    """The diff table as a styled frame: rows whose values differ get a yellow background."""
    frame = pd.DataFrame(rows, columns=headers)
    style = "background-color: #fff3bf; color: #5c3c00; font-weight: 600"
    return frame.style.apply(lambda row: [style if differs[row.name] else ""] * len(row), axis=1)


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0

