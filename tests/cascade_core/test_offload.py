"""Offload modes: which networks are on the device when, and weight streaming that misses none."""
from __future__ import annotations

import pytest
import torch

import cascade_core as cc
from cascade_core import pipeline
from cascade_core.offload import Placement
from tests.conftest import TINY_CASCADE

REQUEST = cc.GenerationRequest("a red fox", width=256, height=256, seed=3, prior_steps=3, decoder_steps=2)


def fresh_model():
    return cc.load(TINY_CASCADE, device="cpu", dtype="float32")


def final(model, keep_tensors=True, **kwargs):
    events = cc.generate(model, REQUEST, keep_tensors=keep_tensors, **kwargs)
    return [e for e in events if isinstance(e, cc.Finished)][0]


def test_model_mode_keeps_only_the_running_stage(monkeypatch):
    model = fresh_model()
    place = Placement(model.networks(), torch.device("cpu"), "model")
    hosts = {id(p): p.data_ptr() for p in model.stage_c.parameters()}
    assert place.resident == {"previewer", "stage_a"}
    place.activate("text_encoder", then="stage_c")
    assert place.resident == {"previewer", "stage_a", "text_encoder"}  # no room to prefetch off a GPU
    monkeypatch.setattr(Placement, "_fits", lambda self, stage: True)
    place.activate("stage_c", then="stage_b")
    assert place.resident == {"previewer", "stage_a", "stage_c", "stage_b"}  # the text encoder left
    place.activate("stage_b")
    assert place.resident == {"previewer", "stage_a", "stage_b"}
    assert all(p.data_ptr() == hosts[id(p)] for p in model.stage_c.parameters())  # evicting copies nothing back


def test_pipeline_activates_each_stage_before_it_runs(monkeypatch):
    model, calls = fresh_model(), []
    model.placement = Placement(model.networks(), model.device, "model")
    real = Placement.activate
    monkeypatch.setattr(Placement, "activate", lambda self, stage, then=None: (calls.append((stage, then)),
                                                                                real(self, stage, then))[1])
    offloaded = final(model)
    assert calls == [("text_encoder", "stage_c"), ("stage_c", "stage_b"), ("stage_b", None)]
    reference = final(fresh_model())
    assert all(torch.equal(offloaded.tensors[k], reference.tensors[k]) for k in reference.tensors)
    calls.clear()
    again = final(model)  # the same prompts: the kept embeddings, so the text encoder stays on the host
    assert calls == [("stage_c", "stage_b"), ("stage_b", None)]
    assert "text_encoder" not in model.placement.resident
    assert all(torch.equal(again.tensors[k], reference.tensors[k]) for k in reference.tensors)


class NoImages:
    """Previews of meta tensors: nothing to copy to the host."""

    def __init__(self, images, step):
        self.step = step

    def ready(self):
        return True

    def images(self):
        return []


def test_sequential_streaming_reaches_every_weight(monkeypatch):
    """Weights stay on the host; a run on another device (meta) fails on any weight not streamed."""
    model = fresh_model()
    meta = torch.device("meta")
    networks = {k: v for k, v in model.networks().items() if k != "text_encoder"}  # its masks call .item()
    model.device, model.placement = meta, Placement(networks, meta, "sequential")
    monkeypatch.setattr(pipeline, "to_pil", lambda tensor: ())
    monkeypatch.setattr(pipeline, "PendingImages", NoImages)
    assert final(model, keep_tensors=False, preview_every=1, decode_every=1).seeds == (3,)
    assert all(p.device.type == "cpu" for net in networks.values() for p in net.parameters())


def test_sequential_on_the_cpu_computes_the_same_numbers():
    model, reference = fresh_model(), final(fresh_model())
    model.placement = Placement(model.networks(), model.device, "sequential")
    streamed = final(model)
    assert all(torch.equal(streamed.tensors[k], reference.tensors[k]) for k in reference.tensors)


def test_offload_on_the_cpu_is_said_and_ignored():
    lines = []
    model = cc.load(TINY_CASCADE, device="cpu", dtype="float32", offload="model", progress=lines.append)
    assert model.placement.mode == "none"
    assert "offload model has no effect on the CPU" in lines[0]


def test_unknown_offload_mode_is_refused():
    with pytest.raises(cc.OptionsError, match="unknown offload 'gpu'; use one of none, model, sequential"):
        cc.load(TINY_CASCADE, device="cpu", offload="gpu")
