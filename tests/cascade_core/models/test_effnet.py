"""The EfficientNetV2-S encoder equals the released layout and the official encoder's output.

Reference: ../shared/reference/extras/effnet/ (weights stored float16, upcast exactly and run in
float32) and checkpoint_keys/effnet_encoder.json.
"""
import json

import pytest
import torch
from safetensors.torch import load_file

from cascade_core.config import EffNetConfig, preset
from cascade_core.image_preprocess import effnet_preprocess
from cascade_core.models import build
from cascade_core.models.effnet import EffNetEncoder
from tests.conftest import REFERENCE, relative_error

EFFNET = REFERENCE / "extras" / "effnet"
LAYOUT = json.loads((REFERENCE / "checkpoint_keys" / "effnet_encoder.json").read_text())


def float32_weights(path) -> dict[str, torch.Tensor]:
    """A reference file's tensors with every float16 one upcast to float32 (exact)."""
    return {k: v.float() if v.is_floating_point() else v for k, v in load_file(path).items()}


@pytest.fixture(scope="module")
def encoder() -> EffNetEncoder:
    with torch.device("meta"):
        net = build("effnet_encoder")
    net.load_state_dict(float32_weights(EFFNET / "effnet_encoder.safetensors"), strict=True, assign=True)
    return net


@pytest.fixture(scope="module")
def io() -> dict[str, torch.Tensor]:
    return load_file(EFFNET / "effnet.io.safetensors")


CASES = range(len(json.loads((EFFNET / "effnet.json").read_text())["cases"]))


def test_state_dict_equals_released_layout():
    with torch.device("meta"):
        net = build("effnet_encoder")
    ours = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert ours == LAYOUT["tensors"]
    assert list(ours) == list(LAYOUT["tensors"])  # also in the file's order
    assert sum(p.numel() for p in net.parameters()) == LAYOUT["parameters"]
    assert all(t.is_meta for t in net.state_dict().values())


def test_preset_equals_released_constructor_args():
    assert preset("effnet_encoder") == EffNetConfig.from_official(LAYOUT["constructor_args"])
    assert isinstance(build("effnet_encoder"), EffNetEncoder)


@pytest.mark.parametrize("case", CASES)
def test_preprocess(io, case):
    assert relative_error(effnet_preprocess(io[f"{case}.image"]), io[f"{case}.normalized"]) <= 1e-6


@pytest.mark.parametrize("case", CASES)
@torch.inference_mode()
def test_backbone_and_latent(encoder, io, case):
    features = encoder.backbone(io[f"{case}.normalized"])
    assert relative_error(features, io[f"{case}.features"]) <= 1e-4
    assert relative_error(encoder.mapper(features), io[f"{case}.latent"]) <= 1e-4


@pytest.mark.parametrize("case", CASES)
@torch.inference_mode()
def test_picture_to_latent(encoder, io, case):
    """The whole chain from the picture, with the output size H/32 rounded up at each halving."""
    latent = encoder(effnet_preprocess(io[f"{case}.image"]))
    assert relative_error(latent, io[f"{case}.latent"]) <= 1e-4


def test_eval_mode_uses_running_statistics(encoder, io):
    """Built in eval mode: batch statistics never enter (a batch of one gives the batch of two's rows)."""
    assert not encoder.training
    x = io["1.normalized"]
    with torch.inference_mode():
        assert relative_error(encoder(x[:1]), encoder(x)[:1]) <= 1e-6
