"""Text → Stage C → preview → Stage B → Stage A, as numbered stages that yield events.

The procedure and its random stream are the official pipeline's (../shared/reference
README, "pipeline/"): for one image, a CPU generator seeded with `seed` draws Stage C's
start and step noise, then Stage B's. Image k of a batch has its own generator seeded with
seed + k, so it can be remade alone. Each stage's result is the sampler's last prediction
x0, as the official notebooks and `train/base.py` keep it (not the last x, which still
carries the last step's noise). Each network runs in its own dtype; the sampler state and
the schedule stay in fp32.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Generator, Iterator, Sequence

import torch

from . import cuda_graphs, sampling
from .devices import dtype_of, synchronize, trim_host_heap, upload
from .image_conditions import StageCSetup, blend, stage_c_setup
from .errors import RequestError
from .events import Cancelled, Composition, Event, Finished, StageDone, StageProgress, Started
from .images import PendingImages, to_pil
from .model import CascadeModel
from .prompt_windows import PromptMode, dropped_notice
from .request import MAX_IMAGES, GenerationRequest
from .text import TextEmbedding
from .version import __version__

STAGE_C_SHIFT, STAGE_B_SHIFT = 2.0, 1.0
STAGE_C_COMPRESSION, STAGE_A_COMPRESSION = 42.67, 4  # pixels per latent cell (official notebook)


def latent_shapes(width: int, height: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(C, h, w) of the Stage C and Stage B latents for an image size."""
    c = (16, math.ceil(height / STAGE_C_COMPRESSION), math.ceil(width / STAGE_C_COMPRESSION))
    b = (4, math.ceil(height / STAGE_A_COMPRESSION), math.ceil(width / STAGE_A_COMPRESSION))
    return c, b


def image_settings(model: CascadeModel, request: GenerationRequest, seed: int) -> dict:
    """Everything needed to remake the request's image of `seed`: written into its PNG."""
    settings = dataclasses.replace(request, seed=seed, num_images=1).to_dict()
    del settings["num_images"]
    return {**settings, "model": model.name, "variant": model.variant, "version": __version__,
            "sampler": "DDPM", "prior_shift": STAGE_C_SHIFT, "decoder_shift": STAGE_B_SHIFT}


@dataclass(frozen=True)
class StageSampling:
    """How one stage samples: the events' stage name, its start (B, C, h, w) at t_start, its steps and
    the schedule's shift, and every how many steps `show` makes images of the estimate x0 (0: never)."""
    stage: str
    start: torch.Tensor
    steps: int
    shift: float
    t_start: float = 1.0
    show_every: int = 0
    show: Callable[[torch.Tensor], torch.Tensor] | None = None


class _NetworkRun:
    """A network in its dtype behind the sampler's prepare/step calls; steps return fp32, so the
    sampler's arithmetic stays fp32. `fixed` are extra prepare arguments (Stage B's latent size)."""

    def __init__(self, net: torch.nn.Module, **fixed):
        self.net, self.dtype, self.fixed = net, dtype_of(net), fixed

    def prepare(self, **cond):
        return self.net.prepare(**{k: _cast(v, self.dtype) for k, v in cond.items()}, **self.fixed)

    def step(self, x, r, prepared):
        return cuda_graphs.step(self.net, x.to(self.dtype), r, prepared).float()  # replayed, if graphs are on


def _cast(condition, dtype: torch.dtype):
    """A condition in the network's dtype: a tensor, or a list of optional tensors (ControlNet outputs)."""
    if condition is None or isinstance(condition, torch.Tensor):
        return None if condition is None else condition.to(dtype)
    return tuple(_cast(c, dtype) for c in condition)


class _Clock:
    """Stage timings; synchronizes the device at each mark so that GPU time is counted."""

    def __init__(self, device: torch.device):
        self.device, self.start, self.last, self.timings = device, time.perf_counter(), time.perf_counter(), {}

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def mark(self, name: str) -> float:
        synchronize(self.device)
        now = time.perf_counter()
        self.timings[name], self.last = now - self.last, now
        return self.timings[name]


@dataclass
class _Request:
    """One running request: its model, settings, images' seeds and random streams, clock and stop flag."""
    model: CascadeModel
    request: GenerationRequest
    seeds: list[int]
    generators: list[torch.Generator]
    clock: _Clock
    stop: threading.Event | None

    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def batch(self, t: torch.Tensor) -> torch.Tensor:
        """A one-sample tensor (a prompt's embedding) as the request's batch, on the device."""
        return t.to(self.model.device).expand(self.request.num_images, *t.shape[1:])

    def noise(self, shape: tuple[int, ...]) -> torch.Tensor:
        """The next draw of every image's generator, on the device."""
        return upload(sampling.draw_noise(self.generators, shape), self.model.device)


