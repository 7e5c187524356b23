"""Memory arithmetic: weight bytes of the released networks, the variant `auto` picks, and the
refusal to load what cannot fit."""
from __future__ import annotations

import json
import math

import pytest
import torch

import cascade_core as cc
from safetensors import safe_open

from cascade_core import loading, memory, options
from cascade_core.units import format_bytes
from tests.conftest import REFERENCE, TINY_CASCADE

def bigg_text_encoder_parameters() -> int:
    """CLIP ViT-bigG/14's text tower with its projection, counted from the architecture by hand:
    token and position embeddings, 32 layers of attention (4 projections with bias), two LayerNorms and
    an MLP 1280 → 5120 → 1280, the final LayerNorm, and the projection without bias."""
    width, mlp, layers = 1280, 5120, 32
    layer = 4 * (width * width + width) + 2 * 2 * width + (width * mlp + mlp) + (mlp * width + width)
    return 49408 * width + 77 * width + layers * layer + 2 * width + width * width


def checkpoint_parameters(name: str) -> int:
    tensors = json.loads((REFERENCE / "checkpoint_keys" / f"{name}.json").read_text())["tensors"]
    return sum(math.prod(shape) for shape in tensors.values())


RELEASED = {("stage_c", "full"): "stage_c", ("stage_c", "lite"): "stage_c_lite", ("stage_b", "full"): "stage_b",
            ("stage_b", "lite"): "stage_b_lite", ("stage_a", "full"): "stage_a", ("previewer", "full"): "previewer"}


@pytest.mark.parametrize("stage, size", list(RELEASED))
def test_weight_bytes_match_the_released_checkpoints(stage, size):
    assert memory.network_bytes(stage, size, torch.bfloat16) == 2 * checkpoint_parameters(RELEASED[stage, size])


def test_text_encoder_bytes_match_the_architecture():
    assert memory.text_encoder_bytes(torch.bfloat16) == 2 * bigg_text_encoder_parameters()


def test_offload_modes_keep_less_on_the_device():
    weights = memory.weights_by_stage("full", torch.bfloat16)
    none, model, sequential = (memory.resident_bytes(weights, mode) for mode in options.OFFLOAD_MODES)
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
    weights = 2 * (sum(checkpoint_parameters(n) for n in ("stage_c", "stage_b", "stage_a", "previewer"))
                   + bigg_text_encoder_parameters())
    assert full == weights + memory.ACTIVATION_MARGIN
    assert f"full needs {format_bytes(full)} with offload none" in memory.describe_choice(cuda, torch.bfloat16)


def test_a_model_that_cannot_fit_is_refused_before_loading(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device: 1000)
    with pytest.raises(cc.ModelLoadError) as error:
        cc.load(TINY_CASCADE, device="cpu", dtype="float32")
    parameters = 0
    for path in TINY_CASCADE.rglob("*.safetensors"):  # every network and the text encoder, float32
        with safe_open(str(path), framework="pt") as f:
            parameters += sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    message = str(error.value)
    assert message.startswith(f"not enough memory: the tiny model keeps {parameters * 4 / 1e6:.1f} MB of weights on cpu")
    assert "--variant lite" in message and "--offload model" in message


def test_out_of_memory_while_loading_says_what_to_do(monkeypatch):
    def fail(*args):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    monkeypatch.setattr(loading, "load_network", fail)
    with pytest.raises(cc.ModelLoadError, match="out of memory on cpu while loading .*--variant lite, --offload model"):
        cc.load(TINY_CASCADE, device="cpu", dtype="float32")
