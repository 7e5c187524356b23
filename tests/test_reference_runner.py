"""The conformance runner passes on ../shared/reference and fails on a doctored copy of it."""
import os

from safetensors.torch import load_file, save_file

from tests import reference_runner
from tests.conftest import REFERENCE


def test_every_reference_case_passes(capsys):
    assert reference_runner.main([str(REFERENCE)]) == 0
    lines = capsys.readouterr().out.splitlines()
    for case in ("pipeline/case0", "pipeline/case1", "extras/img2img/case0", "extras/image_variation/case0",
                 "extras/controlnet/case0", "extras/controlnet/case1", "extras/controlnet/case2"):
        assert any(line.startswith(f"ok   {case}.safetensors") for line in lines), case
    for case in ("0.out (official layout)", "1.out (official layout)", "0.out (kohya layout)", "1.out (kohya layout)",
                 "request (trained token)"):
        assert any(line.startswith(f"ok   extras/lora/lora.io.safetensors {case}:") for line in lines), case
    assert lines[-1] == "13 passed, 0 failed"


def test_a_case_past_the_tolerance_fails(tmp_path, capsys):
    """The same reference but pipeline/case0's latent_c off by 1e-3: the runner says FAIL and exits 1."""
    for entry in REFERENCE.iterdir():
        if entry.name != "pipeline":
            os.symlink(entry, tmp_path / entry.name)
    (tmp_path / "pipeline").mkdir()
    for entry in (REFERENCE / "pipeline").iterdir():
        if entry.name != "case0.safetensors":
            os.symlink(entry, tmp_path / "pipeline" / entry.name)
    tensors = load_file(REFERENCE / "pipeline" / "case0.safetensors")
    save_file({**tensors, "latent_c": tensors["latent_c"] * 1.001}, str(tmp_path / "pipeline" / "case0.safetensors"))
    assert reference_runner.main([str(tmp_path), "--weights-root", str(REFERENCE)]) == 1
    out = capsys.readouterr().out
    assert "FAIL pipeline/case0.safetensors: worst relative error 1.0e-03" in out and "12 passed, 1 failed" in out