@dataclass(frozen=True)
class StepCall:
    """What a request's coroutine yields before each denoising step; it is sent back the predicted
    noise `denoise(x, r)`, computed alone (`alone`) or with other requests' rows (batching.Batcher)."""
    stage: str  # "stage_c" or "stage_b"
    denoise: sampling.Guided
    x: torch.Tensor  # (B, C, h, w) fp32, the sampler's state
    r: torch.Tensor  # (B,) the step's noise level


Steps = Generator["Event | StepCall", "torch.Tensor | None", None]  # a request as a coroutine (see StepCall)


def generate(model: CascadeModel, request: GenerationRequest, *, stop: threading.Event | None = None,
             preview_every: int = 5, decode_every: int = 2, keep_tensors: bool = False,
             stage_c_only: bool = False) -> Iterator[Event]:
    """Yield the events of one request. Raises RequestError before anything runs if it is invalid.

    preview_every: Stage C steps between previewer images (0: none until Stage C ends).
    decode_every: Stage B steps between Stage A decodes of the current estimate (0: none).
    stop: set it to end the run between two steps with a `Cancelled` event.
    keep_tensors: put float32 CPU copies of latent_c, preview, latent_b and image into Finished.
    stage_c_only: end after the preview (explore): Finished holds the previews as its images and the
    `compositions` that `finish()` completes.
    """
    return alone(model, generation(model, request, stop=stop, preview_every=preview_every,
                                   decode_every=decode_every, keep_tensors=keep_tensors, stage_c_only=stage_c_only))


def alone(model: CascadeModel, steps: Steps) -> Iterator[Event]:
    """The events of a request's coroutine run by itself: each StepCall is one call of its own batch."""
    try:
        item = next(steps)
        while True:
            if isinstance(item, StepCall):
                with model.placement.compute():
                    prediction = item.denoise(item.x, item.r)
                item = steps.send(prediction)
            else:
                yield item
                item = next(steps)
    except StopIteration:
        return
    finally:
        steps.close()


def generation(model: CascadeModel, request: GenerationRequest, *, stop: threading.Event | None = None,
               preview_every: int = 5, decode_every: int = 2, keep_tensors: bool = False,
               stage_c_only: bool = False) -> Steps:
    """`generate` as a coroutine (same arguments): its events, and a StepCall before each denoising step."""
    request, notices = request.validated()
    notices += model.loras.use(request.loras, model.stage_c, model.text_encoder, model.placement)  # lora.py
    seeds = request.seeds()
    run = _Request(model, request, seeds, [torch.Generator().manual_seed(s) for s in seeds],
                   _Clock(model.device), stop)
    shape_c, shape_b = latent_shapes(request.width, request.height)
    place = model.placement

    # 1. Encode the prompt and the negative prompt (the unconditional branch).
    text, negative = yield from _prompts(run, notices)

    # 2. Pictures: Stage C's start, image embedding and control, once per request (image_conditions.py).
    with place.compute():
        setup = stage_c_setup(model.extras, request, shape_c, model.stage_c.config.c_clip_img, run.noise, model.device)
    if request.mode != "text":
        run.clock.mark("inputs")
    if setup.shown:  # the control map (edges, mask) the ControlNet sees
        yield StageDone("inputs", run.clock.timings["inputs"], setup.shown)

    # 3. Stage C: the 16-channel semantic latent, with previews of its estimate every few steps.
    previewer = lambda latent: model.previewer(latent.to(dtype_of(model.previewer))).float()
    place.activate("stage_c", then="stage_b")
    latent_c = yield from _sample(run, _stage_c_denoiser(run, text, negative, setup), StageSampling(
        "stage_c", setup.start, setup.steps, STAGE_C_SHIFT, setup.t_start, preview_every, previewer))
    if latent_c is None:
        return
    run.clock.mark("stage_c")

    # 4. Preview: the previewer's RGB estimate of the final image, from Stage C alone.
    with place.compute():
        preview = previewer(latent_c)
    run.clock.mark("preview")
    yield StageDone("stage_c", run.clock.timings["stage_c"], tuple(to_pil(preview)))
    if stage_c_only:
        kept = {"latent_c": latent_c, "preview": preview} if keep_tensors else {}
        yield _finished(run, preview, kept, compositions=_compositions(run, latent_c, setup.keep))
        return

    # 5 and 6. Stage B and Stage A.
    yield from _decode(run, latent_c, text, negative, setup.keep, decode_every, {"preview": preview}, keep_tensors)


