"""The /generate endpoint through gradio_client: streaming order, exact pixels, stop, repeated runs."""
from __future__ import annotations

import json
import re
import shutil
import time

import numpy as np
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from PIL import Image

import cascade_core as cc
from cascade_core.images import read_settings
from cascade_core.request import MAX_SEED

from .conftest import TINY_MODEL, first_output, start_studio, stop_studio

LORA = TINY_MODEL.parents[1] / "extras" / "lora" / "lora_tiny.safetensors"
SMALL = dict(width=256, height=256, prior_guidance=4.0, decoder_guidance=1.1, num_images=1)


def call(client: Client, prompt: str, seed: int, prior_steps: int, decoder_steps: int, **overrides):
    """(all streamed outputs, final outputs) of one /generate call."""
    p = {**SMALL, **overrides}
    job = client.submit(prompt, "", p["width"], p["height"], seed, prior_steps, p["prior_guidance"], decoder_steps,
                        p["decoder_guidance"], p["num_images"], api_name="/generate")
    final = job.result(timeout=180)
    outputs = list(job.outputs())
    if not outputs or outputs[-1] != final:  # gradio_client may return the result before it lists it
        outputs.append(final)
    # gradio_client lists [the exception] in place of a streamed output whose files it could not fetch
    unfetched = [o[0] for o in outputs if len(o) == 1 and isinstance(o[0], Exception)]
    assert not unfetched, f"streamed outputs the client could not fetch: {unfetched}"
    return outputs, final


def direct(model, prompt: str, seed: int, prior_steps: int, decoder_steps: int) -> Image.Image:
    request = cc.GenerationRequest(prompt, width=256, height=256, seed=seed, prior_steps=prior_steps,
                                   decoder_steps=decoder_steps)
    *_, finished = cc.generate(model, request)
    assert isinstance(finished, cc.Finished)
    return finished.images[0]


def pixels(image_or_path) -> np.ndarray:
    image = image_or_path if isinstance(image_or_path, Image.Image) else Image.open(image_or_path)
    return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def client(demo_studio):
    return Client(demo_studio.url, verbose=False)


def test_streams_preview_then_stage_b_then_final_and_matches_engine(client, demo_studio):
    outputs, final = call(client, "a lighthouse at dusk", seed=1234, prior_steps=4, decoder_steps=3)
    first_preview = next(k for k, o in enumerate(outputs) if o[0])
    first_stage_b = next(k for k, o in enumerate(outputs) if o[1])
    first_final = next(k for k, o in enumerate(outputs) if o[2])
    assert first_preview < first_stage_b < first_final == len(outputs) - 1
    assert all(not o[2] for o in outputs[:-1])  # final images only at the end
    preview, stage_b, images, settings, status = final
    assert status.startswith("Done")
    assert settings["seeds"] == [1234] and len(images) == 1
    image_settings = settings["images"][0]
    assert image_settings["seed"] == 1234 and image_settings["prior_steps"] == 4
    expected = direct(cc.load_demo(), "a lighthouse at dusk", 1234, 4, 3)
    assert np.array_equal(pixels(images[0]["image"]), pixels(expected))

    saved = list(demo_studio.outputs.glob("*/*.png"))
    match = [p for p in saved if read_settings(p).get("seed") == 1234]
    assert len(match) == 1
    sidecar = json.loads(match[0].with_suffix(".json").read_text())
    assert sidecar["prompt"] == "a lighthouse at dusk" and sidecar["decoder_steps"] == 3
    assert np.array_equal(pixels(match[0]), pixels(images[0]["image"]))


def test_two_requests_in_a_row_and_a_batch(client):
    _, first = call(client, "two in a row", seed=7, prior_steps=2, decoder_steps=2)
    _, second = call(client, "two in a row", seed=7, prior_steps=2, decoder_steps=2, num_images=2)
    assert first[3]["seeds"] == [7] and second[3]["seeds"] == [7, 8]
    # Image k of a batch uses seed + k; batched float arithmetic may round a few pixels by one level.
    difference = np.abs(pixels(first[2][0]["image"]).astype(int) - pixels(second[2][0]["image"]))
    assert difference.max() <= 1 and (difference > 0).mean() < 0.001


