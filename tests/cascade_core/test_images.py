import numpy as np
import torch
from PIL import Image

from cascade_core.images import PendingImages, a1111_parameters, read_settings, save_png, to_pil

SETTINGS = {"prompt": "a fox, ünïcode ✓", "negative_prompt": "blurry", "seed": 42, "width": 384, "height": 256,
            "prior_steps": 20, "prior_guidance": 4.0, "decoder_steps": 10, "decoder_guidance": 1.1,
            "model": "stable-cascade", "version": "0.1.0"}


def test_to_pil_rounds_values_times_255():
    image = torch.tensor([0.0, 0.5 / 255, 1.5 / 255, 0.999, 1.2, -0.1]).view(1, 3, 1, 2)
    pixels = [tuple(p) for p in np.array(to_pil(image)[0]).reshape(-1, 3)]
    assert pixels == [(0, 2, 255), (0, 255, 0)]


def test_png_round_trips_its_settings(tmp_path):
    path = save_png(Image.new("RGB", (8, 8)), tmp_path / "a.png", SETTINGS)
    assert read_settings(path) == SETTINGS
    with Image.open(path) as image:
        assert image.text["seed"] == "42" and image.text["prompt"] == SETTINGS["prompt"]
        assert image.text["parameters"] == a1111_parameters(SETTINGS)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]  # no temporary file left behind


def test_a1111_parameters_format():
    text = a1111_parameters(SETTINGS)
    assert text.splitlines() == [
        "a fox, ünïcode ✓",
        "Negative prompt: blurry",
        "Steps: 20, Sampler: DDPM, CFG scale: 4.0, Seed: 42, Size: 384x256, Model: stable-cascade, "
        "Decoder steps: 10, Decoder CFG scale: 1.1, Version: Cascade Studio 0.1.0",
    ]
    assert "Negative prompt" not in a1111_parameters({**SETTINGS, "negative_prompt": ""})


def test_png_without_settings_reads_empty(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "plain.png")
    assert read_settings(tmp_path / "plain.png") == {}


def test_pending_images_on_the_cpu_are_ready_at_once_and_equal_to_pil():
    images = torch.rand(2, 3, 8, 6, generator=torch.Generator().manual_seed(0))
    pending = PendingImages(images, step=4)
    assert pending.ready() and pending.step == 4
    assert [np.array(i).tolist() for i in pending.images()] == [np.array(i).tolist() for i in to_pil(images)]
