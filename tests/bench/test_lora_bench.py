"""bench/lora.py runs end to end at a tiny width, and its on-the-fly LoRA computes what merging does."""
import json

from bench import lora


def test_lora_bench_times_the_three_ways_and_they_agree(tmp_path, capsys):
    out = tmp_path / "lora.json"
    assert lora.main(["--width", "64", "--blocks", "1", "1", "--size", "256", "--repeats", "1", "--threads", "1",
                      "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["runs"]) == {"base", "merged", "on the fly"} and result["attention_blocks"] == 4
    assert result["difference"] <= 1e-5  # merged and on the fly: the same function
    assert result["kept_bytes"] == 4 * 4 * 64 * 64 * 4  # W₀ of each block's in_proj (3C×C) and out_proj (C×C)
    assert "merged vs on the fly" in capsys.readouterr().out
