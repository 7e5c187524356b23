"""One generation as a stream of `Frame`s: what the page and the /generate endpoint show.

Shared by the UI handler and the API handler. Waits for the model, runs the engine in a
worker thread, saves every finished image the moment it is done, and turns engine errors
into messages for the user; what a failure's message leaves out is in the server log.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import math
import traceback
from dataclasses import dataclass, field
from typing import Iterator

import cascade_core as cc
from cascade_core.batching import Batcher
from cascade_core.errors import first_line, is_out_of_memory
from PIL.Image import Image

from .imaging import contact_sheet
from .model_holder import ModelHolder
from .outputs import OutputsWriter, SavedImage
from .progress import RunProgress, StepTimes
from .runner import StopRegistry, run_events
from .words import STAGES

log = logging.getLogger(__name__)
WAIT_POLL_S = 0.5
PREVIEW_LONGEST = 384  # Stage C previews are small (8× the latent): shown enlarged to this size


class StudioError(Exception):
    """A message for the user (bad request, model not available); the UI shows it, never a traceback.
    `field`: the request field the message is about (the page marks its control), if any."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Frame:
    status: str  # plain text
    progress: float = 0.0  # of the whole run, 0–1
    stage_c: Image | None = None  # Stage C preview (contact sheet of the batch)
    stage_b: Image | None = None  # latest decoded Stage B intermediate, then the final images
    inputs: Image | None = None  # the control map the ControlNet sees (edges, mask), once the picture is prepared
    saved: tuple[SavedImage, ...] = ()  # set on the last frame of a finished run
    images: tuple[Image, ...] = ()  # the finished images, saved or not
    unblended: tuple[Image, ...] = ()  # repaint, extend: the finished images before the picture was blended in
    settings: tuple[dict, ...] = ()  # their settings
    unsaved: str | None = None  # why some finished images are not in the outputs folder
    notices: tuple[str, ...] = ()
    request: cc.GenerationRequest | None = None  # the validated request, once known
    compositions: tuple[cc.Composition, ...] = ()  # explore: what Finish completes, on the last frame


@dataclass
class Services:
    """What a handler needs: the model, the outputs writer, the stop registry."""
    holder: ModelHolder
    writer: OutputsWriter
    stops: StopRegistry = field(default_factory=StopRegistry)
    preview_every: int = 5  # Stage C steps between previewer images (the previewer is cheap)
    stage_b_views: int = 1  # decoded Stage B intermediates per run: each is a whole Stage A decode
    step_times: StepTimes = field(default_factory=StepTimes)  # measured seconds per step: the estimates
    hosted: bool = False  # on a hosted Space: no server paths in what visitors read
    batcher: Batcher | None = None  # --batch-requests N > 1: up to N runs at once, their steps batched

    @property
    def engine_slots(self) -> int:
        """How many runs the page and the API may have going at once."""
        return self.batcher.max_requests if self.batcher is not None else 1


def decode_every(steps: int, views: int) -> int:
    """Stage B steps between intermediate decodes, so that at most `views` of them come before the
    last step, evenly spaced (0: none).

    A Stage A decode costs 0.4–0.9 Stage B steps (bench/RESULTS.md, "Stage B intermediates"), so
    each view shown lengthens the run by about that much."""
    return max(1, math.ceil(steps / (views + 1))) if views > 0 else 0


def wait_for_model(holder: ModelHolder, stop) -> Iterator[Frame]:
    """Frames with the loading status until the model is ready (or Stop); StudioError if it failed."""
    while not holder.wait(WAIT_POLL_S) and not stop.is_set():
        yield Frame(status=f"Waiting for the model: {holder.message}")
    if holder.finished and not holder.ready:
        raise StudioError(holder.error or "The model is not available.")


def stream(services: Services, session: str, request: cc.GenerationRequest,
           extra_settings: dict | None = None, *, explore: bool = False,
           compositions: tuple[cc.Composition, ...] = ()) -> Iterator[Frame]:
    """Frames of one run; the last one has `saved` set when the run finished (not stopped).

    explore: Stage C only; the last frame holds the previews as `images` and the `compositions`
    (nothing is saved). compositions: finish these instead (`request` is then the first one's)."""
    stop = services.stops.begin(session)
    try:
        yield from wait_for_model(services.holder, stop)
        if stop.is_set():
            yield Frame(status="Stopped before the start.")
            return
        frame = Frame(status="Reading the prompt…")
        stages = {"stage_c": request.prior_steps, "stage_b": request.decoder_steps}
        if explore or compositions:
            del stages["stage_b" if explore else "stage_c"]
        progress = RunProgress(services.step_times, stages, request.width * request.height * (
            len(compositions) or request.num_images))
        save = None if explore else functools.partial(_save, services.writer, extra_settings or {}, services.hosted)
        events = run_events(services.holder.model, request, stop, preview_every=services.preview_every,
                            decode_every=decode_every(request.decoder_steps, services.stage_b_views), on_event=save,
                            stage_c_only=explore, compositions=compositions, batcher=services.batcher)
        event = None
        try:
            for event in events:
                frame = _advance(frame, event, progress)
                yield frame
        except cc.RequestError as e:  # the user's input: their message as it is, one line in the log
            log.warning("request refused: %s", e)
            message, field_name = str(e), e.field
        except Exception as e:  # noqa: BLE001 - the last resort of one run: logged, and the app runs on
            message, field_name = _failed(e), None
        else:
            if isinstance(event, cc.Cancelled):  # stopped: give its cached memory back
                cc.release_memory(services.holder.model.device)
            return
    finally:
        services.stops.end(session, stop)
    # Raised outside the except block and without the cause, so that no traceback (and none of the
    # failed run's tensors, which its frames hold) outlives the request; then its memory goes back.
    cc.release_memory(services.holder.model.device)
    raise StudioError(message, field_name)


