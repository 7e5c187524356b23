"""The serving benchmarks run end to end on the tiny model (numbers only; no timing assertions):
bench/batching.py, bench/floor.py and the summary bench/gpu.sh prints."""
import json

from bench import batching, floor, gpu_summary


def test_batching_bench_compares_one_at_a_time_with_batched(tmp_path, capsys):
    out = tmp_path / "batching.json"
    batching.main(["--variant", "tiny", "--requests", "3", "--prior-steps", "2", "--decoder-steps", "1",
                   "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["one_at_a_time"]["calls"] == [["stage_c", 1]] * 2 + [["stage_b", 1]] + [["stage_c", 1]] * 2 + [
        ["stage_b", 1]] + [["stage_c", 1]] * 2 + [["stage_b", 1]]
    assert result["batched"]["calls"] == [["stage_c", 3]] * 2 + [["stage_b", 3]]
    assert len(result["batched"]["latency_s"]) == 3 and result["difference"]["image_max_abs"] <= 1e-4
    assert "throughput" in capsys.readouterr().out


def test_floor_sections_and_the_gpu_summary(tmp_path, capsys):
    floor.main(["--device", "cpu", "--variant", "tiny", "--size", "256", "--prior-steps", "2", "--decoder-steps", "1",
                "--sections", "eager,graphs,syncs,sdpa,nonsense", "--json", str(tmp_path / "floor.json")])
    sections = json.loads((tmp_path / "floor.json").read_text())["sections"]
    assert sections["eager"]["b4"]["total_s"] > 0 and "every_1" in sections["eager"]["first_preview"]
    assert sections["graphs"]["max_abs_difference_to_eager"] == {"latent_c": 0.0, "latent_b": 0.0}
    assert sections["syncs"]["counts"] == {}  # no CUDA calls on the CPU
    assert {row["fastest"] for row in sections["sdpa"]["shapes"]} <= {"flash", "efficient", "cudnn", "math"}
    assert "KeyError" in sections["nonsense"]["error"]  # a failed section is recorded; the others ran
    (tmp_path / "offload.json").write_text(json.dumps({"rows": [
        {"variant": "full", "offload": "model", "peak_allocated_bytes": 7.5e9, "peak_reserved_bytes": 8e9,
         "seconds": 3.0, "steps": [20, 10]}]}))
    capsys.readouterr()
    gpu_summary.main([str(tmp_path)])
    summary = capsys.readouterr().out
    assert "TARGET one image ≤ 0.9 s" in summary and "TARGET ≤ 8.0 GB" in summary and "parity.json: missing" in summary
