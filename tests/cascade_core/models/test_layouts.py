"""Every released checkpoint layout equals our networks' state_dict, built on meta."""
import json

import pytest
import torch

from cascade_core.models import build
from tests.conftest import REFERENCE

RELEASED = ["stage_c", "stage_c_lite", "stage_b", "stage_b_lite", "stage_a", "previewer", "effnet_encoder",
            "controlnet_canny", "controlnet_inpainting", "controlnet_super_resolution"]


@pytest.mark.parametrize("name", RELEASED)
def test_state_dict_equals_released_layout(name):
    reference = json.loads((REFERENCE / "checkpoint_keys" / f"{name}.json").read_text())
    with torch.device("meta"):
        net = build(name)
    ours = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert ours == reference["tensors"]
    parameters = sum(p.numel() for p in net.parameters())
    assert parameters == reference["parameters"]


@pytest.mark.parametrize("name", RELEASED)
def test_meta_build_allocates_nothing(name):
    with torch.device("meta"):
        net = build(name)
    assert all(t.is_meta for t in net.state_dict().values())


def test_unknown_network_name_lists_known_ones():
    with pytest.raises(KeyError, match="stage_c_lite"):
        build("stage_d")
