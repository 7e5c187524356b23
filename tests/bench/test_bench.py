"""The benchmark runs end to end on the tiny architecture (numbers only; no timing assertions)."""
import json
import re
import subprocess
import sys
from pathlib import Path

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


@torch.inference_mode()
def test_diffusers_twin_runs_in_bfloat16():
    """Their networks take r in the network dtype, as their pipelines pass it (the bug of the first GPU run)."""
    pytest.importorskip("diffusers")
    from bench.steps import diffusers_call
    from bench.networks import diffusers_twin

    net = random_network("stage_b_tiny", torch.bfloat16, torch.device("cpu"))
    inputs = conditions(net, 1, (16, 16), torch.bfloat16, "cpu")
    x = inputs["x"]
    r = torch.full((x.shape[0],), 0.5)
    theirs = diffusers_call(diffusers_twin(net), inputs)(r)
    assert theirs.dtype == torch.bfloat16 and theirs.shape == x.shape and theirs.isfinite().all()


def test_profile_lists_operators_by_self_time(tmp_path, capsys):
    out = tmp_path / "profile.json"
    assert main(["profile", "--variant", "tiny", "--size", "256", "--no-diffusers", "--json", str(out)]) == 0
    table = json.loads(out.read_text())["profile"]["stage_b"]["ours"]
    times = [op["ms_per_step"] for op in table["operators"]]
    assert times == sorted(times, reverse=True)
    assert any(op["name"].endswith(("addmm", "_linear_pointwise")) for op in table["operators"])  # oneDNN on the CPU
    assert "-- stage_b, ours" in capsys.readouterr().out


def test_traffic_counts_bytes_as_a_gpu_runs_the_step(tmp_path):
    out = tmp_path / "traffic.json"
    assert main(["traffic", "--variant", "tiny", "--size", "256", "--dtype", "bfloat16", "--json", str(out)]) == 0
    traffic = json.loads(out.read_text())["traffic"]
    for stage in ("stage_c", "stage_b"):
        ops = traffic[stage]["operators"]
        assert ops["addmm"][0] > 0 and "linalg_vector_norm" in ops  # the GRN's fused norm, as on a GPU
        assert not {"empty", "empty_like", "permute", "view"} & set(ops)  # allocations and views move nothing
    assert traffic["stage_c"]["attention_calls"] > 0 and traffic["stage_c"]["attention_bytes"] > 0


def test_buffer_reuse_follows_the_flag(monkeypatch, tmp_path):
    from cascade_core import runtime

    calls = []
    monkeypatch.setattr(runtime, "reuse_host_buffers", lambda: calls.append(1))
    args = ["steps", "--variant", "tiny", "--size", "256", "--repeats", "1", "--warmup", "0", "--no-diffusers"]
    assert main(args + ["--no-buffer-reuse"]) == 0
    assert calls == []
    assert main(args) == 0
    assert calls == [1, 1]  # once per stage, as each network is set up
    with pytest.raises(SystemExit, match="random weights"):
        main(["steps", "--model", str(tmp_path), "--no-buffer-reuse"])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_host_buffers_script_times_both_settings():
    script = Path(__file__).resolve().parents[2] / "bench" / "host_buffers.py"
    out = subprocess.run([sys.executable, str(script), "--variant", "tiny", "--size", "256", "--pairs", "1"],
                         check=True, capture_output=True, text=True).stdout  # own process: the settings are global
    for name in ("mapped", "reused"):
        assert re.search(rf"{name}: +\d+\.\d+ s wall, +\d+\.\d+ s sys, +\d+ page faults per step", out)


