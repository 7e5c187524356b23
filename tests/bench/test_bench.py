"""The benchmark runs end to end on the tiny architecture (numbers only; no timing assertions)."""
import json

import pytest
import torch

from bench.__main__ import main
from bench.networks import random_network
from bench.steps import conditions


def test_steps_table_and_json(tmp_path, capsys):
    out = tmp_path / "steps.json"
    assert main(["steps", "--variant", "tiny", "--size", "256", "--repeats", "1", "--no-diffusers",
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    for stage in ("stage_c", "stage_b"):
        row = result["stages"][stage]
        assert row["flops"] > 0 and row["times"]["ours"]["median_s"] > 0 and row["batch"] == 2
    assert "stage_c" in capsys.readouterr().out


def test_bf16_step_stays_near_fp32(tmp_path):
    assert main(["parity", "--variant", "tiny", "--size", "256", "--dtype", "bfloat16",
                 "--json", str(tmp_path / "parity.json")]) == 0


@pytest.mark.parametrize("name", ["stage_c_tiny", "stage_b_tiny"])
@torch.inference_mode()
def test_diffusers_twin_computes_the_same_function(name):
    pytest.importorskip("diffusers")
    from bench.steps import our_call, diffusers_call
    from bench.networks import diffusers_twin

    net = random_network(name, torch.float32, torch.device("cpu"))
    inputs = conditions(net, 1, (16, 16), torch.float32, "cpu")
    prepare, x = our_call(net, inputs)
    r = torch.full((x.shape[0],), 0.3)
    ours, theirs = net.step(x, r, prepare()), diffusers_call(diffusers_twin(net), inputs)(r)
    assert ((ours - theirs).norm() / theirs.norm()).item() <= 1e-5
