"""Contact sheets, Markdown escaping, the model holder, the torch-free rule."""
import re
import threading
from pathlib import Path

from PIL import Image

import cascade_core as cc
from ui.imaging import contact_sheet
from ui.markdown import md_escape
from ui.model_holder import ModelHolder

REPO = Path(__file__).resolve().parents[2]


def test_contact_sheet():
    assert contact_sheet([]) is None
    one = Image.new("RGB", (10, 20))
    assert contact_sheet([one]) is one
    assert contact_sheet([one] * 3, gap=2).size == (22, 42)
    assert contact_sheet([one], longest=40).size == (20, 40)


def test_md_escape_shows_text_literally():
    assert md_escape("<img src=x onerror=alert(1)> **b**") == r"\<img src=x onerror=alert\(1\)\> \*\*b\*\*"


def test_model_holder_reports_what_to_do(tmp_path):
    holder = ModelHolder().start()
    assert holder.wait(30) and not holder.ready
    assert "--demo" in holder.error and "--model REPO_OR_FOLDER" in holder.error
    assert holder.status_markdown().startswith("**Model failed to load.** No model given")
    holder = ModelHolder(cc.EngineOptions(model=str(tmp_path / "missing"), device="cpu")).start()
    assert holder.wait(30) and holder.error and not holder.ready
    assert holder.status_markdown().startswith("**Model failed to load.**")


def test_model_loads_in_the_background(monkeypatch):
    """start() returns while the model is still loading, in another thread, which then makes it ready."""
    loading, release, loaders = threading.Event(), threading.Event(), []
    build = cc.load_demo

    def held_back(*args, **kwargs):  # the demo model, once the test lets it through
        loaders.append(threading.current_thread())
        loading.set()
        release.wait(30)  # a start() that loaded in the caller's thread would return after this
        return build(*args, **kwargs)

    monkeypatch.setattr(cc, "load_demo", held_back)
    holder = ModelHolder(demo=True).start()
    try:
        assert loading.wait(30), "loading never began"
        assert not holder.finished and not holder.ready  # start() has returned; the model is still loading
        assert len(loaders) == 1 and loaders[0] is not threading.current_thread()
    finally:
        release.set()
    assert holder.wait(120) and holder.ready and holder.error is None


def test_ui_and_app_never_import_torch():
    for path in [REPO / "app.py", *sorted((REPO / "ui").glob("*.py"))]:
        assert not re.search(r"^\s*(import torch|from torch)", path.read_text(), re.M), path


def test_a_compiled_model_is_warmed_up_before_it_is_ready(monkeypatch):
    import ui.model_holder

    seen = []

    def warm_up(model):
        seen.append((model.runtime.compile, holder.ready))
        return 42.0

    monkeypatch.setattr(ui.model_holder, "warm_up", warm_up)
    holder = ModelHolder(cc.EngineOptions(compile="default"), demo=True)
    holder.start()
    assert holder.wait(120) and holder.ready and holder.error is None
    assert seen == [("default", False)] and holder.message == "compiled in 42 s"
