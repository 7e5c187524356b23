"""Faults during a run: out of memory, any exception, a stopped run, an outputs folder that fails."""
import contextlib
import errno
import gc
import threading
import weakref

import pytest
import torch
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

import cascade_core as cc
import ui.outputs
from ui.generation import Services, StudioError, stream
from ui.outputs import OutputsWriter
from ui.runner import run_events

from .test_generation import SMALL, FakeHolder


@pytest.fixture
def model(demo_model):
    demo_model.text_encoder.forget()  # each run encodes its prompts afresh
    return demo_model


def run(services, **fields):
    fields = {**SMALL, "prior_steps": 1, "decoder_steps": 1, **fields}
    return list(stream(services, "s", cc.GenerationRequest("a fox", **fields)))


@contextlib.contextmanager
def watch(model, fail_in=None, error=None, stop=None):
    """Weak references to every tensor a module returns during the run; with `fail_in`, the first
    call of a module of that network raises `error()`; with `stop`, called after each module call."""
    refs, failing = [], {id(m) for m in fail_in.modules()} if fail_in is not None else set()

    def before(module, args):
        if id(module) in failing:
            raise error()

    def after(module, args, output):
        if isinstance(output, torch.Tensor):
            refs.append(weakref.ref(output))
        if stop is not None:
            stop(len(refs))

    handles = [register_module_forward_pre_hook(before), register_module_forward_hook(after)]
    try:
        yield refs
    finally:
        for handle in handles:
            handle.remove()


def all_freed(refs, model) -> bool:
    """Every watched tensor is gone, but for the prompt embeddings the text encoder keeps on purpose."""
    gc.collect()
    kept = {t.untyped_storage().data_ptr() for prompt in ("a fox", "") if (e := model.text_encoder.cached(prompt))
            for t in (e.clip_text, e.clip_text_pooled)}
    assert len(kept) == 4  # the run encoded both prompts, and they are kept
    return all(ref() is None or ref().untyped_storage().data_ptr() in kept for ref in refs)


def cpu_allocation_failure() -> RuntimeError:
    """What PyTorch's CPU allocator raises when it cannot allocate: a plain RuntimeError."""
    try:
        torch.empty(2**62, dtype=torch.uint8)  # 4 EiB: more than any address space
    except RuntimeError as e:
        return e
    raise AssertionError("4 EiB were allocated")


def logged(caplog, name="ui.generation"):
    return [record for record in caplog.records if record.name == name]


@pytest.mark.parametrize("error", [
    lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    cpu_allocation_failure,
    MemoryError,
], ids=["cuda", "cpu", "python"])
def test_out_of_memory_says_what_to_do_releases_memory_and_the_next_run_works(tmp_path, model, error, monkeypatch,
                                                                              caplog):
    services = Services(FakeHolder(model, polls=0), OutputsWriter(tmp_path))
    released = []
    monkeypatch.setattr(cc, "release_memory", lambda device: released.append((device, all_freed(refs, model))))
    with watch(model, fail_in=model.stage_b, error=error) as refs, pytest.raises(StudioError) as raised:
        run(services)
    message = str(raised.value)
    assert message.startswith("Out of memory") and "smaller size or fewer images" in message
    assert "--variant lite" in message and "--offload model" in message
    assert raised.value.__cause__ is None and raised.value.__context__ is None  # no traceback holds the run
    assert len(refs) > 10 and all_freed(refs, model)  # Stage C ran; none of the failed run's tensors is kept
    assert released == [(model.device, True)]  # the device cache is emptied once the tensors are gone
    assert run(services, seed=12)[-1].status.startswith("Done") and len(released) == 1
    assert not services.stops.stop("s")  # no run is left registered
    assert [(r.levelname, r.exc_info) for r in logged(caplog)] == [("WARNING", None)]  # one line, no traceback


def test_a_non_memory_runtime_error_is_not_out_of_memory(tmp_path, model):
    services = Services(FakeHolder(model, polls=0), OutputsWriter(tmp_path))
    with watch(model, fail_in=model.stage_c, error=lambda: RuntimeError("mat1 and mat2 shapes cannot be multiplied")), \
            pytest.raises(StudioError, match=r"^The run failed on the server \(RuntimeError\)"):
        run(services)