def _failed(error: Exception) -> str:
    """Log a failed run; return what the user reads: what to do about memory, or where the details
    are (the exception's text can name server paths, so it stays in the log).

    Out of memory is one log line; anything else is logged with its traceback, whose frames then let
    go of their locals, so that a log record a handler keeps does not keep the failed run's tensors.
    """
    if is_out_of_memory(error):
        log.warning("a run ran out of memory: %s", first_line(error))
        return ("Out of memory during the run. Try a smaller size or fewer images, the lite variant "
                "(--variant lite) or --offload model; this run's memory has been freed for the next one.")
    log.error("a run failed", exc_info=error)
    traceback.clear_frames(error.__traceback__)
    return f"The run failed on the server ({type(error).__name__}); details are in the server log."


@dataclass(frozen=True)
class _Saved:
    """A Finished event whose images are already in the outputs folder."""
    event: cc.Finished
    saved: tuple[SavedImage, ...]  # those written; fewer than the images if the folder failed
    error: str | None = None
    hosted: bool = False  # say "saved", not where


def _save(writer: OutputsWriter, extra: dict, hosted: bool, event):
    """In the engine's worker thread: write finished images at once, whether or not a page still listens.

    A folder that is full or unwritable does not fail the run: the images are still shown, and
    the error is reported with them.
    """
    if not isinstance(event, cc.Finished):
        return event
    seconds = round(event.timings.get("total", 0.0), 2)
    saved, error = [], None
    for image, settings in zip(event.images, event.settings):
        try:
            saved.append(writer.save(image, {**settings, **extra, "seconds": seconds}))
        except OSError as e:
            error = f"{e.strerror or e}" if hosted else f"{e.strerror or e} ({e.filename or writer.root})"
    return _Saved(event, tuple(saved), error, hosted)


def _advance(frame: Frame, event, progress: RunProgress) -> Frame:
    if isinstance(event, cc.Started):
        mode = event.request.mode
        status = "Composition · starting" if mode == "text" else f"{mode.capitalize()} · preparing the picture…"
        return dataclasses.replace(frame, status=status, notices=event.notices, request=event.request)
    if isinstance(event, cc.StageProgress):
        shown = progress.update(event.stage, event.step, event.total, event.elapsed)
        frame = dataclasses.replace(frame, status=shown.text, progress=shown.fraction, notices=())
        if event.previews:
            sheet = contact_sheet(event.previews, longest=PREVIEW_LONGEST if event.stage == "stage_c" else 0)
            frame = dataclasses.replace(frame, **{event.stage: sheet})
        return frame
    if isinstance(event, cc.StageDone):
        if event.stage == "inputs":
            status = f"Picture prepared in {event.seconds:.1f} s · Composition · starting"
            return dataclasses.replace(frame, inputs=contact_sheet(event.previews), notices=(), status=status)
        if event.stage == "stage_c" and event.previews:
            frame = dataclasses.replace(frame, stage_c=contact_sheet(event.previews, longest=PREVIEW_LONGEST))
        return dataclasses.replace(frame, status=f"{STAGES.get(event.stage, event.stage)} done in "
                                                 f"{event.seconds:.1f} s", notices=())
    if isinstance(event, cc.Finished):  # explore: previews, nothing saved
        n = len(event.images)
        return dataclasses.replace(frame, images=event.images, settings=event.settings, compositions=event.compositions,
                                   progress=1.0, notices=(), status=f"Done: {n} composition{'s' if n > 1 else ''} in "
                                                                    f"{event.timings.get('total', 0.0):.1f} s")
    if isinstance(event, _Saved):
        images, seconds = event.event.images, event.event.timings.get("total", 0.0)
        done = f"Done: {len(images)} image{'s' if len(images) > 1 else ''} in {seconds:.1f} s"
        if event.error:
            where = "" if event.hosted else " or choose another --outputs folder"
            status = (f"{done}, but {len(images) - len(event.saved)} could not be saved: {event.error}. "
                      f"Free disk space{where}; the image shown is not on disk.")
        else:
            status = f"{done}, saved" if event.hosted else f"{done}, saved to {event.saved[0].path.parent}"
        return dataclasses.replace(frame, stage_b=contact_sheet(images), saved=event.saved, unsaved=event.error,
                                   images=images, unblended=event.event.unblended, settings=event.event.settings,
                                   notices=(), status=status, progress=1.0)
    if isinstance(event, cc.Cancelled):
        return dataclasses.replace(frame, notices=(),
                                   status=f"Stopped during {STAGES.get(event.stage, event.stage)} after step "
                                          f"{event.step} ({event.elapsed:.1f} s). Ready for the next run.")
    return frame
