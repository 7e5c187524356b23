"""Faults during a run: out of memory, any exception, a stopped run, an outputs folder that fails."""
import contextlib
import errno
import gc
import weakref

import pytest
import torch
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

import cascade_core as cc
import ui.outputs
from ui.generation import Services, StudioError, stream
from ui.outputs import OutputsWriter

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


@pytest.mark.parametrize("error", [
    lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    lambda: RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory: "
                         "you tried to allocate 1 GB; out of memory"),
    MemoryError,
], ids=["cuda", "cpu", "python"])
def test_out_of_memory_says_what_to_do_releases_memory_and_the_next_run_works(tmp_path, model, error, monkeypatch):
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


def test_any_exception_fails_only_its_request(tmp_path, model):
    services = Services(FakeHolder(model, polls=0), OutputsWriter(tmp_path))
    with watch(model, fail_in=model.stage_c, error=lambda: ValueError("bad shape")), \
            pytest.raises(StudioError, match="^Generation failed: ValueError: bad shape$"):
        run(services)
    assert run(services)[-1].status.startswith("Done")


def test_a_stopped_run_frees_its_memory(tmp_path, model, monkeypatch):
    services = Services(FakeHolder(model, polls=0), OutputsWriter(tmp_path))
    released = []
    monkeypatch.setattr(cc, "release_memory", released.append)
    with watch(model, stop=lambda calls: calls > 200 and services.stops.stop("s")) as refs:
        frames = run(services, prior_steps=200)
    assert frames[-1].status.startswith("Stopped during Stage C")
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