def finish(model: CascadeModel, compositions: Sequence[Composition], *, stop: threading.Event | None = None,
           decode_every: int = 2, keep_tensors: bool = False) -> Iterator[Event]:
    """Yield the events of Stage B and Stage A on explored compositions, as one batch, without running
    Stage C again. Each image's random stream resumes where its Stage C left it, so each image equals
    `generate`'s for the same request and seed. Raises RequestError if the compositions cannot be finished
    together (they must come from one model, with the same settings apart from the seed)."""
    return alone(model, finishing(model, compositions, stop=stop, decode_every=decode_every,
                                  keep_tensors=keep_tensors))


def finishing(model: CascadeModel, compositions: Sequence[Composition], *, stop: threading.Event | None = None,
              decode_every: int = 2, keep_tensors: bool = False) -> Steps:
    """`finish` as a coroutine (same arguments): its events, and a StepCall before each denoising step."""
    request = _finishable(model, compositions)
    generators = [torch.Generator() for _ in compositions]
    for generator, composition in zip(generators, compositions):
        generator.set_state(composition.random_state)
    run = _Request(model, request, [c.request.seed for c in compositions], generators, _Clock(model.device), stop)

    # 1. The prompts (usually still kept by the text encoder from the exploration), with its LoRAs' tokens.
    model.loras.use(request.loras, model.stage_c, model.text_encoder, model.placement)
    text, negative = yield from _prompts(run, ())
    latent_c = upload(torch.cat([c.latent_c for c in compositions]), model.device)  # (B, 16, h, w)
    keep = compositions[0].keep
    if keep is not None:
        keep = tuple(upload(t, model.device) for t in keep)

    # 5 and 6. Stage B and Stage A.
    yield from _decode(run, latent_c, text, negative, keep, decode_every, {}, keep_tensors)


def _finishable(model: CascadeModel, compositions: Sequence[Composition]) -> GenerationRequest:
    """The batch request the compositions make together; RequestError if they cannot be finished so."""
    if not 1 <= len(compositions) <= MAX_IMAGES:
        raise RequestError("compositions", f"{len(compositions)} given; finish 1–{MAX_IMAGES} at a time")
    first = compositions[0]
    if any(c.model != model.name for c in compositions):
        raise RequestError("compositions", f"they were explored with another model; explore again with {model.name}")
    same = lambda c: {**c.request.to_dict(), "seed": None}
    if any(same(c) != same(first) for c in compositions):
        raise RequestError("compositions", "they were explored with different settings; finish those of one "
                           "exploration together")
    return dataclasses.replace(first.request, num_images=len(compositions))


def _compositions(run: _Request, latent_c: torch.Tensor, keep) -> tuple[Composition, ...]:
    """What finish() needs of each image: its Stage C latent and where its random stream stands."""
    keep = None if keep is None else tuple(t.float().cpu() for t in keep)
    latents = latent_c.float().cpu()
    return tuple(Composition(dataclasses.replace(run.request, seed=seed, num_images=1), run.model.name,
                             latents[k:k + 1].clone(), generator.get_state(), keep)
                 for k, (seed, generator) in enumerate(zip(run.seeds, run.generators)))


def _prompts(run: _Request, notices: tuple[str, ...]) -> Iterator[Event]:
    """Stage 1: encode the prompt and the negative prompt; yields Started, returns both embeddings."""
    request = run.request
    mode = PromptMode(request.prompt_windows, request.prompt_weighting)
    text, negative = _encode_prompts(run.model)(request.prompt, request.negative_prompt, mode)
    notices += tuple(dropped_notice(label, e.dropped, mode)
                     for label, e in (("prompt", text), ("negative prompt", negative)) if e.dropped)
    run.clock.mark("text")
    yield Started(request, notices)
    return text, negative


def _decode(run: _Request, latent_c: torch.Tensor, text: TextEmbedding, negative: TextEmbedding, keep,
            decode_every: int, kept: dict, keep_tensors: bool) -> Iterator[Event]:
    """Stages 5 and 6: Stage B from Stage C's latent, then Stage A's pixels; yields through Finished."""
    model, place = run.model, run.model.placement
    _, shape_b = latent_shapes(run.request.width, run.request.height)

    # 5. Stage B: the 4-channel Stage A latent, conditioned on Stage C's latent.
    decoder = lambda latent: model.stage_a.decode(latent.to(dtype_of(model.stage_a))).float()
    place.activate("stage_b")
    with place.compute():
        start_b = run.noise(shape_b)
    latent_b = yield from _sample(run, _stage_b_denoiser(run, latent_c, text, negative, shape_b), StageSampling(
        "stage_b", start_b, run.request.decoder_steps, STAGE_B_SHIFT, 1.0, decode_every, decoder))
    if latent_b is None:
        return
    run.clock.mark("stage_b")
    yield StageDone("stage_b", run.clock.timings["stage_b"])

    # 6. Stage A: pixels; repaint and extend keep the picture outside the repainted area.
    with place.compute():
        image = decoder(latent_b).clamp(0, 1)
        final = blend(image, keep) if keep is not None else image
    run.clock.mark("stage_a")
    kept = {"latent_c": latent_c, **kept, "latent_b": latent_b, "image": final} if keep_tensors else {}
    if keep_tensors and keep is not None:
        kept["unblended"] = image
    yield _finished(run, final, kept, unblended=image if keep is not None else None)


