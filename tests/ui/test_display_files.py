"""Live images reach Gradio as files written once: never a PIL image, which Gradio rewrites on every yield."""
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from ui.display_files import DisplayFiles, display_files
from ui.generation import Services
from ui.handlers import Handlers, PageOut
from ui.outputs import OutputsWriter
from ui.presets import load_presets

from .test_generation import FakeHolder

SESSION = SimpleNamespace(session_hash="s")
REQUEST = ("a lighthouse", "", 256, 256, 5)  # prompt, negative prompt, width, height, seed
STEPS = (10, 4.0, 4, 1.1, 2)  # prior steps, prior guidance, decoder steps, decoder guidance, images
SKIP = {"__type__": "update"}  # gr.skip()


def noise(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8))


def stat(path: str) -> tuple:
    s = os.stat(path)
    return s.st_ino, s.st_mtime_ns, s.st_size


def test_an_image_is_written_once_and_keeps_its_file(tmp_path):
    files = DisplayFiles(tmp_path, "png")
    first, twin = noise(1), noise(1)
    path = files.path(first)
    before = stat(path)
    assert files.path(first) == path and stat(path) == before
    assert files.path(twin) != path  # another image object is another file, even with the same pixels
    assert files.path(None) is None
    assert np.array_equal(np.asarray(Image.open(path)), np.asarray(first))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["000.png", "001.png"]


def test_an_adopted_file_shows_its_image_without_writing(tmp_path):
    files, image, saved = DisplayFiles(tmp_path, "webp"), noise(3), tmp_path / "saved.png"
    files.adopt(image, saved)
    assert files.path(image) == str(saved) and not saved.exists() and list(tmp_path.iterdir()) == []


def test_the_folder_goes_when_the_run_ends():
    with display_files("webp") as files:
        path = Path(files.path(noise(2)))
        assert path.exists() and Image.open(path).format == "WEBP"
    assert not path.parent.exists()


@pytest.fixture
def handlers(tmp_path, demo_model):
    return Handlers(Services(FakeHolder(demo_model, polls=0), OutputsWriter(tmp_path)), load_presets())


def test_api_stream_yields_stable_files_and_removes_them_after(handlers):
    seen: dict[str, tuple] = {}  # path → its stat when first yielded
    outputs = []
    for output in handlers.api_generate(*REQUEST, *STEPS, SESSION):
        for path in output[:2]:
            assert path is None or isinstance(path, str)
            if path is not None:
                assert stat(path) == seen.setdefault(path, stat(path))  # never rewritten while shown
        outputs.append(output)
    assert len({o[0] for o in outputs if o[0]}) == 2  # previews after step 5 and when Stage C is done
    assert len(seen) > 3 and not any(Path(p).exists() for p in seen)
    preview, stage_b, images, settings, status = outputs[-1]
    assert status.startswith("Done: 2 images") and len(images) == 2 and Path(images[0][0]).exists()  # saved PNGs


def test_page_sends_a_live_image_only_when_it_changes(handlers):
    outputs = [PageOut(*o) for o in handlers.ui_generate(*REQUEST, False, *STEPS, "None", [], SESSION)]
    stage_c = [o.stage_c for o in outputs]
    assert stage_c[0] is None  # the first frame clears the last run's preview
    sent = [value for value in stage_c if value != SKIP]
    assert len(sent) == 3 and len(set(sent)) == 3  # None, then each of the two previews once
    assert all(path.endswith(".webp") for path in sent[1:])
    canvas = [o.canvas for o in outputs if o.canvas != SKIP]
    assert canvas[0] is None and len(canvas) == 3  # cleared, one intermediate, the first final image
    assert len(outputs) > len(sent) + 10  # every other frame only updates the status


def test_a_single_final_image_is_shown_from_its_saved_png(handlers):
    one = (*STEPS[:4], 1)
    *_, (preview, stage_b, images, settings, status) = handlers.api_generate(*REQUEST, *one, SESSION)
    assert stage_b == images[0][0] == settings["images"][0]["file"] and Path(stage_b).exists()
    *_, page_final = handlers.ui_generate(*REQUEST, False, *one, "None", [], SESSION)
    final = PageOut(*page_final)
    assert final.canvas == final.items[0]["path"] == final.selected  # the canvas shows the gallery's new file
