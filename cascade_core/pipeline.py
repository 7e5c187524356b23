"""Text → Stage C → preview → Stage B → Stage A, as numbered stages that yield events.

The procedure and its random stream are the official pipeline's (../shared/reference
README, "pipeline/"): for one image, a CPU generator seeded with `seed` draws Stage C's
start and step noise, then Stage B's. Image k of a batch has its own generator seeded with
seed + k, so it can be remade alone. Each network runs in its own dtype; the sampler state
and the schedule stay in fp32.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Iterator

import torch

from . import sampling
from .devices import synchronize, trim_host_heap
from .events import Cancelled, Event, Finished, StageDone, StageProgress, Started
from .images import PendingImages, to_pil
from .model import CascadeModel
from .request import GenerationRequest
from .version import __version__

STAGE_C_SHIFT, STAGE_B_SHIFT = 2.0, 1.0
STAGE_C_COMPRESSION, STAGE_A_COMPRESSION = 42.67, 4  # pixels per latent cell (official notebook)


def latent_shapes(width: int, height: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(C, h, w) of the Stage C and Stage B latents for an image size."""
    c = (16, math.ceil(height / STAGE_C_COMPRESSION), math.ceil(width / STAGE_C_COMPRESSION))
    b = (4, math.ceil(height / STAGE_A_COMPRESSION), math.ceil(width / STAGE_A_COMPRESSION))
    return c, b


def image_settings(model: CascadeModel, request: GenerationRequest, k: int) -> dict:
    """Everything needed to remake image k of a request: written into its PNG."""
    settings = request.for_image(k).to_dict()
    del settings["num_images"]
    return {**settings, "model": model.name, "variant": model.variant, "version": __version__,
            "sampler": "DDPM", "prior_shift": STAGE_C_SHIFT, "decoder_shift": STAGE_B_SHIFT}


class _Run:
    """A network in its dtype behind the sampler's prepare/step calls; steps return fp32, so the
    sampler's arithmetic stays fp32. `fixed` are extra prepare arguments (Stage B's latent size)."""

    def __init__(self, net: torch.nn.Module, **fixed):
        self.net, self.dtype, self.fixed = net, _dtype(net), fixed

    def prepare(self, **cond):
        return self.net.prepare(**{k: v.to(self.dtype) for k, v in cond.items()}, **self.fixed)

    def step(self, x, r, prepared):
        return self.net.step(x.to(self.dtype), r, prepared).float()


def _dtype(net: torch.nn.Module) -> torch.dtype:
    """The dtype a network computes in (with float16 asked for, Stage C keeps another: loading.py)."""
    return next(net.parameters()).dtype


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


