"""Requests served together (cascade_core/batching.py): each image equals its request run alone; requests
join at a stage's start, leave when their steps end or they are stopped, and only compatible ones share."""
import dataclasses
import threading

import numpy as np
import pytest
import torch

import cascade_core as cc
from cascade_core import prepared, sampling
from cascade_core.batching import Batcher
from cascade_core.options import EngineOptions, OptionsError

SMALL = dict(width=256, height=256)
# Different prompts, seeds, guidance (1.0: the conditional branch alone), step counts and batch sizes.
REQUESTS = (
    cc.GenerationRequest("a red fox", seed=1, prior_steps=4, decoder_steps=3, **SMALL),
    cc.GenerationRequest("a cat in the city", seed=2, prior_steps=6, decoder_steps=2, prior_guidance=2.0,
                         decoder_guidance=1.0, **SMALL),
    cc.GenerationRequest("a dog", seed=3, prior_steps=3, decoder_steps=4, num_images=2, **SMALL),
)


@pytest.fixture(scope="module")
def demo():
    return cc.load_demo("cpu")


def served(batcher: Batcher, model, requests, **options) -> list[list]:
    """Start the requests together (held) and collect each one's events, each in its own thread."""
    results = [None] * len(requests)
    iterators = []
    with batcher.held():
        for request in requests:
            iterators.append(batcher.events(model, request, **options))

    def read(k):
        results[k] = list(iterators[k])

    threads = [threading.Thread(target=read, args=(k,)) for k in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return results


def alone(model, request, **options):
    return list(cc.generate(model, request, **options))[-1]


def rows(conditioning, k: int):
    """Row k of a prepared conditioning (the inverse of prepared.join for one-row parts)."""
    if conditioning is None:
        return None
    if isinstance(conditioning, torch.Tensor):
        return conditioning if conditioning.dim() == 1 else conditioning[k:k + 1]
    if dataclasses.is_dataclass(conditioning):
        return dataclasses.replace(conditioning, **{f.name: rows(getattr(conditioning, f.name), k)
                                                    for f in dataclasses.fields(conditioning)})
    return type(conditioning)(rows(c, k) for c in conditioning)


@pytest.fixture
def row_by_row(demo, monkeypatch):
    """Each network step computes its rows one at a time, so that no kernel sees the batch size."""
    for net in (demo.stage_c, demo.stage_b):
        step = type(net).step

        def each_row(self, x, r, conditioning, *args, step=step):
            return torch.cat([step(self, x[k:k + 1], r[k:k + 1], rows(conditioning, k), *args) for k in range(len(x))])

        monkeypatch.setattr(type(net), "step", each_row)


def test_requests_run_together_equal_each_alone_bit_for_bit(demo, row_by_row):
    """With every row computed on its own, a batched run is bit for bit each request alone: the scheduler
    keeps each request's random streams, schedule, step count, guidance and rows apart."""
    batcher = Batcher(8)
    together = served(batcher, demo, REQUESTS, keep_tensors=True)
    assert max(images for _, images in batcher.calls) == 4  # all three shared Stage C steps
    for request, events in zip(REQUESTS, together):
        finished, single = events[-1], alone(demo, request, keep_tensors=True)
        assert isinstance(finished, cc.Finished), finished
        assert finished.seeds == single.seeds and finished.settings == single.settings
        for name in ("latent_c", "preview", "latent_b", "image"):
            assert torch.equal(finished.tensors[name], single.tensors[name]), (request.prompt, name)
    batcher.close()


def test_requests_run_together_equal_each_alone_within_rounding(demo):
    """With the real kernels, only rounding differs. Measured on a 2-core EPYC, fp32: latents bit-identical
    except when a batch-1 step (one image at guidance 1) shares a call; then ≤ 3.3e-7 relative. The cause is
    the 1×1 embedding convolution: oneDNN's convolution rounds differently for different batch sizes (up to
    4.8e-7 absolute on one call), while products, attention and norms are row for row the same."""
    batcher = Batcher(8)
    together = served(batcher, demo, REQUESTS, keep_tensors=True)
    for request, events in zip(REQUESTS, together):
        finished, single = events[-1], alone(demo, request, keep_tensors=True)
        for name in ("latent_c", "latent_b", "image"):
            ours, theirs = finished.tensors[name].double(), single.tensors[name].double()
            assert ((ours - theirs).norm() / theirs.norm()).item() <= 1e-5, (request.prompt, name)
        for a, b in zip(finished.images, single.images):
            assert np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max() <= 1
    batcher.close()


def test_a_request_joins_at_its_stage_start_and_leaves_when_its_steps_end(demo):
    """A: 3 + 6 steps, B: 6 + 4. They share Stage C for 3 steps; A's Stage B runs beside B's Stage C; B joins
    A's Stage B at its start (A at step 4) and runs its last step alone."""
    a = cc.GenerationRequest("a", seed=1, prior_steps=3, decoder_steps=6, **SMALL)
    b = cc.GenerationRequest("b", seed=2, prior_steps=6, decoder_steps=4, **SMALL)
    batcher = Batcher(8)
    events_a, events_b = served(batcher, demo, (a, b), preview_every=0, decode_every=0)
    c1, c2, b1, b2 = ("stage_c", 1), ("stage_c", 2), ("stage_b", 1), ("stage_b", 2)
    assert list(batcher.calls) == [c2] * 3 + [b1, c1] * 3 + [b2] * 3 + [b1]
    for events, request in ((events_a, a), (events_b, b)):
        progress = [(e.stage, e.step) for e in events if isinstance(e, cc.StageProgress)]
        assert progress == ([("stage_c", k) for k in range(1, request.prior_steps + 1)]
                            + [("stage_b", k) for k in range(1, request.decoder_steps + 1)])
        assert isinstance(events[0], cc.Started) and isinstance(events[-1], cc.Finished)
    batcher.close()


class StopAfter(threading.Event):
    """A stop flag that reads as set from its n-th check on (the engine checks it once before each step)."""

    def __init__(self, checks: int):
        super().__init__()
        self.left = checks

    def is_set(self) -> bool:
        self.left -= 1
        return self.left <= 0 or super().is_set()


def test_stop_ends_one_request_and_the_others_run_on(demo, row_by_row):
    a = cc.GenerationRequest("a", seed=1, prior_steps=4, decoder_steps=2, **SMALL)
    b = cc.GenerationRequest("b", seed=2, prior_steps=4, decoder_steps=2, **SMALL)
    batcher = Batcher(8)
    with batcher.held():
        stopped = batcher.events(demo, a, stop=StopAfter(3))
        running = batcher.events(demo, b, keep_tensors=True)
    events_a, events_b = list(stopped), list(running)
    assert events_a[-1] == cc.Cancelled("stage_c", 2, events_a[-1].elapsed)
    assert not any(isinstance(e, cc.Finished) for e in events_a)
    assert list(batcher.calls)[:3] == [("stage_c", 2), ("stage_c", 2), ("stage_c", 1)]
    assert torch.equal(events_b[-1].tensors["image"], alone(demo, b, keep_tensors=True).tensors["image"])
    batcher.close()


def test_leaving_the_events_early_stops_the_request(demo):
    batcher = Batcher(8)
    stop = threading.Event()
    events = batcher.events(demo, cc.GenerationRequest("a", seed=1, prior_steps=200, **SMALL), stop=stop)
    assert isinstance(next(events), cc.Started)
    events.close()
    assert stop.is_set()
    batcher.close()  # returns: the request ended at its next step
    assert all(stage == "stage_c" for stage, _ in batcher.calls) and len(batcher.calls) < 200


def test_requests_of_different_sizes_step_apart(demo):
    requests = (cc.GenerationRequest("a", seed=1, prior_steps=2, decoder_steps=2, **SMALL),
                cc.GenerationRequest("a", seed=1, prior_steps=2, decoder_steps=2, width=320, height=256))
    batcher = Batcher(8)
    together = served(batcher, demo, requests)
    assert all(isinstance(events[-1], cc.Finished) for events in together)
    assert sorted(batcher.calls) == [("stage_b", 1)] * 4 + [("stage_c", 1)] * 4
    batcher.close()


def test_requests_with_different_lora_sets_never_run_at_once(demo, monkeypatch):
    """LoRAs are merged into the weights for a run: B waits until A has finished, though it came at the same
    time; B and C (the same set, listed in another order) share their steps."""
    monkeypatch.setattr(demo.loras, "use", lambda *args: ())  # no LoRA files: the set is only compared
    requests = (cc.GenerationRequest("a", seed=1, prior_steps=2, decoder_steps=2, loras=(("style", 0.8),), **SMALL),
                cc.GenerationRequest("b", seed=2, prior_steps=2, decoder_steps=2, loras=(("x", 1.0), ("y", 0.5)),
                                     **SMALL),
                cc.GenerationRequest("c", seed=3, prior_steps=2, decoder_steps=2, loras=(("y", 0.5), ("x", 1.0)),
                                     **SMALL))
    batcher = Batcher(8)
    together = served(batcher, demo, requests)
    assert all(isinstance(events[-1], cc.Finished) for events in together)
    c = ("stage_c", 1), ("stage_b", 1)
    assert list(batcher.calls) == [c[0]] * 2 + [c[1]] * 2 + [("stage_c", 2)] * 2 + [("stage_b", 2)] * 2
    batcher.close()


def test_at_most_max_requests_run_at_once_in_order(demo):
    requests = [cc.GenerationRequest(p, seed=1, prior_steps=2, decoder_steps=1, **SMALL) for p in ("a", "b", "c")]
    batcher = Batcher(2)
    together = served(batcher, demo, requests)
    assert all(isinstance(events[-1], cc.Finished) for events in together)
    # a and b share their steps; c comes in when a place is free, after both finished Stage B.
    assert list(batcher.calls) == [("stage_c", 2)] * 2 + [("stage_b", 2)] + [("stage_c", 1)] * 2 + [("stage_b", 1)]
    batcher.close()


def test_an_invalid_request_fails_alone(demo):
    batcher = Batcher(8)
    with batcher.held():
        good = batcher.events(demo, cc.GenerationRequest("a", seed=1, prior_steps=2, decoder_steps=1, **SMALL))
        bad = batcher.events(demo, cc.GenerationRequest("b", width=100, height=256))
    with pytest.raises(cc.RequestError, match="width"):
        list(bad)
    assert isinstance(list(good)[-1], cc.Finished)
    batcher.close()


def test_a_failed_call_fails_the_requests_in_it_and_the_engine_serves_on(demo, monkeypatch):
    batcher = Batcher(8)
    request = cc.GenerationRequest("a", seed=1, prior_steps=2, decoder_steps=1, **SMALL)
    monkeypatch.setattr(sampling, "guided_together", lambda *a: (_ for _ in ()).throw(MemoryError("out of memory")))
    together = []
    with batcher.held():
        iterators = [batcher.events(demo, request) for _ in range(2)]
    for events in iterators:
        with pytest.raises(MemoryError):
            together.append(list(events))
    monkeypatch.undo()
    assert isinstance(list(batcher.events(demo, request))[-1], cc.Finished)
    batcher.close()


def test_explored_compositions_finish_through_the_batcher(demo, row_by_row):
    explored = alone(demo, cc.GenerationRequest("a boat", seed=5, prior_steps=2, decoder_steps=2, num_images=2,
                                                **SMALL), stage_c_only=True)
    batcher = Batcher(8)
    with batcher.held():
        finished = batcher.finish_events(demo, explored.compositions[1:], keep_tensors=True)
        other = batcher.events(demo, cc.GenerationRequest("a", seed=1, prior_steps=1, decoder_steps=2, **SMALL))
    result = list(finished)[-1]
    assert isinstance(list(other)[-1], cc.Finished)
    assert ("stage_b", 2) in batcher.calls
    by_itself = list(cc.finish(demo, explored.compositions[1:], keep_tensors=True))[-1]
    assert torch.equal(result.tensors["image"], by_itself.tensors["image"])
    batcher.close()


def test_joined_conditionings_give_each_request_its_own_rows(demo):
    """Two prompts' Stage C conditionings joined: one step on both equals each alone (rounding aside), and
    the constant timestep modulation is kept once."""
    net = demo.stage_c
    g = torch.Generator().manual_seed(0)
    text = lambda: torch.randn(2, 77, net.config.c_clip_text, generator=g)
    pooled = lambda: torch.randn(2, 1, net.config.c_clip_text_pooled, generator=g)
    image = torch.zeros(2, 1, net.config.c_clip_img)
    with torch.inference_mode():
        parts = [net.prepare(text(), pooled(), image) for _ in range(2)]
        joined = prepared.join(parts)
        assert prepared.layout(joined) == prepared.layout(parts[0])
        x, r = torch.randn(4, 16, 6, 6, generator=g), torch.rand(4, generator=g)
        both = net.step(x, r, joined)
        for k, part in enumerate(parts):
            single = net.step(x[2 * k:2 * k + 2], r[2 * k:2 * k + 2], part)
            assert torch.allclose(both[2 * k:2 * k + 2], single, rtol=1e-5, atol=1e-5)
        longer = net.prepare(torch.randn(2, 154, net.config.c_clip_text), pooled(), image)  # two prompt windows
        assert prepared.layout(longer) != prepared.layout(parts[0])


class RowNet:
    """prepare/step like a network, each row on its own: out = x · c + r."""

    def prepare(self, c):
        return c

    def step(self, x, r, c):
        return x * c + r.view(-1, 1)


def test_guided_together_keeps_each_requests_guidance():
    g = torch.Generator().manual_seed(0)
    denoisers, inputs = [], []
    for guidance, batch in ((4.0, 1), (1.0, 2), (7.5, 3)):
        cond, uncond = {"c": torch.randn(batch, 5, generator=g)}, {"c": torch.randn(batch, 5, generator=g)}
        denoisers.append(sampling.guided(RowNet(), cond, uncond, guidance))
        inputs.append((torch.randn(batch, 5, generator=g), torch.rand(batch, generator=g)))
    calls = [(d, x, r) for d, (x, r) in zip(denoisers, inputs)]
    together = sampling.guided_together(calls, prepared.join([d.prepared for d in denoisers]))
    for (d, x, r), prediction in zip(calls, together):
        assert torch.equal(prediction, d(x, r))


def test_batch_requests_option():
    assert EngineOptions(batch_requests=4).batch_requests == 4
    with pytest.raises(OptionsError, match="batch-requests"):
        EngineOptions(batch_requests=0)
    with pytest.raises(ValueError):
        Batcher(0)