@pytest.mark.parametrize("values, message", [
    ((256, 256, MAX_SEED + 1, 2, 4.0, 2, 1.1, 1), f"seed: {MAX_SEED + 1} is outside 0–{MAX_SEED}"),
    ((5000, 256, 1, 2, 4.0, 2, 1.1, 1), "width: 5000 px is outside 256–2048 px"),  # not clamped by a widget
    ((256, 256, 1.5, 2, 4.0, 2, 1.1, 1), "seed: must be a whole number, got 1.5"),  # not rounded by a widget
    ((256, 256, 1, 0, 4.0, 2, 1.1, 1), "prior_steps: 0 is outside 1–200"),  # not Gradio's "less than minimum"
    ((256, 256, 1, 2, 4.0, 2, 1.1, 9), "num_images: 9 is outside 1–8"),
])
def test_invalid_request_is_the_engines_message(client, values, message):
    with pytest.raises(AppError, match=f"^{re.escape(message)}$"):  # the engine's RequestError, as it is
        client.predict("bad", "", *values, api_name="/generate")


def test_stop_ends_the_run_within_a_step_and_the_next_run_works(client):
    job = client.submit("stop me", "", 256, 256, 3, 200, 4.0, 2, 1.1, 1, api_name="/generate")
    running = first_output(job, lambda o: re.search(r"step (?!1/)\d+/200", o[4] or ""), timeout=120)
    assert running is not None, "the run ended before step 2"
    stopped_at = time.monotonic()
    assert client.predict(api_name="/stop") == "Stopping…"
    final = job.result(timeout=60)
    assert final[4].startswith("Stopped during Composition")
    assert time.monotonic() - stopped_at < 15  # one step is well under a second here
    assert final[2] in (None, [])
    _, after = call(client, "after stop", seed=9, prior_steps=2, decoder_steps=2)
    assert after[4].startswith("Done")


def test_tiny_reference_model_folder(tmp_path):
    if not TINY_MODEL.is_dir():
        pytest.skip(f"{TINY_MODEL} is missing (CI has shared/ beside the repository)")
    loras = tmp_path / "loras"
    loras.mkdir()
    shutil.copy(LORA, loras / "fernando.safetensors")  # the reference LoRA of the tiny cascade
    studio = start_studio(tmp_path, "--model", str(TINY_MODEL), "--lora-dir", str(loras))
    try:
        client = Client(studio.url, verbose=False)
        _, final = call(client, "a tiny test", seed=42, prior_steps=2, decoder_steps=2)
        assert final[3]["images"][0]["model"] == "tiny-cascade"
        expected = direct(cc.load(TINY_MODEL, device="cpu"), "a tiny test", 42, 2, 2)
        assert np.array_equal(pixels(final[2][0]["image"]), pixels(expected))
        # A LoRA of the studio's folder, by name: applied, and recorded in the PNG's settings.
        with_lora = client.predict("a tiny test", "", 256, 256, 42, 2, 4.0, 2, 1.1, 1, [["fernando", 0.8]],
                                   api_name="/generate")
        assert read_settings(with_lora[2][0]["image"])["loras"] == [["fernando", 0.8]]
        assert not np.array_equal(pixels(with_lora[2][0]["image"]), pixels(expected))
        for name in (str(LORA), "../loras/fernando"):  # a server path is not a LoRA the studio offers
            with pytest.raises(AppError, match="is not a LoRA of the studio's folder \\(fernando\\)"):
                client.predict("x", "", 256, 256, 1, 2, 4.0, 2, 1.1, 1, [[name, 1.0]], api_name="/generate")
    finally:
        stop_studio(studio)


def test_load_failure_is_reported(tmp_path):
    missing = tmp_path / "no-such-model"
    studio = start_studio(tmp_path, "--model", str(missing))
    try:
        client = Client(studio.url, verbose=False)
        message = (f"{missing} is not a folder with a Stable Cascade model, a safetensors file, "
                   "nor a Hugging Face repository id (owner/name)")
        with pytest.raises(AppError, match=f"^{re.escape(message)}$"):  # the loader's ModelLoadError, as it is
            client.predict("x", "", 256, 256, 1, 2, 4.0, 2, 1.1, 1, api_name="/generate")
    finally:
        stop_studio(studio)
