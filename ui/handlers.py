"""Run handlers of the page and the API: Generate, Explore, Finish, a gallery action's one run, Stop.

Page runs answer with `PageOut` tuples, in the order ui/layout.py wires them. A request the
engine refuses shows the engine's own message in the status line and a toast, and marks the
control it is about (`error_html`; ui/studio.js does the marking).
"""
from __future__ import annotations

import dataclasses
import html
import secrets
from typing import NamedTuple

import cascade_core as cc
import gradio as gr
from cascade_core.picture import Picture

from . import explore, gallery, loras, pictures
from .display_files import DisplayFiles, display_files
from .fields import FIELD_CONTROLS
from .generation import Frame, Services, StudioError, stream
from .markdown import md_escape
from .presets import CUSTOM_SIZE, Presets, apply_style
from .summary import summary_markdown

_NOTHING_YET = object()  # no live image sent yet: the first frame replaces (or clears) the last run's
PAGE_IMAGE_FORMAT = "webp"  # the page's live images, as gr.Image sends them by default: small to send
API_IMAGE_FORMAT = "png"  # /generate's images are lossless (the format of its components in ui/layout.py)
REFINE_FACTOR = 1.5


class PageOut(NamedTuple):
    """The outputs of a page run, by name (ui/layout.py passes the components in this order)."""
    progress: object
    status: object
    stage_c: object
    canvas: object
    control_map: object
    gallery: object
    items: object
    seed: object
    selected: object
    detail: object
    summary: object
    error: object
    download: object


def _out(**values) -> tuple:
    """A PageOut with `values` set and every other output left as the page shows it."""
    return tuple(PageOut(**{name: values.get(name, gr.skip()) for name in PageOut._fields}))


def progress_html(fraction: float, label: str = "") -> str:
    """The progress bar: a stage label and the share of the whole run (the tab's title follows it)."""
    percent = max(0, min(100, round(100 * fraction)))
    return (f'<div class="run-progress" data-percent="{percent}" data-stage="{html.escape(label)}">'
            f'<div class="run-progress-bar" style="width:{percent}%"></div></div>')


def error_html(field: str | None, message: str) -> str:
    """The marker studio.js reads to show `message` next to the control of `field` (nothing if none)."""
    control = FIELD_CONTROLS.get(field or "")
    if control is None:
        return ""
    return f'<span class="field-error-marker" data-control="{control}" data-message="{html.escape(message)}"></span>'


def _request(prompt, negative_prompt, width, height, seed, prior_steps, prior_guidance, decoder_steps,
             decoder_guidance, num_images, loras=None) -> cc.GenerationRequest:
    """Values as typed → a request; the engine validates it (RequestError names the field). An empty or
    negative seed means a new random one, as in AUTOMATIC1111 (-1). JSON's [name, strength] lists are pairs."""
    seed = None if seed is None or seed == "" or (isinstance(seed, (int, float)) and seed < 0) else seed
    if isinstance(loras, list):
        loras = tuple(tuple(pair) if isinstance(pair, list) else pair for pair in loras)
    return cc.GenerationRequest(prompt or "", negative_prompt or "", width, height, seed, prior_steps,
                                prior_guidance, decoder_steps, decoder_guidance, num_images,
                                loras=() if loras is None else loras)


def _refusal(message: str, field: str | None = None, progress: float = 0.0) -> dict:
    """The page's outputs when a run could not start or failed: the engine's message in the status line,
    in a toast, and beside the control it is about."""
    gr.Warning(html.escape(message))  # toasts render HTML: show the message as text
    return dict(status=f"**Not generated:** {md_escape(message)}", error=error_html(field, message),
                progress=progress_html(progress, "Not generated"))


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


def _styled(presets: Presets, style, prompt, negative_prompt) -> tuple[str, str, dict]:
    """The prompts with the style's template applied, and what to save to remake them as typed."""
    styled, styled_negative = apply_style(presets.styles.get(style), prompt or "", negative_prompt or "")
    return styled, styled_negative, {"style": style, "user_prompt": prompt or "",
                                     "user_negative_prompt": negative_prompt or ""}


def refined(steps: int) -> int:
    return min(200, round(steps * REFINE_FACTOR))


