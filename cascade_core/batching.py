"""Requests served together: one engine thread merges the step loops of concurrent requests.

Each request runs as its pipeline coroutine (`pipeline.generation` / `pipeline.finishing`), which
yields its events and, before each denoising step, a `StepCall`. The engine thread advances every
admitted request to its next StepCall (running its own work on the way: text encoding, pictures,
previews, Stage A), then makes one network call per group of requests whose steps can share one:
the same model and stage, the same latent size, and prepared conditionings of the same shapes
(for Stage C: prompts that fill the same number of 77-token windows). The call concatenates the
requests' rows (x, per-sample noise level r, and the prepared text keys and values, see
`prepared.join`), and each request's rows are split off and guided with its own guidance
(`sampling.guided_together`). Everything else stays per request: seed and random streams,
schedule and step count, previews, progress, Stop. A request joins a group at its stage's start
and leaves it when its steps end or it is stopped, so requests at different steps share a call.

At most `max_requests` requests are admitted at once (the rest wait, in order), and one network
call never runs more than MAX_IMAGES images, the most one request may ask for, so batching never
needs more activation memory than the largest single request. Requests with different LoRA sets
are never admitted together (a model runs one set at a time); requests of different models never
share a call.

Each image equals what it would be alone up to kernels whose rounding depends on the batch size
(bench/RESULTS.md and tests/cascade_core/test_batching.py state the measured differences).
"""
from __future__ import annotations

import collections
import contextlib
import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import torch

from . import prepared, sampling
from .events import Composition, Event
from .model import CascadeModel
from .pipeline import StepCall, Steps, finishing, generation
from .request import MAX_IMAGES, GenerationRequest

log = logging.getLogger(__name__)
_DONE = object()


def exclusive_key(request: GenerationRequest) -> tuple:
    """What requests running at the same time must share: their LoRA set. LoRAs are merged into the
    weights for a run (lora.py), so a model runs one set at a time; the order they are listed in and
    strength-0 entries do not change the set."""
    return tuple(sorted((name, strength) for name, strength in request.loras if strength != 0))


@dataclass(eq=False)
class _Member:
    """One admitted or waiting request: its coroutine, the queue its consumer reads, its pending step."""
    model: CascadeModel
    steps: Steps
    exclusive: Any
    events: queue.Queue = field(default_factory=queue.Queue)
    call: StepCall | None = None  # the step it waits for
    key: tuple | None = None  # the group key of `call`'s denoiser
    keyed: sampling.Guided | None = None  # the denoiser `key` was computed for
    images: int = 0  # rows of x in its step

    def group_key(self) -> tuple:
        call = self.call
        if self.keyed is not call.denoise:  # a new stage: its conditioning's layout, once
            self.keyed = call.denoise
            self.key = (id(self.model), call.stage, tuple(call.x.shape[1:]), call.x.dtype,
                        prepared.layout(call.denoise.prepared))
        return self.key


