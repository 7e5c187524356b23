"""`generate --lora FILE[:STRENGTH]` (repeatable) and `--lora-dir`: the LoRAs reach the request, the image
and its PNG settings; a name that is nowhere is refused before the model loads."""
import shutil

import pytest
import torch
from safetensors.torch import load_file

from cascade_core.cli import main
from cascade_core.cli.generate import lora_flag
from cascade_core.images import read_settings
from tests.conftest import REFERENCE, TINY_CASCADE

LORA = REFERENCE / "extras" / "lora"
SMALL = ["--model", str(TINY_CASCADE), "--device", "cpu", "--dtype", "float32", "--prompt", "a dog", "--seed", "7",
         "--width", "256", "--height", "256", "--prior-steps", "2", "--stage-c-only"]


@pytest.mark.parametrize("text, parsed", [
    ("style.safetensors", ("style.safetensors", 1.0)),
    ("style:0.5", ("style", 0.5)),
    ("owner/repo/x.safetensors:-1", ("owner/repo/x.safetensors", -1.0)),
    (r"C:\loras\x.safetensors", (r"C:\loras\x.safetensors", 1.0)),
    ("x:nan", ("x", float("nan"))),  # a number, refused by the request's check
])
def test_the_flag_is_a_name_and_an_optional_strength(text, parsed):
    name, strength = lora_flag(text)
    assert name == parsed[0] and (strength == parsed[1] or strength != strength and parsed[1] != parsed[1])


def test_loras_from_the_folder_go_into_the_image_and_its_settings(tmp_path, capsys):
    folder = tmp_path / "loras"
    folder.mkdir()
    shutil.copy(LORA / "lora_tiny_kohya.safetensors", folder)

    def run(name: str, *flags: str) -> dict:
        code = main(["generate", *SMALL, "--lora-dir", str(folder), *flags, "--output", str(tmp_path / f"{name}.png"),
                     "--save-tensors", str(tmp_path / f"{name}.safetensors")])
        assert code == 0, capsys.readouterr().err
        return load_file(tmp_path / f"{name}.safetensors")

    plain = run("plain")
    styled = run("styled", "--lora", "lora_tiny_kohya:0.5", "--lora", "lora_tiny_kohya.safetensors:0")
    assert read_settings(tmp_path / "styled.png")["loras"] == [["lora_tiny_kohya", 0.5],
                                                              ["lora_tiny_kohya.safetensors", 0.0]]
    assert read_settings(tmp_path / "plain.png")["loras"] == []
    assert not torch.equal(plain["latent_c"], styled["latent_c"])


def test_an_unknown_lora_is_refused_before_loading(tmp_path, capsys):
    code = main(["generate", *SMALL, "--model", str(tmp_path / "no-model"), "--lora-dir", str(tmp_path),
                 "--lora", "nope:2", "--output", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: loras: no LoRA 'nope': not a file, nor in the LoRA folder")
    code = main(["generate", *SMALL, "--lora", "nope:9", "--output", str(tmp_path / "x.png")])
    assert code == 2 and "the strength of 'nope' is 9.0, outside ±4" in capsys.readouterr().err
