"""The saliency network of the automatic inpainting mask equals the official MicroResNet."""
import json

import torch
from safetensors.torch import load_file

from cascade_core.models.saliency import MicroResNet
from tests.conftest import REFERENCE, relative_error

CONTROLNET = REFERENCE / "extras" / "controlnet"


def test_state_dict_is_the_released_layout():
    released = json.loads((REFERENCE / "checkpoint_keys" / "saliency_model.json").read_text())
    ours = {name: list(t.shape) for name, t in MicroResNet().state_dict().items()}
    assert ours == released["tensors"]
    assert sum(t.numel() for t in MicroResNet().parameters()) == released["parameters"]


@torch.inference_mode()
def test_forward_equals_reference():
    spec = json.loads((CONTROLNET / "controlnet.json").read_text())
    io = load_file(CONTROLNET / "modules.io.safetensors")
    net = MicroResNet().eval()
    net.load_state_dict(load_file(CONTROLNET / "saliency_tiny.safetensors"), strict=True)
    cases = [k for k, case in enumerate(spec["module_cases"]) if case["module"] == "saliency"]
    assert cases
    for k in cases:
        assert relative_error(net(io[f"{k}.x"]), io[f"{k}.out"]) <= 1e-4
