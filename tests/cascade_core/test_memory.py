"""Memory arithmetic: weight bytes of the released networks, the variant `auto` picks, and the
refusal to load what cannot fit."""
from __future__ import annotations

import json
import math

import pytest
import torch

import cascade_core as cc
from cascade_core import loading, memory
from tests.conftest import REFERENCE, TINY_CASCADE

RELEASED = {("stage_c", "full"): "stage_c", ("stage_c", "lite"): "stage_c_lite", ("stage_b", "full"): "stage_b",
            ("stage_b", "lite"): "stage_b_lite", ("stage_a", "full"): "stage_a", ("previewer", "full"): "previewer"}


@pytest.mark.parametrize("stage, size", list(RELEASED))
def test_weight_bytes_match_the_released_checkpoints(stage, size):
    tensors = json.loads((REFERENCE / "checkpoint_keys" / f"{RELEASED[stage, size]}.json").read_text())["tensors"]
    assert memory.network_bytes(stage, size, torch.bfloat16) == 2 * sum(math.prod(s) for s in tensors.values())


def test_offload_modes_keep_less_on_the_device():
    weights = memory.weights_by_stage("full", torch.bfloat16)
    none, model, sequential = (memory.resident_bytes(weights, mode) for mode in memory.OFFLOAD_MODES)
    assert none == sum(weights.values())
    assert model == weights["stage_c"] + weights["stage_a"] + weights["previewer"]
    assert sequential == weights["stage_a"] + weights["previewer"] < model < none


def test_auto_variant_follows_free_memory(monkeypatch):
    cuda = torch.device("cuda")
    full = memory.needed_bytes("full", torch.bfloat16, "none")
    monkeypatch.setattr(memory, "available_bytes", lambda device: full)
    assert memory.choose_variant(cuda, torch.bfloat16) == "full"
    monkeypatch.setattr(memory, "available_bytes", lambda device: full - 1)
    assert memory.choose_variant(cuda, torch.bfloat16) == "lite"
    assert memory.choose_variant(cuda, torch.bfloat16, offload="model") == "full"  # only Stage C must fit
    assert "full needs 13.74 GB with offload none" in memory.describe_choice(cuda, torch.bfloat16)


def test_a_model_that_cannot_fit_is_refused_before_loading(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device: 1000)
    with pytest.raises(cc.ModelLoadError) as error:
        cc.load(TINY_CASCADE, device="cpu", dtype="float32")
    message = str(error.value)
    assert message.startswith("not enough memory: the tiny model keeps 11.7 MB of weights on cpu")
    assert "--variant lite" in message and "--offload model" in message


def test_out_of_memory_while_loading_says_what_to_do(monkeypatch):
    def fail(*args):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    monkeypatch.setattr(loading, "load_network", fail)
    with pytest.raises(cc.ModelLoadError, match="out of memory on cpu while loading .*--variant lite, --offload model"):
        cc.load(TINY_CASCADE, device="cpu", dtype="float32")