class Handlers:
    def __init__(self, services: Services, presets: Presets):
        self.services, self.presets = services, presets

    # --- the API ----------------------------------------------------------------------------
    def api_generate(self, prompt, negative_prompt, width, height, seed, prior_steps, prior_guidance,
                     decoder_steps, decoder_guidance, num_images, request: gr.Request, loras=None):
        """/generate: yields (stage C preview, Stage B image, final images, settings JSON, status). `loras`:
        [[name, strength], …] (optional)."""
        req = _request(prompt, negative_prompt, width, height, seed, prior_steps, prior_guidance, decoder_steps,
                       decoder_guidance, num_images, loras)
        for output in self._api_run(req, request.session_hash):
            yield output[:5]

    def api_generate_with_images(self, prompt, negative_prompt, width, height, seed, prior_steps, prior_guidance,
                                 decoder_steps, decoder_guidance, num_images, init_image=None, strength=None,
                                 image_size=None, image_prompt=None, control="none", control_image=None, mask=None,
                                 margin=0, control_scale=1.0, request: gr.Request = None, loras=None):
        """/generate_with_images: /generate's parameters, then the engine's picture fields (pictures as files);
        yields /generate's outputs and the control map (edges or mask) once the pictures are prepared. The
        defaults (None: no picture) make each picture field optional for gradio_client's keyword calls. A seventh
        output holds a repaint's or an extend's unblended images on the last update (None otherwise)."""
        req = _request(prompt, negative_prompt, width, height, seed, prior_steps, prior_guidance, decoder_steps,
                       decoder_guidance, num_images, loras)
        try:
            req = dataclasses.replace(req, **pictures.api_fields(init_image, strength, image_size, image_prompt,
                                                                 control, control_image, mask, margin, control_scale))
        except cc.RequestError as e:  # a picture the engine refuses: its message, as for any other field
            raise gr.Error(str(e), print_exception=False) from None
        yield from self._api_run(req, request.session_hash)

    def _api_run(self, req: cc.GenerationRequest, session: str):
        try:
            loras.check_names(req.loras, self.services.holder)
        except cc.RequestError as e:
            raise gr.Error(str(e), print_exception=False) from None
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

    # --- the page's runs --------------------------------------------------------------------
    def ui_generate(self, prompt, negative_prompt, width, height, seed, randomize, prior_steps, prior_guidance,
                    decoder_steps, decoder_guidance, num_images, style, items, request: gr.Request,
                    mode=pictures.DEFAULT_MODE, picture=None, editor=None, strength=pictures.Panel.strength,
                    margin=pictures.DEFAULT_MARGIN, control_scale=1.0, *lora_slots):
        """The page's Generate (PageOut). The image panel's values follow `request` (Gradio passes that by its
        type), so that a call without them is text to image; the panel's picture goes in as its mode says;
        then the LoRA slots (name, strength, …)."""
        styled, styled_negative, extra = _styled(self.presets, style, prompt, negative_prompt)
        req = _request(styled, styled_negative, width, height, None if randomize else seed, prior_steps,
                       prior_guidance, decoder_steps, decoder_guidance, num_images, loras.chosen(lora_slots))
        try:
            panel = pictures.Panel(mode, picture, editor, strength, margin, control_scale)
            req = dataclasses.replace(req, **pictures.panel_fields(panel))
        except cc.RequestError as e:
            yield _out(**_refusal(str(e), e.field))
            return
        yield from self._page_run(req, extra, items, request.session_hash)

    def ui_once(self, once, items, request: gr.Request):
        """A gallery action's one run from the selected image (Variations, Refine, Vary, Upscale 2×): the
        controls are left as they are for the next Generate."""
        if not once:
            return
        try:
            req, extra = self._once_request(once)
        except cc.RequestError as e:
            yield _out(**_refusal(str(e), e.field))
            return
        yield from self._page_run(req, extra, items, request.session_hash, show_seed=False)

    def _once_request(self, once: dict) -> tuple[cc.GenerationRequest, dict]:
        settings, action, count = once["settings"], once["action"], once["count"]
        if action in ("variations", "refine"):
            q = self.presets.quality["balanced"]
            values = {k: settings.get(k, q.get(k)) for k in ("prior_steps", "prior_guidance", "decoder_steps",
                                                              "decoder_guidance")}
            if action == "refine":
                values["prior_steps"], values["decoder_steps"] = (refined(values["prior_steps"]),
                                                                  refined(values["decoder_steps"]))
            seed = settings.get("seed") if action == "refine" else None
            req = _request(settings.get("prompt", ""), settings.get("negative_prompt", ""), settings.get("width"),
                           settings.get("height"), seed, num_images=count if action == "variations" else 1,
                           loras=settings.get("loras") or None, **values)
            extra = {k: settings[k] for k in ("style", "user_prompt", "user_negative_prompt") if k in settings}
            return req, extra
        return pictures.from_gallery(once["path"], settings, action, count, self.presets.quality["balanced"])

    def ui_finish(self, explored, picked, items, request: gr.Request):
        """Finish the chosen compositions (Stage B and Stage A only), a batch of up to eight at a time."""
        groups = explore.finish_groups(explored or [], picked or [])
        if not groups:
            yield _out(**_refusal("Choose one or more compositions first: click them in the Explore tab."))
            return
        for group in groups:
            compositions = tuple(entry["composition"] for entry in group)
            items, failed = yield from self._page_run(compositions[0].request, group[0]["extra"], items,
                                                      request.session_hash, show_seed=False, compositions=compositions)
            if failed:
                return

    def _page_run(self, req: cc.GenerationRequest, extra: dict, items, session: str, show_seed: bool = True,
                  compositions: tuple = ()):
        """A run's page outputs. A live image is sent when it changes; otherwise gr.skip() keeps the one the
        page shows. When it ends, the canvas shows its first image, selected. Returns (items, whether it failed)."""
        shown = [_NOTHING_YET] * 3  # the live images' files as last sent (None: cleared)
        try:
            loras.check_names(req.loras, self.services.holder)
        except cc.RequestError as e:
            yield _out(**_refusal(str(e), e.field))
            return items, True
        try:
            with display_files(PAGE_IMAGE_FORMAT) as files:
                for frame in stream(self.services, session, req, extra, compositions=compositions):
                    _show_notices(frame)
                    if frame.unsaved:
                        gr.Warning(html.escape(f"Not saved: {frame.unsaved}"))
                    _show_saved(frame, files)
                    live = [files.path(frame.stage_c), files.path(frame.stage_b), files.path(frame.inputs)]
                    stage_c, canvas, inputs = (gr.skip() if new == old else new for new, old in zip(live, shown))
                    shown = live
                    step = dict(progress=progress_html(frame.progress, frame.status.split(" · ")[0]),
                                status=md_escape(frame.status), stage_c=stage_c, canvas=canvas, control_map=inputs,
                                error="")
                    if frame.images and frame.saved:
                        new = [gallery.make_item(s.path, s.settings) for s in frame.saved]
                        items = gallery.add_items(items, new)
                        first = new[0]
                        step.update(canvas=first["path"], gallery=gallery.gallery_value(items), items=items,
                                    selected=first["path"], detail=gr.update(visible=True),
                                    summary=summary_markdown(first["settings"]), download=first["path"])
                        if show_seed:
                            step["seed"] = frame.request.seed
                    yield _out(**step)
        except StudioError as e:
            yield _out(**_refusal(str(e), e.field))
            return items, True
        return items, False

    def ui_explore(self, prompt, negative_prompt, width, height, seed, randomize, prior_steps, prior_guidance,
                   decoder_steps, decoder_guidance, style, count, request: gr.Request, *lora_slots):
        """Explore: Stage C alone for `count` consecutive seeds; the previews fill the Explore grid a batch at a
        time. Outputs: progress, status, composition preview, explore grid, explored, picked, seed, error."""
        def refused(message, field=None):
            r = _refusal(message, field)
            return r["progress"], r["status"], gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), r["error"]

        styled, styled_negative, extra = _styled(self.presets, style, prompt, negative_prompt)
        base = _request(styled, styled_negative, width, height, None if randomize else seed, prior_steps,
                        prior_guidance, decoder_steps, decoder_guidance, 1, loras.chosen(lora_slots))
        if isinstance(count, bool) or not isinstance(count, (int, float)) or not 1 <= count <= explore.MAX_EXPLORE \
                or count != int(count):
            yield refused(f"explore: {count!r} compositions; choose a whole number from 1 to {explore.MAX_EXPLORE}",
                          "explore_count")
            return
        try:
            loras.check_names(base.loras, self.services.holder)
            first = base.validated()[0].seed if base.seed is not None else secrets.randbelow(2**32)
        except cc.RequestError as e:
            yield refused(str(e), e.field)
            return
        runs = explore.batches(first, int(count))
        explored: list[dict] = []
        try:
            with display_files(PAGE_IMAGE_FORMAT) as files:
                for k, (seed0, n) in enumerate(runs):
                    req = dataclasses.replace(base, seed=seed0, num_images=n)
                    for frame in stream(self.services, request.session_hash, req, extra, explore=True):
                        _show_notices(frame)
                        share = (k + frame.progress) / len(runs)
                        status = f"Exploring {len(explored) + n if frame.compositions else len(explored)}/{count} · " \
                                 f"{frame.status}"
                        grid = picked = gr.skip()
                        if frame.compositions:
                            explored = explored + [{"composition": c, "preview": image, "extra": extra}
                                                   for c, image in zip(frame.compositions, frame.images)]
                            grid, picked = explore.gallery_value(explored, []), []
                        yield (progress_html(share, "Exploring"), md_escape(status), files.path(frame.stage_c), grid,
                               explored if frame.compositions else gr.skip(), picked,
                               first if k == 0 and frame.request is not None else gr.skip(), "")
        except StudioError as e:
            yield refused(str(e), e.field)

    def pick(self, explored, picked, evt: gr.SelectData):
        """A click on a composition chooses it or unchooses it: (grid, picked, Finish button)."""
        if evt.index is None or not 0 <= evt.index < len(explored or []):
            return gr.skip(), gr.skip(), gr.skip()
        picked = explore.toggle(picked or [], evt.index)
        return explore.gallery_value(explored, picked), picked, gr.update(value=explore.finish_label(picked))

    def pick_none(self, explored):
        return explore.gallery_value(explored or [], []), [], gr.update(value=explore.finish_label([]))

    def stop(self, request: gr.Request) -> str:
        """Stop this session's run; it ends within one engine step."""
        found = self.services.stops.stop(request.session_hash)
        return "Stopping…" if found else "Nothing is running."

    # --- the image panel --------------------------------------------------------------------
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

    # --- model status and presets -----------------------------------------------------------
    def lora_choices(self):
        """The LoRA pickers' choices: the LoRA folder's files, listed again."""
        names = loras.folder_choices(self.services.holder)
        return tuple(gr.update(choices=names) for _ in range(loras.SLOTS))

    def model_status(self):
        holder = self.services.holder
        return holder.status_markdown(), gr.Timer(active=not holder.finished)

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