def test_any_exception_fails_only_its_request_and_is_logged_with_its_traceback(tmp_path, model, caplog):
    services = Services(FakeHolder(model, polls=0), OutputsWriter(tmp_path))
    error = ValueError('bad shape\n  File "/work/main/cascade_core/pipeline.py", line 1')
    with watch(model, fail_in=model.stage_b, error=lambda: error) as refs, pytest.raises(StudioError) as raised:
        run(services)
    message = str(raised.value)
    assert message == "The run failed on the server (ValueError); details are in the server log."
    assert "/work" not in message and 'File "' not in message
    [record] = logged(caplog)
    assert record.levelname == "ERROR" and record.exc_info[1] is error
    assert "Traceback (most recent call last)" in caplog.text
    assert all_freed(refs, model)  # the log record keeps the traceback, not the failed run's tensors
    assert run(services)[-1].status.startswith("Done")


def test_a_bad_request_is_one_warning_and_its_message_as_it_is(tmp_path, model, caplog):
    services = Services(FakeHolder(model, polls=0), OutputsWriter(tmp_path))
    with pytest.raises(StudioError, match="^width: 100 px is outside") as raised:
        run(services, width=100)
    [record] = logged(caplog)
    assert (record.levelname, record.exc_info) == ("WARNING", None)
    assert record.getMessage() == f"request refused: {raised.value}"


@pytest.mark.parametrize("fails", ["before", "after"])
def test_a_run_that_fails_when_its_page_has_stopped_listening_is_logged(monkeypatch, caplog, fails):
    """The engine fails before the page closes its events (unread) or after (nobody to raise it to)."""
    error = ValueError("failed with nobody listening")

    def generate(model, request, stop, **kwargs):
        yield "started"
        if fails == "after":
            stop.wait(60)
        raise error

    monkeypatch.setattr(cc, "generate", generate)
    threads = set(threading.enumerate())
    events = run_events(None, None, threading.Event(), preview_every=0, decode_every=0)
    assert next(events) == "started"
    workers = set(threading.enumerate()) - threads
    if fails == "before":  # the worker has put its error in the queue and ended
        for worker in workers:
            worker.join(60)
    events.close()
    for worker in workers:  # it logs before it ends
        worker.join(60)
        assert not worker.is_alive(), "the worker did not end"
    [record] = logged(caplog, "ui.runner")
    assert record.levelname == "ERROR" and record.exc_info[1] is error


def test_a_stopped_run_frees_its_memory(tmp_path, model, monkeypatch):
    services = Services(FakeHolder(model, polls=0), OutputsWriter(tmp_path))
    released = []
    monkeypatch.setattr(cc, "release_memory", released.append)
    with watch(model, stop=lambda calls: calls > 200 and services.stops.stop("s")) as refs:
        frames = run(services, prior_steps=200)
    assert frames[-1].status.startswith("Stopped during Composition")
    assert all_freed(refs, model) and released == [model.device]


@pytest.mark.parametrize("fault", ["unwritable", "full"])
def test_outputs_folder_failure_still_shows_the_image_and_says_why(tmp_path, model, monkeypatch, fault):
    if fault == "unwritable":  # a file where the folder should be: no permission bits involved (tests may run as root)
        (tmp_path / "blocked").write_text("")
        writer = OutputsWriter(tmp_path / "blocked" / "outputs")
    else:
        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(ui.outputs, "save_png", full)
        writer = OutputsWriter(tmp_path / "outputs")
    last = run(Services(FakeHolder(model, polls=0), writer), num_images=2)[-1]
    assert last.status.startswith("Done: 2 images in") and "2 could not be saved" in last.status
    assert "Free disk space or choose another --outputs folder" in last.status
    assert len(last.images) == 2 and last.stage_b is not None and last.saved == ()
    assert [s["seed"] for s in last.settings] == [11, 12]
    if fault == "full":
        assert "No space left on device" in last.unsaved
        assert [p.name for p in (tmp_path / "outputs").rglob("*") if p.is_file()] == []  # no temporary file left
