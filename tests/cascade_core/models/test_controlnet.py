"""The ControlNet equals the released layouts and the official module's output.

Reference: ../shared/reference/extras/controlnet/ (controlnet.json, the tiny weights,
modules.io.safetensors) and checkpoint_keys/controlnet_*.json.
"""
import json

import pytest
import torch
from safetensors.torch import load_file

from cascade_core.config import ControlNetConfig, preset
from cascade_core.models import build
from cascade_core.models.controlnet import ControlNet
from cascade_core.models.layouts import expected_layout
from tests.conftest import REFERENCE, relative_error

CONTROLNET = REFERENCE / "extras" / "controlnet"
SPEC = json.loads((CONTROLNET / "controlnet.json").read_text())
RELEASED = ["controlnet_canny", "controlnet_inpainting", "controlnet_super_resolution"]
MODULE_CASES = [(k, case) for k, case in enumerate(SPEC["module_cases"]) if case["module"] != "saliency"]


def float32_weights(path) -> dict[str, torch.Tensor]:
    return {k: v.float() if v.is_floating_point() else v for k, v in load_file(path).items()}


def reference_weights(name: str) -> dict[str, torch.Tensor]:
    """A tiny controlnet's weights; canny/inpainting hold only their stem and projections and
    take every other `backbone.*` tensor from the effnet encoder's file under the same name."""
    spec = SPEC["controlnets"][name]
    own = float32_weights(REFERENCE / spec["file"])
    if "overlay_on" not in spec:
        return own
    base = float32_weights(REFERENCE / spec["overlay_on"])
    return {**{k: v for k, v in base.items() if k.startswith("backbone.")}, **own}


def reference_controlnet(name: str) -> ControlNet:
    with torch.device("meta"):
        net = build(f"controlnet_{name}_tiny")
    net.load_state_dict(reference_weights(name), strict=True, assign=True)
    return net


@pytest.mark.parametrize("name", RELEASED)
def test_expected_layout_equals_released_layout(name):
    """The state dict itself is checked against the released layout in test_layouts.py."""
    reference = json.loads((REFERENCE / "checkpoint_keys" / f"{name}.json").read_text())
    assert {k: list(v) for k, v in expected_layout(preset(name)).items()} == reference["tensors"]


@pytest.mark.parametrize("name", RELEASED)
def test_presets_equal_released_constructor_args(name):
    reference = json.loads((REFERENCE / "checkpoint_keys" / f"{name}.json").read_text())
    assert preset(name) == ControlNetConfig.from_official(reference["constructor_args"])


@pytest.mark.parametrize("name", ["canny", "inpainting", "simple", "sr"])
def test_tiny_presets_equal_reference_spec(name):
    spec = SPEC["controlnets"][name]
    config = preset(f"controlnet_{name}_tiny")
    mode = "large" if spec["kind"] == "sr_tiny" else spec["kind"]
    assert (config.c_in, config.c_proj, config.proj_blocks, config.bottleneck_mode) == (
        spec["c_in"], spec["c_proj"], tuple(spec["proj_blocks"]), mode)
    if "widths" in spec:
        assert config.widths == tuple(spec["widths"])


@pytest.mark.parametrize("k,case", MODULE_CASES, ids=[c["module"] for _, c in MODULE_CASES])
@torch.inference_mode()
def test_forward(k, case):
    io = load_file(CONTROLNET / "modules.io.safetensors")
    net = reference_controlnet(case["module"])
    out = net(io[f"{k}.x"])
    assert len(out) == case["outputs"]
    assert [i for i, o in enumerate(out) if o is not None] == case["not_none"]
    for i in case["not_none"]:
        assert relative_error(out[i], io[f"{k}.out.{i}"]) <= 1e-4


def test_effnet_stem_pads_only_for_three_channels():
    """c_in ≠ 3: 3×3 stride-2 stem without padding (H → ⌊(H − 3)/2⌋ + 1); c_in = 3 keeps torchvision's."""
    with torch.device("meta"):
        for c_in, padding in [(1, 0), (4, 0), (3, 1)]:
            stem = build(ControlNetConfig(c_in=c_in, proj_blocks=(0,))).backbone[0][0]
            assert (stem.in_channels, stem.stride, stem.padding, stem.bias) == (c_in, (2, 2), (padding, padding), None)


def test_unknown_bottleneck_is_refused():
    with pytest.raises(ValueError, match="bottleneck_mode"):
        ControlNetConfig(bottleneck_mode="huge")
    assert ControlNetConfig.from_official({"c_in": 1, "bottleneck_mode": None}).bottleneck_mode == "effnet"
