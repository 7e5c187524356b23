"""Explore, then finish: Stage C alone for many seeds, then Stage B and A on the chosen latents only."""
import dataclasses

import numpy as np
import pytest
import torch

import cascade_core as cc
from cascade_core.request import MAX_IMAGES

SMALL = dict(width=256, height=256, prior_steps=3, decoder_steps=3)


def last(events):
    assert isinstance(events[-1], cc.Finished), events[-1]
    return events[-1]


def explore(model, **settings):
    return last(list(cc.generate(model, cc.GenerationRequest(**{**SMALL, **settings}), stage_c_only=True)))


def pixels(image):
    return np.asarray(image, dtype=np.int16)


def test_one_finished_composition_is_the_full_run(tiny_model):
    """Same request and seed: the finished image is the full run's, bit for bit (same batch of one)."""
    explored = explore(tiny_model, prompt="a red fox", seed=7)
    (composition,) = explored.compositions
    assert composition.request.seed == 7 and composition.latent_c.shape == (1, 16, 6, 6)
    finished = last(list(cc.finish(tiny_model, [composition], keep_tensors=True)))
    full = last(list(cc.generate(tiny_model, cc.GenerationRequest("a red fox", seed=7, **SMALL), keep_tensors=True)))
    assert torch.equal(finished.tensors["latent_c"], full.tensors["latent_c"])
    assert torch.equal(finished.tensors["latent_b"], full.tensors["latent_b"])
    assert torch.equal(finished.tensors["image"], full.tensors["image"])
    assert finished.seeds == (7,) and finished.settings == full.settings


def test_chosen_compositions_of_a_batch_finish_as_their_seeds_alone(tiny_model):
    """Explore four seeds, finish the second and the fourth together: each equals its own full run."""
    explored = explore(tiny_model, prompt="a lighthouse", seed=100, num_images=4)
    assert [c.request.seed for c in explored.compositions] == [100, 101, 102, 103]
    chosen = [explored.compositions[1], explored.compositions[3]]
    finished = last(list(cc.finish(tiny_model, chosen, keep_tensors=True)))
    assert finished.seeds == (101, 103) and [s["seed"] for s in finished.settings] == [101, 103]
    for k, seed in enumerate((101, 103)):
        full = last(list(cc.generate(tiny_model, cc.GenerationRequest("a lighthouse", seed=seed, **SMALL),
                                     keep_tensors=True)))
        # Stage C ran in a batch of four and Stage B in one of two: batch-shaped kernels may round differently.
        error = (finished.tensors["image"][k] - full.tensors["image"][0]).abs().max().item()
        assert error <= 1e-4, (seed, error)
        assert np.abs(pixels(finished.images[k]) - pixels(full.images[0])).max() <= 1


def test_finishing_does_not_run_stage_c(tiny_model, monkeypatch):
    explored = explore(tiny_model, prompt="a cat", seed=1)
    calls = []
    monkeypatch.setattr(type(tiny_model.stage_c), "step", lambda *a, **k: calls.append(1))
    events = list(cc.finish(tiny_model, explored.compositions))
    assert calls == [] and [type(e).__name__ for e in events][0] == "Started"
    assert {e.stage for e in events if isinstance(e, cc.StageProgress)} == {"stage_b"}


def test_finishing_twice_gives_the_same_image(tiny_model):
    """The composition keeps its random state; finishing does not consume it."""
    (composition,) = explore(tiny_model, prompt="a boat", seed=3).compositions
    first = last(list(cc.finish(tiny_model, [composition])))
    again = last(list(cc.finish(tiny_model, [composition])))
    assert np.array_equal(pixels(first.images[0]), pixels(again.images[0]))


def test_compositions_that_cannot_be_finished_together_are_refused(tiny_model):
    a = explore(tiny_model, prompt="a", seed=1).compositions[0]
    b = explore(tiny_model, prompt="b", seed=2).compositions[0]
    with pytest.raises(cc.RequestError, match="different settings"):
        list(cc.finish(tiny_model, [a, b]))
    with pytest.raises(cc.RequestError, match="1–"):
        list(cc.finish(tiny_model, []))
    with pytest.raises(cc.RequestError, match="1–"):
        list(cc.finish(tiny_model, [a] * (MAX_IMAGES + 1)))
    with pytest.raises(cc.RequestError, match="another model"):
        list(cc.finish(tiny_model, [dataclasses.replace(a, model="another")]))
