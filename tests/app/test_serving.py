"""`app.py --batch-requests N`: visitors' runs go on at once (cascade_core/batching.py batches their steps);
each visitor's Stop, progress and image stay their own."""
from __future__ import annotations

import re

import numpy as np
from gradio_client import Client
from PIL import Image

from .conftest import first_output, start_studio, stop_studio

LONG, SHORT = (1024, 200), (256, 2)  # (size, Stage C steps): the demo model takes about 8 s and 0.2 s


def submit(client: Client, prompt: str, seed: int, size_steps: tuple[int, int]):
    size, steps = size_steps
    return client.submit(prompt, "", size, size, seed, steps, 4.0, 2, 1.1, 1, api_name="/generate")


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_two_visitors_run_at_once_stop_alone_and_get_their_own_image(tmp_path, demo_studio):
    studio = start_studio(tmp_path, "--demo", "--batch-requests", "2")
    try:
        stopper, other = Client(studio.url, verbose=False), Client(studio.url, verbose=False)  # two sessions
        long_run = submit(stopper, "stopped later", 5, LONG)
        assert first_output(long_run, lambda o: re.search(rf"step \d+/{LONG[1]}", o[4] or ""), timeout=120)
        short_run = submit(other, "a short one", 6, SHORT)
        finished = short_run.result(timeout=120)
        assert finished[4].startswith("Done")
        assert not long_run.done()  # the short run went beside the long one (one at a time, it waits behind it)
        assert stopper.predict(api_name="/stop") == "Stopping…"  # the first visitor's Stop ends only theirs
        assert long_run.result(timeout=60)[4].startswith("Stopped during")
        assert "Serving up to 2 runs at once" in studio.log.read_text()
    finally:
        stop_studio(studio)
    size, steps = SHORT
    alone = Client(demo_studio.url, verbose=False).predict("a short one", "", size, size, 6, steps, 4.0, 2, 1.1, 1,
                                                           api_name="/generate")
    # the image made beside another run is the one made alone, up to batch-size dependent rounding
    difference = np.abs(pixels(finished[2][0]["image"]) - pixels(alone[2][0]["image"]))
    assert difference.max() <= 1 and (difference > 0).mean() < 0.001