def test_request_times_cold_and_kept_prompts(tmp_path, capsys, monkeypatch):
    from cascade_core.text import TextEncoder
    encoded, encode = [], TextEncoder._encode
    monkeypatch.setattr(TextEncoder, "_encode", lambda self, prompt: (encoded.append(prompt), encode(self, prompt))[1])
    out = tmp_path / "request.json"
    assert main(["request", "--variant", "tiny", "--size", "256", "--repeats", "2", "--warmup", "0", "--no-diffusers",
                 "--prior-steps", "2", "--decoder-steps", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert len(encoded) == 2 * 2  # prompt and negative prompt, in each cold run only
    assert len(result["times"]["ours"]["runs_s"]) == len(result["times"]["ours_prompts_kept"]["runs_s"]) == 2
    assert set(result["stages"]) == set(result["stages_prompts_kept"]) >= {"text", "stage_c", "stage_b", "total"}
    assert "prompts kept:" in capsys.readouterr().out


def test_stage_b_views_script_counts_the_decodes():
    script = Path(__file__).resolve().parents[2] / "bench" / "stage_b_views.py"
    out = subprocess.run([sys.executable, str(script), "--variant", "tiny", "--prior-steps", "2", "--decoder-steps", "10",
                          "--pairs", "1"], check=True, capture_output=True, text=True).stdout  # it sets the thread count
    assert re.search(r"every 2 steps +decoded 4 intermediates", out)
    assert re.search(r"one view \(studio\) +decoded 1 intermediates", out)
    assert re.search(r"alone: Stage A decode \d+\.\d+ s", out)


def test_stage_a_layout_script_times_both_layouts():
    script = Path(__file__).resolve().parents[2] / "bench" / "stage_a_layout.py"
    out = subprocess.run([sys.executable, str(script), "--size", "256", "--pairs", "1"],
                         check=True, capture_output=True, text=True).stdout  # it sets the thread count
    for name in ("channels-first", "channels-last"):
        assert re.search(rf"{name} +median \d+\.\d+ s", out)
    assert float(re.search(r"largest output difference (\S+)", out).group(1)) <= 1e-4


def test_studio_stream_script_times_both_checkouts():
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, str(repo / "bench" / "studio_stream.py"), "--baseline", str(repo), "--size",
                          "256", "--prior-steps", "2", "--decoder-steps", "2", "--runs", "1"],
                         check=True, capture_output=True, text=True, timeout=600).stdout
    for name in ("this checkout", "baseline"):
        assert re.search(rf"{name} +wall \d+\.\d+ s, engine \d+\.\d+ s, stream overhead -?\d+\.\d+ s .*; "
                         r"\d+ outputs streamed", out)


@torch.inference_mode()
def test_diffusers_request_encodes_each_prompt_once(monkeypatch):
    """diffusers' decoder gets the prior's text embeddings, as their combined pipeline hands them on, not the
    prompts: else it runs the text encoder twice more than ours does (prompt and negative prompt again)."""
    pytest.importorskip("diffusers")
    from diffusers import StableCascadeDecoderPipeline

    from cascade_core import load_demo
    from cascade_core.request import GenerationRequest
    from bench.request import diffusers_pipelines, theirs

    model = load_demo("cpu")
    prior, decoder = diffusers_pipelines(model)
    encodes, decoder_calls = [], []
    model.text_encoder.model.register_forward_hook(lambda *_: encodes.append(1))
    call = StableCascadeDecoderPipeline.__call__
    monkeypatch.setattr(StableCascadeDecoderPipeline, "__call__",
                        lambda self, **kw: (decoder_calls.append(kw), call(self, **kw))[1])
    theirs(prior, decoder, GenerationRequest("a red fox", seed=0, width=256, height=256, prior_steps=1,
                                             decoder_steps=1))
    assert len(encodes) == 2  # the prompt and the negative prompt, by the prior only
    (kw,) = decoder_calls
    assert kw["prompt"] is None and kw["negative_prompt"] is None
    assert kw["prompt_embeds"] is not None and kw["negative_prompt_embeds_pooled"] is not None


def test_explore_script_times_exploring_full_runs_and_finishing(tmp_path, capsys, monkeypatch):
    from bench import explore
    from cascade_core.models.stage_b import StageB

    stage_b_steps, step = [], StageB.step
    monkeypatch.setattr(StageB, "step", lambda self, *a: (stage_b_steps.append(1), step(self, *a))[1])
    out = tmp_path / "explore.json"
    assert explore.main(["--variant", "tiny", "--images", "2", "--prior-steps", "2", "--decoder-steps", "3",
                         "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    # Stage B: warm-up 1 (full) + 1 (finish), the 2 full requests 2 × 3, the finish 3; exploring runs none.
    assert len(stage_b_steps) == 2 + 2 * 3 + 3
    assert result["images"] == 4 and result["finish"]["seeds"] == [0, 2]  # one from each explored request
    assert len(result["explore"]["requests_s"]) == len(result["full"]["requests_s"]) == 2
    seconds = result["seconds"]
    assert seconds["c_explore_then_finish"] == pytest.approx(seconds["a_explore"] + seconds["finish"])
    assert result["ratios"]["a/b"] == pytest.approx(seconds["a_explore"] / seconds["b_full"])
    printed = capsys.readouterr().out
    assert re.search(r"\(a\)/\(b\) = \d+\.\d+ +\(c\)/\(b\) = \d+\.\d+", printed)
    assert "4 images as 2 requests of 2" in printed
