"""ControlNet outputs enter Stage C as in the official forward (../shared/reference/extras/controlnet)."""
import json

import pytest
import torch
from safetensors.torch import load_file

from cascade_core.config import StageCConfig
from cascade_core.models import build
from cascade_core.models.blocks import ResBlock
from tests.conftest import REFERENCE, relative_error

CONTROLNET = REFERENCE / "extras" / "controlnet"
SPEC = json.loads((CONTROLNET / "controlnet.json").read_text())["stage_c_cnet"]


@pytest.fixture(scope="module")
def stage_c():
    net = build(StageCConfig.from_official(SPEC["constructor_args"]))
    net.load_state_dict(load_file(REFERENCE / SPEC["weights"]), strict=True)
    return net


def control_list(io, case, spec):
    """The stored `K.cnet.I` entries as the official list: length `cnet_len`, None elsewhere."""
    return [io.get(f"{case}.cnet.{n}") if n in spec["present"] else None for n in range(spec["cnet_len"])]


@pytest.mark.parametrize("case", range(len(SPEC["cases"])))
@torch.inference_mode()
def test_stage_c_with_control(case, stage_c):
    io = load_file(CONTROLNET / "stage_c_cnet.io.safetensors")
    get = lambda key: io[f"{case}.{key}"]
    cnet = control_list(io, case, SPEC["cases"][case])
    conditions = get("clip_text"), get("clip_text_pooled"), get("clip_img")
    assert relative_error(stage_c(get("x"), get("r"), *conditions), get("out_without_cnet")) <= 1e-4
    assert relative_error(stage_c(get("x"), get("r"), *conditions, cnet=cnet), get("out")) <= 1e-4

    prepared = stage_c.prepare(*conditions)  # the control is reused by every step of a request
    assert relative_error(stage_c.step(get("x"), get("r"), prepared, cnet), get("out")) <= 1e-4


@torch.inference_mode()
def test_entries_follow_resblock_runs(stage_c):
    """Entry n is added just before the n-th ResBlock run, resized to x, and nowhere else."""
    inputs = []
    hooks = [block.register_forward_pre_hook(lambda module, args: inputs.append(args[0].clone()))
             for block in stage_c.modules() if isinstance(block, ResBlock)]
    x, r = torch.randn(1, 16, 5, 6), torch.rand(1)
    prepared = stage_c.prepare(torch.randn(1, 7, 32), torch.randn(1, 1, 32), torch.zeros(1, 1, 24))
    try:
        stage_c.step(x, r, prepared)
        plain = inputs[:]
        runs = len(plain)
        assert runs == 8  # tiny Stage C: 2 + 2 down, 2 + 2 up
        for n in range(runs):
            inputs.clear()
            control = torch.randn(1, 64, 3, 3)
            stage_c.step(x, r, prepared, [None] * n + [control])
            resized = torch.nn.functional.interpolate(control, size=(5, 6), mode="bilinear", align_corners=True)
            assert torch.equal(inputs[n], plain[n] + resized)
            assert all(torch.equal(a, b) for a, b in zip(inputs[:n], plain[:n]))
    finally:
        for hook in hooks:
            hook.remove()


@torch.inference_mode()
def test_empty_none_or_surplus_entries_change_nothing(stage_c):
    x, r = torch.randn(2, 16, 4, 4), torch.rand(2)
    prepared = stage_c.prepare(torch.randn(2, 5, 32), torch.randn(2, 1, 32), torch.randn(2, 1, 24))
    plain = stage_c.step(x, r, prepared)
    assert torch.equal(stage_c.step(x, r, prepared, []), plain)
    assert torch.equal(stage_c.step(x, r, prepared, [None] * 8 + [torch.randn(2, 64, 4, 4)]), plain)  # 8 runs
