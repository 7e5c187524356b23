"""`python -m cascade_core generate` reproduces the reference cases and writes what it says."""
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from cascade_core.cli import main
from cascade_core.images import read_settings
from cascade_core.picture import Picture
from tests.conftest import REFERENCE, ROOT, TINY_CASCADE, relative_error
from tests.reference_runner import model_folder


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


# Pictures: every mode on the tiny model with every extra network (tests/reference_runner.model_folder).

def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@pytest.fixture(scope="module")
def extras_model(tmp_path_factory) -> Path:
    return model_folder(REFERENCE, REFERENCE, tmp_path_factory.mktemp("extras"))


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> dict[str, Path]:
    """photo 320×256 (a gradient with a dark square: edges for canny), its mask (a white square), small 160×128,
    the reference img2img case0's picture, and bad files."""
    folder = tmp_path_factory.mktemp("pictures")
    y, x = np.mgrid[0:256, 0:320]
    photo = np.stack([x * 255 // 319, y * 255 // 255, np.full_like(x, 128)], axis=-1).astype(np.uint8)
    photo[96:160, 128:192] = 20
    mask = np.zeros((256, 320, 3), np.uint8)
    mask[80:176, 112:208] = 255
    images = {"photo": photo, "mask": mask, "small": photo[::2, ::2].copy(),
              "wrong_mask": mask[:200], "case0": load_file(REFERENCE / "extras" / "img2img" / "case0.safetensors")[
                  "image_u8"].numpy()}
    paths = {}
    for name, pixels in images.items():
        paths[name] = folder / f"{name}.png"
        Image.fromarray(pixels).save(paths[name])
    paths["text"] = folder / "notes.png"
    paths["text"].write_text("not a picture")
    data = paths["photo"].read_bytes()
    paths["truncated"] = folder / "truncated.png"
    paths["truncated"].write_bytes(data[:len(data) // 2])
    paths["bomb"] = folder / "bomb.png"  # a header declaring 50000×50000 pixels, and hardly any data
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0))  # 8-bit RGB
    paths["bomb"].write_bytes(b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    return paths


def run_main(capsys, *args) -> tuple[int, str, str]:
    """The CLI in this process (faster than a subprocess; an uncaught exception fails the test)."""
    code = main(["generate", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


FAST = ("--device", "cpu", "--dtype", "float32", "--prompt", "a small house", "--seed", "5", "--width", "256",
        "--height", "256", "--prior-steps", "2", "--decoder-steps", "1")
# mode → (flags with picture names, the mode recorded, strength, picture fields, output size)
MODES = {
    "remix": (["--init-image", "photo", "--strength", "0.6", "--num-images", "2"], "remix", 0.6,
              {"init_image": "photo"}, (256, 256)),
    "image prompt": (["--image-prompt", "photo"], "image prompt", 1.0, {"image_prompt": "photo"}, (256, 256)),
    "canny": (["--control", "canny", "--control-image", "photo", "--control-scale", "0.5"], "edges", 1.0,
              {"control_image": "photo"}, (256, 256)),
    "inpaint": (["--control", "inpaint", "--control-image", "photo", "--mask", "mask"], "repaint", 1.0,
                {"control_image": "photo", "mask": "mask"}, (320, 256)),
    "outpaint": (["--control", "outpaint", "--control-image", "photo", "--margin", "32", "--strength", "0.9"],
                 "extend", 0.9, {"control_image": "photo"}, (304, 256)),
    "upscale": (["--control", "upscale", "--control-image", "small"], "upscale", 1.0, {"control_image": "small"},
                (320, 256)),
}


@pytest.mark.parametrize("name", MODES)
def test_each_mode_writes_its_images_and_records_its_inputs(name, extras_model, pictures, tmp_path, capsys):
    flags, mode, strength, fields, size = MODES[name]
    flags = [str(pictures[f]) if f in pictures else f for f in flags]
    out = tmp_path / "out" / "house.png"
    code, stdout, stderr = run_main(capsys, "--model", str(extras_model), *FAST, *flags, "--output", str(out))
    assert code == 0, stderr
    count = 2 if "--num-images" in flags else 1
    paths = [out] if count == 1 else [out.with_name(f"house_{k}.png") for k in range(count)]
    for k, path in enumerate(paths):
        assert Image.open(path).size == size
        settings = read_settings(path)
        assert (settings["mode"], settings["strength"], settings["seed"]) == (mode, strength, 5 + k)
        for field, picture in fields.items():
            assert settings[field] == f"sha256:{Picture.open(pictures[picture]).digest}", field
        assert f"wrote {path} (seed {5 + k})" in stdout
    raw = out.with_name("house.raw.png")
    if name not in ("inpaint", "outpaint"):
        assert not raw.exists()
        return
    assert read_settings(raw)["unblended"] is True and Image.open(raw).size == size
    final, unblended = np.array(Image.open(out)), np.array(Image.open(raw))
    if name == "inpaint":  # the picture is kept far from the mask, where the unblended image differs from it
        photo = np.array(Image.open(pictures["photo"]))
        corner = np.s_[:40, :40]
        assert np.array_equal(final[corner], photo[corner]) and not np.array_equal(unblended[corner], photo[corner])
    else:  # the new band is the unblended image's
        assert np.array_equal(final[:4], unblended[:4])


def test_stage_c_only_reproduces_the_reference_remix(extras_model, pictures, tmp_path, capsys):
    out, tensors = tmp_path / "rodent.png", tmp_path / "rodent.safetensors"
    code, stdout, stderr = run_main(
        capsys, "--model", str(extras_model), "--device", "cpu", "--dtype", "float32",
        "--prompt", "a person riding a rodent", "--init-image", str(pictures["case0"]), "--strength", "0.8",
        "--image-size", "192", "--prior-steps", "20", "--prior-guidance", "4", "--seed", "42", "--stage-c-only",
        "--output", str(out), "--save-tensors", str(tensors))
    assert code == 0, stderr
    ours = load_file(tensors)
    assert set(ours) == {"latent_c", "preview"}
    ref = load_file(REFERENCE / "extras" / "img2img" / "case0.safetensors")
    assert relative_error(ours["latent_c"], ref["latent_c"]) <= 1e-4
    assert "Stage B" not in stderr and f"wrote {out} (preview, seed 42)" in stdout
    preview = np.array(Image.open(out)).transpose(2, 0, 1)[None]  # the previewer's image of latent_c
    assert np.array_equal(preview, (ours["preview"].clamp(0, 1) * 255).round().to(torch.uint8).numpy())
    settings = read_settings(out)
    assert (settings["mode"], settings["strength"], settings["stage_c_only"]) == ("remix", 0.8, True)
    assert settings["init_image"] == f"sha256:{Picture.open(pictures['case0']).digest}"


BAD_INPUT = {  # flags with picture names → what the one error line says
    "missing file": (["--init-image", "nowhere"], "error: init_image: cannot read '", "No such file"),
    "not a picture": (["--init-image", "text"], "error: init_image: this file is not a picture",
                      "use PNG, JPEG or WebP"),
    "truncated": (["--image-prompt", "truncated"], "error: image_prompt: the picture is damaged or cut short",
                  "save it again"),
    "bomb": (["--control", "canny", "--control-image", "bomb"], "error: control_image: the picture declares too many "
             "pixels", "the limit is 16,777,216 pixels"),
    "mask size": (["--control", "inpaint", "--control-image", "photo", "--mask", "wrong_mask"],
                  "error: mask: the mask is 320×200 and the picture 320×256", "paint the mask on the picture itself"),
    "strength 0": (["--init-image", "photo", "--strength", "0"], "error: strength: 0.0 is outside (0, 1]", ""),
    "strength 1.5": (["--init-image", "photo", "--strength", "1.5"], "error: strength: 1.5 is outside (0, 1]", ""),
    "control scale -1": (["--control", "canny", "--control-image", "photo", "--control-scale", "-1"],
                         "error: control_scale: -1.0 is outside [0, 3]", ""),
    "mask without inpaint": (["--mask", "mask"], "error: mask: --mask is only for --control inpaint", ""),
    "inpaint without mask": (["--control", "inpaint", "--control-image", "photo"],
                             "error: mask: --control inpaint needs --mask PATH", ""),
    "remix and control": (["--init-image", "photo", "--control", "canny", "--control-image", "photo"],
                          "error: init_image: --init-image is a remix, another mode than --control", "give one"),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_pictures_and_settings_fail_fast_with_one_line(case, pictures, tmp_path, capsys):
    """Checked before the model loads (here --model does not exist: its error would come otherwise)."""
    flags, start, fix = BAD_INPUT[case]
    flags = [str(pictures[f]) if f in pictures else str(tmp_path / f) if f == "nowhere" else f for f in flags]
    out = tmp_path / "out" / "x.png"
    code, stdout, stderr = run_main(capsys, "--model", str(tmp_path / "no-model"), *FAST, *flags,
                                    "--output", str(out), "--save-tensors", str(tmp_path / "out" / "x.safetensors"))
    assert code == 2 and stdout == ""
    assert len(stderr.splitlines()) == 1 and stderr.startswith(start) and fix in stderr, stderr
    assert not (tmp_path / "out").exists()


def test_a_bad_picture_in_a_subprocess_is_one_line_without_traceback(pictures, tmp_path):
    result = run_cli("--model", str(tmp_path / "no-model"), "--prompt", "x", "--init-image", str(pictures["bomb"]),
                     "--output", str(tmp_path / "x.png"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error: init_image: the picture declares too many pixels")
    assert not (tmp_path / "x.png").exists()
