"""`app.py --batch-requests N`: visitors' runs go on at once, their steps batched (cascade_core/batching.py);
each visitor's Stop, progress and image stay their own."""
from __future__ import annotations

import re

import numpy as np
from gradio_client import Client
from PIL import Image

from .conftest import first_output, start_studio, stop_studio

STEPS = 200  # Stage C steps, at 1024² (the demo model runs them in about 8 s): both runs surely go on at once
SIZE = 1024


def submit(client: Client, prompt: str, seed: int):
    return client.submit(prompt, "", SIZE, SIZE, seed, STEPS, 4.0, 2, 1.1, 1, api_name="/generate")


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_two_visitors_run_at_once_stop_alone_and_get_their_own_image(tmp_path, demo_studio):
    studio = start_studio(tmp_path, "--demo", "--batch-requests", "2")
    try:
        stopper, finisher = Client(studio.url, verbose=False), Client(studio.url, verbose=False)  # two sessions
        stopped, finished = submit(stopper, "stopped early", 5), submit(finisher, "runs to the end", 6)
        stepping = lambda o: re.search(rf"step \d+/{STEPS}", o[4] or "")  # noqa: E731 - a Stage C step streamed
        assert first_output(stopped, stepping, timeout=120) is not None
        assert first_output(finished, stepping, timeout=120) is not None  # the second runs beside the first,
        assert not stopped.done()  # not after it (with one run at a time it would wait in the queue)
        assert stopper.predict(api_name="/stop") == "Stopping…"  # the first visitor's Stop
        assert stopped.result(timeout=60)[4].startswith("Stopped during Composition")
        together = finished.result(timeout=300)
        assert together[4].startswith("Done")
        assert "Serving up to 2 runs at once" in studio.log.read_text()
    finally:
        stop_studio(studio)
    alone = Client(demo_studio.url, verbose=False).predict("runs to the end", "", SIZE, SIZE, 6, STEPS, 4.0, 2, 1.1, 1,
                                                           api_name="/generate")
    # the batched image is the one-at-a-time image, up to the rounding of batch-size dependent kernels
    difference = np.abs(pixels(together[2][0]["image"]) - pixels(alone[2][0]["image"]))
    assert difference.max() <= 1 and (difference > 0).mean() < 0.001