def generate(model: CascadeModel, request: GenerationRequest, *, stop: threading.Event | None = None,
             preview_every: int = 5, decode_every: int = 2, keep_tensors: bool = False) -> Iterator[Event]:
    """Yield the events of one request. Raises RequestError before anything runs if it is invalid.

    preview_every: Stage C steps between previewer images (0: none until Stage C ends).
    decode_every: Stage B steps between Stage A decodes of the current estimate (0: none).
    stop: set it to end the run between two steps with a `Cancelled` event.
    keep_tensors: put float32 CPU copies of latent_c, preview, latent_b and image into Finished.
    """
    request, notices = request.validated()
    device = model.device
    clock = _Clock(device)
    generators = [torch.Generator().manual_seed(seed) for seed in request.seeds()]
    n = request.num_images
    shape_c, shape_b = latent_shapes(request.width, request.height)
    stopped = lambda: stop is not None and stop.is_set()

    # 1. Encode the prompt and the negative prompt (the unconditional branch), unless the encoder
    #    still has both from an earlier request: then its weights need not come to the device either.
    place, encoder = model.placement, model.text_encoder
    text, negative = encoder.cached(request.prompt), encoder.cached(request.negative_prompt)
    if text is None or negative is None:
        place.activate("text_encoder", then="stage_c")
        with place.compute():
            text, negative = encoder(request.prompt), encoder(request.negative_prompt)
    for label, embedding in (("prompt", text), ("negative prompt", negative)):
        if embedding.dropped:
            notices += (f"The {label} is longer than 77 CLIP tokens; these words were ignored: {embedding.dropped}",)
    clock.mark("text")
    yield Started(request, notices)

    # 2. Stage C: the 16-channel semantic latent.
    batch = lambda t: t.to(device).expand(n, *t.shape[1:])
    clip_img = torch.zeros(n, 1, model.stage_c.config.c_clip_img, device=device)
    cond = {"clip_text": batch(text.clip_text), "clip_text_pooled": batch(text.clip_text_pooled), "clip_img": clip_img}
    uncond = {"clip_text": batch(negative.clip_text), "clip_text_pooled": batch(negative.clip_text_pooled),
              "clip_img": clip_img}
    previewer = lambda latent: model.previewer(latent.to(_dtype(model.previewer))).float()
    place.activate("stage_c", then="stage_b")
    with place.compute():  # the text keys and values, once per request
        denoise = sampling.guided(_Run(model.stage_c), cond, uncond, request.prior_guidance)
    latent_c = yield from _sample("stage_c", denoise, request.prior_steps, STAGE_C_SHIFT, shape_c, generators,
                                  device, clock, stopped, preview_every, previewer, place.compute)
    if latent_c is None:
        return
    clock.mark("stage_c")

    # 3. Preview: the previewer's RGB estimate of the final image, from Stage C alone.
    with place.compute():
        preview = previewer(latent_c)
    clock.mark("preview")
    yield StageDone("stage_c", clock.timings["stage_c"], tuple(to_pil(preview)))

    # 4. Stage B: the 4-channel Stage A latent, conditioned on Stage C's latent.
    cond = {"effnet": latent_c, "clip": batch(text.clip_text_pooled)}
    uncond = {"effnet": torch.zeros_like(latent_c), "clip": batch(negative.clip_text_pooled)}
    place.activate("stage_b")
    with place.compute():
        denoise = sampling.guided(_Run(model.stage_b, size=shape_b[1:]), cond, uncond,
                                  request.decoder_guidance)
    decoder = lambda latent: model.stage_a.decode(latent.to(_dtype(model.stage_a))).float()
    latent_b = yield from _sample("stage_b", denoise, request.decoder_steps, STAGE_B_SHIFT, shape_b, generators,
                                  device, clock, stopped, decode_every, decoder, place.compute)
    if latent_b is None:
        return
    clock.mark("stage_b")
    yield StageDone("stage_b", clock.timings["stage_b"])

    # 5. Stage A: pixels.
    with place.compute():
        image = decoder(latent_b).clamp(0, 1)
    clock.mark("stage_a")
    clock.timings["total"] = clock.elapsed()
    trim_host_heap()  # the run's freed host buffers back to the OS, so a long session's memory stays flat
    tensors = {}
    if keep_tensors:
        tensors = {k: v.float().cpu() for k, v in
                   {"latent_c": latent_c, "preview": preview, "latent_b": latent_b, "image": image}.items()}
    yield Finished(
        images=tuple(to_pil(image)),
        seeds=tuple(request.seeds()),
        settings=tuple(image_settings(model, request, k) for k in range(n)),
        timings=dict(clock.timings),
        tensors=tensors,
    )


def _sample(stage, denoise, steps, shift, shape, generators, device, clock, stopped, every, show, compute):
    """Run one stage's sampler, yielding progress; returns the final latent, or None if stopped.

    Every `every` steps `show` makes images of the current estimate x0; they reach the host
    without stalling the loop (images.PendingImages) and ride on the first progress event
    after they land.

    compute: the context every block of network calls runs in (inference mode, weight streaming).
    """
    with compute():
        schedule = sampling.cosine_schedule(steps, shift)
        noise = sampling.draw_noise(generators, shape, steps + 1).to(device)
        states = sampling.ddpm_sample(denoise, schedule, noise)
    x, pending = None, None
    for step in range(1, steps + 1):
        if stopped():
            yield Cancelled(stage, step - 1, clock.elapsed())
            return None
        with compute():
            x, x0 = next(states)
            if every and step % every == 0 and step < steps:
                pending = PendingImages(show(x0), step)  # queued behind this step; the loop goes on
        shown = None
        if pending is not None and (pending.ready() or step == steps):
            shown, pending = pending, None
        previews = tuple(shown.images()) if shown else ()
        yield StageProgress(stage, step, steps, clock.elapsed(), previews, shown.step if shown else 0)
    return x
