"""One run as frames: waiting for the model, errors as messages, saving even when nobody reads."""
import threading

import pytest

import cascade_core as cc
from ui.generation import Services, StudioError, stream
from ui.outputs import OutputsWriter

SMALL = dict(width=256, height=256, seed=11, prior_steps=2, decoder_steps=2)


@pytest.fixture(autouse=True)
def no_worker_left():
    """Each test ends every thread it started (the engine's worker): joined here, and checked."""
    before = set(threading.enumerate())
    yield
    started = [thread for thread in threading.enumerate() if thread not in before]
    for thread in started:
        thread.join(timeout=120)
    assert not [thread.name for thread in started if thread.is_alive()], "a worker outlived its test"


class SignallingWriter(OutputsWriter):
    """An outputs writer that tells (an event) when it has saved an image."""

    def __init__(self, root):
        super().__init__(root)
        self.saved = threading.Event()

    def save(self, *args, **kwargs):
        saved = super().save(*args, **kwargs)
        self.saved.set()
        return saved


class FakeHolder:
    """A model holder that finishes loading after `polls` waits."""

    def __init__(self, model=None, error=None, polls=2):
        self.model, self.error, self.polls, self.message = model, error, polls, "loading stage_c"

    def wait(self, timeout):
        self.polls -= 1
        return self.polls < 0

    @property
    def finished(self):
        return self.polls < 0

    @property
    def ready(self):
        return self.finished and self.model is not None


def test_waits_for_the_model_then_runs(tmp_path, demo_model):
    frames = list(stream(Services(FakeHolder(demo_model), OutputsWriter(tmp_path)), "s",
                         cc.GenerationRequest("a fox", **SMALL)))
    assert [f.status for f in frames[:2]] == ["Waiting for the model: loading stage_c"] * 2
    assert frames[-1].status.startswith("Done: 1 image in")
    assert frames[-1].saved[0].settings["seed"] == 11 and frames[-1].saved[0].path.exists()
    assert frames[-1].request.seed == 11


def test_on_a_hosted_space_no_server_path_is_shown(tmp_path, demo_model):
    local = list(stream(Services(FakeHolder(demo_model, polls=0), OutputsWriter(tmp_path)), "s",
                        cc.GenerationRequest("a fox", **SMALL)))[-1]
    assert str(tmp_path) in local.status  # at home the folder is worth knowing
    hosted = list(stream(Services(FakeHolder(demo_model, polls=0), OutputsWriter(tmp_path), hosted=True), "s",
                         cc.GenerationRequest("a fox", **SMALL)))[-1]
    assert hosted.status.endswith(", saved") and str(tmp_path) not in hosted.status


def test_explore_saves_nothing_and_its_compositions_finish(tmp_path, demo_model):
    services = Services(FakeHolder(demo_model, polls=0), OutputsWriter(tmp_path))
    explored = list(stream(services, "s", cc.GenerationRequest("a fox", **{**SMALL, "num_images": 3}), explore=True))
    last = explored[-1]
    assert last.status.startswith("Done: 3 compositions") and len(last.compositions) == 3 and last.saved == ()
    assert not list(tmp_path.glob("*/*.png"))
    chosen = (last.compositions[0], last.compositions[2])
    finished = list(stream(services, "s", chosen[0].request, compositions=chosen))[-1]
    assert [s.settings["seed"] for s in finished.saved] == [11, 13] and finished.progress == 1.0


def test_load_failure_and_bad_request_are_messages(tmp_path, demo_model):
    with pytest.raises(StudioError, match="no weights here"):
        list(stream(Services(FakeHolder(error="no weights here"), OutputsWriter(tmp_path)), "s",
                    cc.GenerationRequest("x", **SMALL)))
    with pytest.raises(StudioError, match="^width: "):
        list(stream(Services(FakeHolder(demo_model, polls=0), OutputsWriter(tmp_path)), "s",
                    cc.GenerationRequest("x", **{**SMALL, "width": 100})))


def test_stop_before_the_model_is_ready(tmp_path, demo_model):
    services = Services(FakeHolder(demo_model, polls=1000), OutputsWriter(tmp_path))
    frames = stream(services, "s", cc.GenerationRequest("x", **SMALL))
    assert next(frames).status.startswith("Waiting")
    assert services.stops.stop("s")
    assert [f.status for f in frames] == ["Stopped before the start."]
    assert not services.stops.stop("s")  # the run is over


def test_finished_images_are_saved_even_if_nobody_reads_on(tmp_path, demo_model):
    writer = SignallingWriter(tmp_path)
    frames = stream(Services(FakeHolder(demo_model, polls=0), writer), "s", cc.GenerationRequest("a fox", **SMALL))
    try:
        next(frames)  # the run has started; the page went away and reads no more
        assert writer.saved.wait(120), "the finished image was never saved"
        assert [len(list(tmp_path.glob(f"*/*.{kind}"))) for kind in ("png", "json")] == [1, 1]
    finally:
        frames.close()  # the abandoned handler is closed at last: its worker ends (joined by no_worker_left)


@pytest.mark.parametrize("views", [1, 2, 3])
def test_stage_b_views_are_at_most_asked_and_spread(views):
    from ui.generation import decode_every
    for steps in range(1, 201):
        every = decode_every(steps, views)
        shown = [s for s in range(1, steps) if s % every == 0]  # the engine decodes these (not the last step)
        assert len(shown) <= views
        if steps > views:
            assert len(shown) >= 1
        if views == 1 and steps > 1:
            assert abs(shown[0] - steps / 2) <= 1  # halfway
    assert decode_every(10, 0) == 0


def test_the_studio_decodes_one_stage_b_intermediate(tmp_path, demo_model):
    request = cc.GenerationRequest("a fox", **{**SMALL, "decoder_steps": 10})
    frames = list(stream(Services(FakeHolder(demo_model, polls=0), OutputsWriter(tmp_path)), "s", request))
    shown = {id(f.stage_b) for f in frames if f.stage_b is not None and not f.saved}
    assert len(shown) == 1  # one intermediate image before the final one
