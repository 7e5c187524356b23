"""Runs cc.generate in a worker thread and relays its events through a queue.

A Gradio generator handler only sees Stop at its next yield, so the engine runs in its own
thread with a threading.Event as `stop=`; Stop sets it and the run ends within one step.
One engine run at a time: a stopped run finishes its current step before the next starts. With a
`batching.Batcher` (--batch-requests N > 1) up to N runs go on at once, their steps batched.
"""
from __future__ import annotations

import contextlib
import logging
import queue
import threading
from typing import Any, Callable, Iterator

import cascade_core as cc
from cascade_core.batching import Batcher

log = logging.getLogger(__name__)
_ENGINE_LOCK = threading.Lock()
_DONE = object()


class StopRegistry:
    """The stop event of each session's running generation (keyed by Gradio session hash)."""

    def __init__(self):
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def begin(self, session: str) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._events[session] = event
        return event

    def end(self, session: str, event: threading.Event) -> None:
        with self._lock:
            if self._events.get(session) is event:
                del self._events[session]

    def stop(self, session: str) -> bool:
        """Set the session's stop event; False when it has no run."""
        with self._lock:
            event = self._events.get(session)
        if event is not None:
            event.set()
        return event is not None


def run_events(model, request: cc.GenerationRequest, stop: threading.Event, *, preview_every: int,
               decode_every: int, on_event: Callable[[cc.Event], Any] | None = None, stage_c_only: bool = False,
               compositions: tuple[cc.Composition, ...] = (), batcher: Batcher | None = None) -> Iterator[Any]:
    """Yield the engine's events from a worker thread; re-raise its exceptions here.

    stage_c_only: explore (cc.generate's flag); compositions: finish these (cc.finish) instead of `request`.
    batcher: run through it, alongside the other runs it serves (else one run at a time, under a lock).
    on_event: runs in the worker on each event and its result is yielded instead; work that
    must happen even if nobody reads on (saving finished images) belongs there.
    Closing this iterator (the handler was cancelled) sets `stop`, so the worker ends too; an
    error the worker raises after that is logged, since nobody is left to raise it to.
    """
    events: queue.Queue = queue.Queue()
    handover, gone = threading.Lock(), threading.Event()  # gone: the consumer reads no more

    def work():
        try:
            with _ENGINE_LOCK if batcher is None else contextlib.nullcontext():
                if compositions:
                    finish = cc.finish if batcher is None else batcher.finish_events
                    run = finish(model, compositions, stop=stop, decode_every=decode_every)
                else:
                    generate = cc.generate if batcher is None else batcher.events
                    run = generate(model, request, stop=stop, preview_every=preview_every,
                                   decode_every=decode_every, stage_c_only=stage_c_only)
                for event in run:
                    events.put(on_event(event) if on_event else event)
        except BaseException as e:  # noqa: BLE001 - any error is the consumer's: raised again there, or logged
            with handover:
                if not gone.is_set():
                    events.put(e)
                    return
            _log_unread(e)
        finally:
            events.put(_DONE)

    worker = threading.Thread(target=work, name="cascade-generate", daemon=True)
    worker.start()
    try:
        while True:
            item = events.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()  # the consumer is gone or done: let a still-running worker end at its next step
        with handover:
            gone.set()
            unread = [item for item in _drain(events) if isinstance(item, BaseException)]
        for error in unread:
            _log_unread(error)


def _drain(events: queue.Queue) -> Iterator[Any]:
    """What the queue holds now, without waiting for more."""
    while True:
        try:
            yield events.get_nowait()
        except queue.Empty:
            return


def _log_unread(error: BaseException) -> None:
    log.error("a run failed after its page had stopped listening", exc_info=error)
