"""ControlNet input filters equal the official ones (../shared/reference/extras/controlnet).

Each step is checked from the stored input of that step; edge maps and masks must be exact.
"""
import json

import pytest
import torch
from safetensors.torch import load_file

from cascade_core.control_filters import (blur_mask, canny, canny_edges, canny_pixels, gaussian_blur,
                                          inpaint_input, saliency, saliency_mask)
from cascade_core.image_inputs import to_tensor
from cascade_core.models.saliency import MicroResNet
from tests.conftest import REFERENCE, relative_error

CONTROLNET = REFERENCE / "extras" / "controlnet"
FILTER_CASES = json.loads((CONTROLNET / "controlnet.json").read_text())["filter_cases"]
CANNY = [case for case in FILTER_CASES if case["filter"] == "canny"]
INPAINT = [case for case in FILTER_CASES if case["filter"] == "inpainting"]


@pytest.fixture(scope="module")
def io():
    return load_file(CONTROLNET / "filters.io.safetensors")


@pytest.fixture(scope="module")
def saliency_model():
    net = MicroResNet().eval()
    net.load_state_dict(load_file(CONTROLNET / "saliency_tiny.safetensors"), strict=True)
    return net


def pictures(u8: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 → (B, 3, H, W) in [0, 1]."""
    return torch.stack([to_tensor(p.numpy()) for p in u8])


@pytest.mark.parametrize("case", CANNY, ids=lambda case: case["key"])
def test_canny(case, io):
    """The reference was computed with several threads: F.interpolate's single-thread kernel rounds float32
    differently (on canny.0, 21 of 150,528 values then land one level apart), as the official code's
    own resize would on one thread."""
    torch.set_num_threads(max(2, torch.get_num_threads()))  # put back after the test (tests/conftest.py)
    get = lambda name: io[f"{case['key']}.{name}"]
    x = pictures(get("image_u8"))
    assert list(x.shape) == case["image_shape"]
    assert torch.equal(canny_pixels(x), get("canny_input_u8"))
    assert torch.equal(canny_edges(get("canny_input_u8")), get("edges_224_u8"))
    out = canny(x)
    assert relative_error(out, get("output")) <= 1e-4
    assert (out - get("output")).abs().max() <= 1e-6


@pytest.mark.parametrize("case", INPAINT, ids=lambda case: case["key"])
def test_inpaint_with_user_mask(case, io):
    get = lambda name: io[f"{case['key']}.{name}"]
    assert torch.equal(inpaint_input(pictures(get("image_u8")), get("user_mask")), get("user_output"))


@pytest.mark.parametrize("case", INPAINT, ids=lambda case: case["key"])
@torch.inference_mode()
def test_inpaint_with_automatic_mask(case, io, saliency_model):
    get = lambda name: io[f"{case['key']}.{name}"]
    x = pictures(get("image_u8"))
    threshold, outpaint = case["threshold"], case["outpaint"]
    ours = saliency(x, saliency_model)
    assert relative_error(ours, get("saliency")) <= 1e-4
    assert ((ours - threshold).abs() > case["saliency_margin"] / 2).all()  # same decisions as the reference

    stored = get("saliency") > threshold
    blurred = blur_mask(~stored if outpaint else stored, x.shape[-2:])
    assert relative_error(blurred, get("blurred")) <= 1e-4
    assert ((blurred - 0.5).abs() > case["blur_margin"] / 2).all()
    expected_mask = get("auto_output")[:, 3:] == 1
    assert torch.equal(get("blurred") > 0.5, expected_mask)

    mask = saliency_mask(x, saliency_model, threshold, outpaint)
    assert torch.equal(mask, expected_mask)
    assert torch.equal(inpaint_input(x, mask), get("auto_output"))


def test_gaussian_blur_equals_the_2d_kernel():
    """The two 1-D passes equal one conv with torchvision's 2-D kernel (outer product), reflect padded."""
    x = (torch.rand(2, 1, 75, 90) > 0.5).float()
    t = torch.linspace(-70, 70, 141)
    kernel_1d = torch.exp(-0.5 * (t / 21.5) ** 2)
    kernel_1d = kernel_1d / kernel_1d.sum()
    kernel_2d = torch.mm(kernel_1d[:, None], kernel_1d[None, :])  # (141, 141)
    direct = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (70,) * 4, mode="reflect"), kernel_2d[None, None])
    assert (gaussian_blur(x) - direct).abs().max() <= 1e-5  # float32 sums of 141² vs 2·141 products
    ones = torch.ones(1, 2, 80, 90)
    assert (gaussian_blur(ones) - ones).abs().max() <= 1e-6
