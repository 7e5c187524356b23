import shutil

import pytest
import torch

import cascade_core as cc
from cascade_core import compiling
from cascade_core.warmup import warm_up
from tests.conftest import TINY_CASCADE


class RecordingCompile:
    """Stands in for torch.compile where only the wiring is tested: records its arguments, returns a
    wrapper that counts calls. What compiled code computes is tested with inductor itself, below."""

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


def blocks(net):
    return [block for level in (*net.down_blocks, *net.up_blocks) for block in level]


def test_none_leaves_the_blocks_eager(recording):
    net = cc.load_demo().stage_c
    compiling.compile_blocks(net, "none")
    assert recording.compiled == []


@pytest.mark.parametrize("mode, expected", [("default", None), ("reduce-overhead", "reduce-overhead")])
def test_a_mode_compiles_every_block_with_static_shapes_and_a_disk_cache(recording, tmp_path, mode, expected):
    import os

    net = cc.load_demo().stage_b
    compiling.compile_blocks(net, mode)
    assert [fn for fn, _ in recording.compiled] == [block._call_impl for block in blocks(net)]
    assert all(options == {"mode": expected, "dynamic": False} for _, options in recording.compiled)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "inductor")
    assert torch._dynamo.config.recompile_limit >= compiling.RECOMPILE_LIMIT


def test_every_block_call_of_a_request_goes_through_the_compiled_callable(recording):
    request = cc.GenerationRequest("a red fox", width=256, height=256, seed=5, prior_steps=3, decoder_steps=2)
    eager, block_calls = cc.load_demo(), []
    for block in blocks(eager.stage_c) + blocks(eager.stage_b):
        block.register_forward_pre_hook(lambda *_: block_calls.append(1))
    list(cc.generate(eager, request))
    model = cc.load_demo(compile="default")
    assert len(recording.compiled) == len(blocks(model.stage_c)) + len(blocks(model.stage_b))
    list(cc.generate(model, request))
    assert recording.calls == len(block_calls)  # every block call of every step went through the compiled one


@pytest.mark.skipif(shutil.which("c++") is None, reason="inductor needs a C++ compiler on the CPU")
def test_inductor_compiled_request_keeps_float32_parity(monkeypatch, tmp_path):
    """The real thing: inductor compiles the tiny model's blocks (about a minute on 2 cores, cold cache)."""
    monkeypatch.setenv("CASCADE_COMPILE_CACHE", str(tmp_path / "inductor"))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    request = cc.GenerationRequest("a red fox", width=256, height=256, seed=5, prior_steps=2, decoder_steps=2)
    plain = list(cc.generate(cc.load_demo(), request, keep_tensors=True))[-1]
    compiled = list(cc.generate(cc.load_demo(compile="default"), request, keep_tensors=True))[-1]
    for name, reference in plain.tensors.items():
        error = (compiled.tensors[name] - reference).norm() / reference.norm()
        assert error <= 1e-4, name
    assert any((tmp_path / "inductor").iterdir())  # kernels cached on disk for the next run


def test_compiling_needs_the_networks_on_the_device():
    with pytest.raises(cc.OptionsError, match="offload none"):
        cc.EngineOptions(device="cuda", offload="model", compile="default")


def test_load_refuses_an_unknown_compile_mode():
    with pytest.raises(cc.OptionsError, match="unknown compile 'fastest'; use one of none, default"):
        cc.load(TINY_CASCADE, device="cpu", compile="fastest")


def test_warm_up_runs_three_steps_of_each_stage_at_the_requested_size(recording):
    model = cc.load_demo(compile="default")
    seconds = warm_up(model, cc.GenerationRequest("x", width=256, height=256, num_images=2))
    assert seconds > 0
    calls = recording.calls
    list(cc.generate(model, cc.GenerationRequest("x", width=256, height=256, num_images=2, prior_steps=3,
                                                 decoder_steps=3)))
    assert recording.calls == 2 * calls  # the warm-up ran exactly such a request
