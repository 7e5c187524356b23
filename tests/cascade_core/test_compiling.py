import pytest
import torch

import cascade_core as cc
from cascade_core import compiling
from cascade_core.model import CascadeModel
from cascade_core.offload import Placement


class RecordingCompile:
    """Stands in for torch.compile: records its arguments, returns a wrapper that counts calls."""

    def __init__(self):
        self.compiled, self.calls = [], 0

    def __call__(self, fn, **options):
        self.compiled.append((fn, options))

        def wrapper(*args, **kwargs):
            self.calls += 1
            return fn(*args, **kwargs)
        return wrapper


@pytest.fixture
def recording(monkeypatch, tmp_path):
    monkeypatch.setenv("CASCADE_COMPILE_CACHE", str(tmp_path / "inductor"))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    compile = RecordingCompile()
    monkeypatch.setattr(torch, "compile", compile)
    return compile


def test_none_is_the_plain_step_and_unknown_modes_are_refused(tiny_model):
    assert compiling.step_function(tiny_model.stage_c, "none") == tiny_model.stage_c.step
    with pytest.raises(ValueError, match="reduce-overhead"):
        compiling.step_function(tiny_model.stage_c, "fast")


@pytest.mark.parametrize("mode, expected", [("default", None), ("reduce-overhead", "reduce-overhead")])
def test_a_mode_compiles_the_step_with_static_shapes_and_a_disk_cache(recording, tiny_model, tmp_path, mode, expected):
    import os

    compiling.step_function(tiny_model.stage_b, mode)
    fn, options = recording.compiled[0]
    assert fn == tiny_model.stage_b.step and options == {"mode": expected, "dynamic": False}
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "inductor")


def test_compiled_steps_run_the_request_and_change_no_pixel(recording):
    request = cc.GenerationRequest("a red fox", width=256, height=256, seed=5, prior_steps=3, decoder_steps=2)
    plain = list(cc.generate(cc.load_demo(), request))[-1]
    compiled_model = cc.load_demo(compile="default")
    assert len(recording.compiled) == 2  # Stage C's and Stage B's step
    compiled = list(cc.generate(compiled_model, request))[-1]
    assert recording.calls == 3 + 2
    assert [img.tobytes() for img in compiled.images] == [img.tobytes() for img in plain.images]


def test_compiling_needs_the_networks_on_the_device(tiny_model):
    with pytest.raises(ValueError, match="offload none"):
        CascadeModel(**{k: getattr(tiny_model, k) for k in ("name", "stage_c", "stage_b", "stage_a", "previewer",
                                                             "text_encoder", "device", "dtype")},
                     placement=Placement(tiny_model.networks(), tiny_model.device, "model"), compile="default")


def test_load_refuses_an_unknown_compile_mode():
    from tests.conftest import TINY_CASCADE

    with pytest.raises(cc.ModelLoadError, match="unknown compile mode"):
        cc.load(TINY_CASCADE, device="cpu", compile="fastest")
