"""Pictures → tensors equal the official preparation (../shared/reference/extras)."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from cascade_core.image_inputs import clip_preprocess, resize_image, shorter_side_to, to_tensor
from tests.conftest import REFERENCE, relative_error

IMG2IMG = REFERENCE / "extras" / "img2img"
VARIATION = REFERENCE / "extras" / "image_variation"
RESIZE_CASES = json.loads((IMG2IMG / "resize.json").read_text())
VISION_CASES = json.loads((VARIATION / "vision.json").read_text())


def test_to_tensor_divides_by_255_and_accepts_pil():
    u8 = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 14
    x = to_tensor(u8)
    assert x.shape == (3, 2, 3) and x.dtype == torch.float32
    assert torch.equal(x, torch.from_numpy(u8).permute(2, 0, 1).float() / 255)
    assert torch.equal(to_tensor(Image.fromarray(u8)), x)
    with pytest.raises(ValueError):
        to_tensor(u8.astype(np.float32))


def test_shorter_side_truncates_the_longer():
    assert shorter_side_to(37, 53, 24) == (24, 34)  # 24 · 53 / 37 = 34.4
    assert shorter_side_to(40, 30, 64) == (85, 64)
    assert shorter_side_to(50, 50, 7) == (7, 7)


@pytest.mark.parametrize("case", range(len(RESIZE_CASES)))
def test_resize_image(case):
    io = load_file(IMG2IMG / "resize.io.safetensors")
    spec = RESIZE_CASES[case]
    resized = resize_image(to_tensor(io[f"{case}.image_u8"].numpy()), spec["size"])
    assert list(resized.shape) == spec["resized_shape"]
    assert relative_error(resized, io[f"{case}.resized"]) <= 1e-4
    assert (resized - io[f"{case}.resized"]).abs().max() <= 1e-3


def test_resize_image_keeps_a_fitting_picture():
    x = torch.rand(3, 24, 40)
    assert resize_image(x, 24) is x


@pytest.fixture(scope="module")
def clip_vision():
    from transformers import CLIPVisionModelWithProjection
    return CLIPVisionModelWithProjection.from_pretrained(VARIATION / "clip_vision", use_safetensors=True).eval()


@pytest.mark.parametrize("case", range(len(VISION_CASES)))
@torch.inference_mode()
def test_clip_image_embedding(case, clip_vision):
    io = load_file(VARIATION / "vision.io.safetensors")
    get = lambda key: io[f"{case}.{key}"]
    images = torch.stack([resize_image(to_tensor(u8.numpy()), VISION_CASES[case]["size"]) for u8 in get("images_u8")])
    pixel_values = clip_preprocess(images)
    assert relative_error(pixel_values, get("pixel_values")) <= 1e-4
    embeds = clip_vision(pixel_values=get("pixel_values")).image_embeds  # from the stored input
    assert relative_error(embeds, get("image_embeds")) <= 1e-4
    clip_img = clip_vision(pixel_values=pixel_values).image_embeds[:, None]  # (B, 1, c_clip_img), end to end
    assert relative_error(clip_img, get("clip_img")) <= 1e-4