class Batcher:
    """Serves requests from any number of threads; one engine thread runs them, sharing steps.

    `events(model, request, …)` starts a request and gives its events as `generate` does; requests
    started from several threads run together. max_requests: how many are admitted at once (1: one
    at a time, as `generate` under a lock)."""

    def __init__(self, max_requests: int = 8):
        if max_requests < 1:
            raise ValueError(f"max_requests must be at least 1, got {max_requests}")
        self.max_requests = max_requests
        self._waiting: collections.deque[_Member] = collections.deque()
        self._members: list[_Member] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._held = 0  # while > 0, nothing new is admitted (held())
        self._joined: dict[tuple[int, ...], tuple[tuple, Any]] = {}  # ids of denoisers → (them, their join)
        self.calls: collections.deque[tuple[str, int]] = collections.deque(maxlen=4096)  # (stage, images) of the
        # latest network calls: the batches made

    def events(self, model: CascadeModel, request: GenerationRequest, *, stop: threading.Event | None = None,
               **options) -> Iterator[Event]:
        """Start the request; its events, as `generate(model, request, stop=stop, **options)` gives them.
        Leaving the iterator early sets `stop`: the request ends at its next step."""
        stop = stop if stop is not None else threading.Event()
        return self._served(model, generation(model, request, stop=stop, **options), stop, exclusive_key(request))

    def finish_events(self, model: CascadeModel, compositions: Sequence[Composition], *,
                      stop: threading.Event | None = None, **options) -> Iterator[Event]:
        """Start finishing the compositions; the events of `finish(model, compositions, stop=stop, **options)`."""
        stop = stop if stop is not None else threading.Event()
        exclusive = exclusive_key(compositions[0].request) if compositions else ()
        return self._served(model, finishing(model, compositions, stop=stop, **options), stop, exclusive)

    @property
    def queued(self) -> int:
        """Requests started but not yet admitted (waiting for a place)."""
        with self._wake:
            return len(self._waiting)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Admit nothing new inside the block, so that the requests started in it begin together (those
        already running run on)."""
        with self._wake:
            self._held += 1
        try:
            yield
        finally:
            with self._wake:
                self._held -= 1
                self._wake.notify()

    def close(self) -> None:
        """End the engine thread once every request given so far has finished."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()

    def _served(self, model: CascadeModel, steps: Steps, stop: threading.Event, exclusive) -> Iterator[Event]:
        member = _Member(model, steps, exclusive)
        with self._wake:
            if self._closing:
                raise RuntimeError("the batcher is closed")
            self._waiting.append(member)
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="cascade-batcher", daemon=True)
                self._thread.start()
            self._wake.notify()
        return self._read(member, stop)

    @staticmethod
    def _read(member: _Member, stop: threading.Event) -> Iterator[Event]:
        done = False
        try:
            while True:
                item = member.events.get()
                if item is _DONE:
                    done = True
                    return
                if isinstance(item, BaseException):
                    done = True
                    raise item
                yield item
        finally:
            if not done:
                stop.set()  # the consumer left: the request ends at its next step

    # The engine thread.

    def _serve(self) -> None:
        while self._admit():
            try:
                self._round()
            except Exception as e:  # noqa: BLE001 - a fault of the engine itself: fail those running, serve on
                log.exception("the batching engine failed; its running requests end with the error")
                for member in list(self._members):
                    self._leave(member, e)

    def _round(self) -> None:
        """Advance every request to its next step, then run each group's steps (one call per chunk)."""
        for member in [m for m in self._members if m.call is None]:
            self._advance(member, None)
        groups: dict[tuple, list[_Member]] = {}
        for member in self._members:
            groups.setdefault(member.group_key(), []).append(member)
        used = set()
        for group in groups.values():
            for chunk in _chunks(group):
                used.add(self._step(chunk))
        self._joined = {k: v for k, v in self._joined.items() if k in used}

    def _admit(self) -> bool:
        """Admit waiting requests, in order, while there is room and their LoRA set is the running one's;
        wait while there is nothing to do. False: closed and idle."""
        with self._wake:
            while not self._members and (not self._waiting or self._held):
                if self._closing and not self._waiting:
                    return False
                self._wake.wait()
            while (self._waiting and not self._held and len(self._members) < self.max_requests
                   and all(m.exclusive == self._waiting[0].exclusive for m in self._members)):
                self._members.append(self._waiting.popleft())
            return True

    def _advance(self, member: _Member, prediction: torch.Tensor | None) -> None:
        """Run the request until its next step call (handing its events on) or its end."""
        member.call = None
        try:
            item = member.steps.send(prediction)
            while not isinstance(item, StepCall):
                member.events.put(item)
                item = member.steps.send(None)
        except StopIteration:
            self._leave(member)
        except Exception as e:  # noqa: BLE001 - the request's error is its consumer's; the others run on
            self._leave(member, e)
        else:
            member.call, member.images = item, len(item.x)

    def _step(self, chunk: list[_Member]) -> tuple[int, ...]:
        """One network call for the chunk's steps; returns the key of the joined conditioning it used."""
        calls = [m.call for m in chunk]
        ids = tuple(id(c.denoise) for c in calls)
        model = chunk[0].model
        try:
            model.placement.activate(calls[0].stage)
            with model.placement.compute():
                if len(chunk) == 1:
                    predictions = [calls[0].denoise(calls[0].x, calls[0].r)]
                else:
                    predictions = sampling.guided_together([(c.denoise, c.x, c.r) for c in calls],
                                                           self._conditioning(ids, calls))
        except Exception as e:  # noqa: BLE001 - a failed call (out of memory) fails the requests in it
            log.warning("a batched step of %d requests failed: %s", len(chunk), e)
            for member in chunk:
                self._leave(member, e)
            return ids
        self.calls.append((calls[0].stage, sum(m.images for m in chunk)))
        for member, prediction in zip(chunk, predictions):
            self._advance(member, prediction)
        return ids

    def _conditioning(self, ids: tuple[int, ...], calls: list[StepCall]) -> Any:
        """The calls' joined conditioning, made again only when the chunk's requests change. The entry
        holds the denoisers, so their ids cannot be reused while it is kept."""
        if ids not in self._joined:
            self._joined[ids] = (tuple(c.denoise for c in calls), prepared.join([c.denoise.prepared for c in calls]))
        return self._joined[ids][1]

    def _leave(self, member: _Member, error: BaseException | None = None) -> None:
        member.steps.close()
        with self._wake:
            if member in self._members:
                self._members.remove(member)
        if error is not None:
            member.events.put(error)
        member.events.put(_DONE)


def _chunks(group: list[_Member]) -> Iterator[list[_Member]]:
    """The group in order, cut so that no call runs more than MAX_IMAGES images (a request alone may)."""
    chunk, images = [], 0
    for member in group:
        if chunk and images + member.images > MAX_IMAGES:
            yield chunk
            chunk, images = [], 0
        chunk.append(member)
        images += member.images
    if chunk:
        yield chunk
