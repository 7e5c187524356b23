"""`python -m cascade_core generate` reproduces the reference case and writes what it says."""
import subprocess
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from cascade_core.images import read_settings
from tests.conftest import REFERENCE, ROOT, TINY_CASCADE, relative_error


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "cascade_core", "generate", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_generate_reproduces_reference_case(tmp_path, pipeline_cases):
    case = pipeline_cases[0]
    out, tensors = tmp_path / "fox.png", tmp_path / "fox.safetensors"
    result = run_cli("--model", str(TINY_CASCADE), "--prompt", case["prompt"], "--seed", str(case["seed"]),
                     "--width", str(case["width"]), "--height", str(case["height"]),
                     "--prior-steps", str(case["prior_steps"]), "--prior-guidance", str(case["prior_guidance"]),
                     "--decoder-steps", str(case["decoder_steps"]), "--decoder-guidance", str(case["decoder_guidance"]),
                     "--device", "cpu", "--dtype", "float32", "--output", str(out), "--save-tensors", str(tensors))
    assert result.returncode == 0, result.stderr
    assert "Stage C" in result.stderr and "Stage B" in result.stderr
    ref, ours = load_file(REFERENCE / "pipeline" / case["file"]), load_file(tensors)
    assert set(ours) == {"latent_c", "preview", "latent_b", "image"}
    for name in ours:
        assert ours[name].dtype == torch.float32
        assert relative_error(ours[name], ref[name]) <= 1e-4, name
    pixels = np.array(Image.open(out)).transpose(2, 0, 1)[None]
    assert np.array_equal(pixels, (ours["image"] * 255).round().to(torch.uint8).numpy())
    settings = read_settings(out)
    assert (settings["seed"], settings["prompt"], settings["width"]) == (42, case["prompt"], 384)


def test_several_images_and_a_printed_random_seed(tmp_path):
    result = run_cli("--model", str(TINY_CASCADE), "--prompt", "a cat", "--width", "256", "--height", "256",
                     "--prior-steps", "2", "--decoder-steps", "1", "--num-images", "2", "--output", str(tmp_path / "cat.png"))
    assert result.returncode == 0, result.stderr
    seed = int(next(line for line in result.stderr.splitlines() if line.startswith("seed ")).split()[1])
    assert [read_settings(tmp_path / f"cat_{k}.png")["seed"] for k in (0, 1)] == [seed, seed + 1]


def test_bad_input_is_a_clear_error_without_traceback(tmp_path):
    result = run_cli("--model", str(TINY_CASCADE), "--prompt", "x", "--width", "100", "--output", str(tmp_path / "x.png"))
    assert result.returncode == 2
    assert result.stderr.strip() == "error: width: 100 px is outside 256–2048 px"
    result = run_cli("--model", str(tmp_path / "missing"), "--prompt", "x", "--output", str(tmp_path / "x.png"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