def _finished(run: _Request, images: torch.Tensor, kept: dict, unblended: torch.Tensor | None = None,
              compositions: tuple[Composition, ...] = ()) -> Finished:
    """The last event: the images, what remakes each, the stage timings, and the kept tensors."""
    run.clock.timings["total"] = run.clock.elapsed()
    trim_host_heap()  # the run's freed host buffers back to the OS, so a long session's memory stays flat
    return Finished(
        images=tuple(to_pil(images)),
        unblended=tuple(to_pil(unblended)) if unblended is not None else (),
        seeds=tuple(run.seeds),
        settings=tuple(image_settings(run.model, run.request, seed) for seed in run.seeds),
        timings=dict(run.clock.timings),
        tensors={k: v.float().cpu() for k, v in kept.items()},
        compositions=compositions,
    )


def _encode_prompts(model: CascadeModel) -> Callable[[str, str, PromptMode], tuple[TextEmbedding, TextEmbedding]]:
    """Encodes two prompts with as many windows each; when the encoder still keeps them, its weights need
    not come to the device."""
    place = model.placement

    def on_device():
        place.activate("text_encoder", then="stage_c")
        return place.compute()

    return functools.partial(model.text_encoder.pair, on_miss=on_device)


def _stage_c_denoiser(run: _Request, text: TextEmbedding, negative: TextEmbedding,
                      setup: StageCSetup) -> sampling.Guided:
    """Stage C's guided denoiser: text conditions, the image embedding (the unconditional branch: zeros)
    and the control (the same for both branches, as the official notebooks do)."""
    cond = {"clip_text": run.batch(text.clip_text), "clip_text_pooled": run.batch(text.clip_text_pooled),
            "clip_img": setup.clip_img, "cnet": setup.control}
    uncond = {"clip_text": run.batch(negative.clip_text), "clip_text_pooled": run.batch(negative.clip_text_pooled),
              "clip_img": torch.zeros_like(setup.clip_img), "cnet": setup.control}
    with run.model.placement.compute():  # the text keys and values, once per request
        return sampling.guided(_NetworkRun(run.model.stage_c), cond, uncond, run.request.prior_guidance)


def _stage_b_denoiser(run: _Request, latent_c: torch.Tensor, text: TextEmbedding, negative: TextEmbedding,
                      shape_b: tuple[int, int, int]) -> sampling.Guided:
    """Stage B's guided denoiser: conditioned on Stage C's latent; the unconditional branch gets zeros."""
    cond = {"effnet": latent_c, "clip": run.batch(text.clip_text_pooled)}
    uncond = {"effnet": torch.zeros_like(latent_c), "clip": run.batch(negative.clip_text_pooled)}
    with run.model.placement.compute():
        return sampling.guided(_NetworkRun(run.model.stage_b, size=shape_b[1:]), cond, uncond,
                               run.request.decoder_guidance)


def _sample(run: _Request, denoise: sampling.Guided, how: StageSampling) -> Steps:
    """Run one stage's sampler, yielding progress; returns the last prediction x0, or None if stopped.

    Before each step it yields a StepCall and is sent the predicted noise. Every `how.show_every` steps `how.show` makes images of the current estimate x0; they reach
    the host without stalling the loop (images.PendingImages) and ride on the first progress
    event after they land.
    """
    compute = run.model.placement.compute
    shape = tuple(how.start.shape[1:])
    with compute():
        schedule = sampling.cosine_schedule(how.steps, how.shift, how.t_start)
        levels = schedule.r.to(how.start.device)
    x, x0, pending = how.start, None, None
    for step in range(1, how.steps + 1):
        if run.stopped():
            yield Cancelled(how.stage, step - 1, run.clock.elapsed())
            return None
        prediction = yield StepCall(how.stage, denoise, x, levels[step - 1].expand(len(x)))
        with compute():
            x, x0 = sampling.ddpm_step(x, prediction, schedule, step - 1, lambda: run.noise(shape))
            if how.show_every and step % how.show_every == 0 and step < how.steps:
                pending = PendingImages(how.show(x0), step)  # queued behind this step; the loop goes on
        shown = None
        if pending is not None and (pending.ready() or step == how.steps):
            shown, pending = pending, None
        previews = tuple(shown.images()) if shown else ()
        yield StageProgress(how.stage, step, how.steps, run.clock.elapsed(), previews, shown.step if shown else 0)
    return x0
