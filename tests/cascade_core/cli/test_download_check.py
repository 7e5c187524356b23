"""`download` and `check` from the command line, against the fake hub through the environment."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from safetensors.torch import load_file, save_file

from cascade_core.released import EXTRA_FILES, PRIOR_REPO
from tests.conftest import REFERENCE, ROOT, TINY_CASCADE
from tests.fake_hub import COMMIT, REPO, FakeHub, extra_repos, released_files
from tests.reference_runner import model_folder


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "cascade_core", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


@pytest.fixture
def hub_env(tmp_path):
    server = FakeHub(REPO, released_files(TINY_CASCADE), others=extra_repos(REFERENCE)).start()
    yield server, {"HF_ENDPOINT": server.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0"}
    server.stop()


def test_download_then_check_the_cached_copy(hub_env):
    server, env = hub_env
    result = run_cli("download", "--model", REPO, "--variant", "lite", env=env)
    assert result.returncode == 0, result.stderr
    snapshot = f"hf/hub/models--tester--tiny-cascade/snapshots/{COMMIT}"
    assert result.stdout.strip().split(" (")[0].endswith(snapshot)
    assert "downloading stage_c_lite_bf16.safetensors" in result.stderr
    assert "stage_c_bf16.safetensors" not in server.downloads()
    again = run_cli("download", "--model", REPO, "--variant", "lite", env={**env, "HF_HUB_OFFLINE": "1"})
    assert again.returncode == 0 and "using the cached copy" in again.stderr
    check = run_cli("check", REPO, env=env)
    assert check.returncode == 0, check.stdout
    assert "stage_c_lite_bf16.safetensors" in check.stdout and "6 of 6 checks passed" in check.stdout
    absent = [line for line in check.stdout.splitlines() if line.endswith("absent: fetched when a mode needs it")]
    assert len(absent) == len(EXTRA_FILES)  # optional: shown, not counted as checks


def test_download_extras_fetches_every_extra_network(hub_env):
    server, env = hub_env
    result = run_cli("download", "--model", REPO, "--variant", "lite", "--extras", env=env)
    assert result.returncode == 0, result.stderr
    assert "downloading stage_c_lite_bf16.safetensors" in result.stderr  # the model too
    main_repo = EXTRA_FILES["effnet_encoder"][0]
    assert sorted(server.downloads(main_repo)) == sorted(p for repo, p in EXTRA_FILES.values() if repo == main_repo)
    assert server.downloads(PRIOR_REPO) == ["image_encoder/config.json", "image_encoder/model.safetensors"]
    for name, (repo, path) in EXTRA_FILES.items():
        snapshot = f"hf/hub/models--{repo.replace('/', '--')}/snapshots/{COMMIT}/{path}"
        assert any(snapshot in line and line.endswith(f": {name}") for line in result.stdout.splitlines()), name
    # The command the engine's offline error names for the image encoder: that repository holds no model.
    again = run_cli("download", "--model", PRIOR_REPO, "--extras", env={**env, "HF_HUB_OFFLINE": "1"})
    assert again.returncode == 0, again.stderr
    assert f"{PRIOR_REPO} holds no model: fetching the extra networks only" in again.stderr
    assert again.stderr.count("using the cached copy") == 2 and len(again.stdout.splitlines()) == len(EXTRA_FILES)


def test_download_error_is_one_line_without_traceback(hub_env):
    server, env = hub_env
    server.gated = True
    result = run_cli("download", "--model", REPO, env=env)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith(f"error: {REPO} is gated") and "Traceback" not in result.stderr


def test_check_names_each_bad_file(tmp_path):
    folder = tmp_path / "model"
    for name, data in released_files(TINY_CASCADE).items():
        if not name.startswith(("stage_c", "stage_b_bf16")):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
    (folder / "stage_a.safetensors").write_bytes(b"not a safetensors file")
    state = load_file(folder / "previewer.safetensors")
    state.pop(next(iter(state)))
    save_file(state, str(folder / "previewer.safetensors"))
    result = run_cli("check", str(folder))
    assert result.returncode == 1
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "FAIL: missing" in lines["stage_c_bf16.safetensors"]
    assert "ok: tiny" in lines["stage_b_lite_bf16.safetensors"]
    assert "FAIL:" in lines["stage_a.safetensors"] and "not a readable safetensors file" in lines["stage_a.safetensors"]
    assert "FAIL:" in lines["previewer.safetensors"] and "1 missing" in lines["previewer.safetensors"]
    assert "4 of 7 checks passed" in result.stdout


def test_check_reports_the_extra_networks_a_folder_holds(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(TINY_CASCADE, folder, copy_function=shutil.copyfile)
    folder.chmod(0o755)
    (folder / "controlnet").mkdir()
    shutil.copyfile(REFERENCE / "extras" / "effnet" / "effnet_encoder.safetensors",
                    folder / "effnet_encoder.safetensors")
    shutil.copyfile(REFERENCE / "extras" / "controlnet" / "controlnet_canny_tiny.safetensors",
                    folder / "controlnet" / "canny.safetensors")  # not the released layout
    shutil.copytree(REFERENCE / "extras" / "image_variation" / "clip_vision", folder / "image_encoder",
                    copy_function=shutil.copyfile)
    result = run_cli("check", str(folder))
    assert result.returncode == 1
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "ok: 20.4M parameters, 784 tensors" in lines["effnet_encoder.safetensors"]
    assert "FAIL: not a controlnet_canny network: " in lines["controlnet/canny.safetensors"]
    assert "ok: 0.1M parameters, 40 tensors" in lines["image_encoder/"]
    for absent in ("controlnet/inpainting.safetensors", "controlnet/super_resolution.safetensors"):
        assert lines[absent].endswith("absent: fetched when a mode needs it")
    assert "8 of 9 checks passed" in result.stdout and "--extras" in result.stdout


def test_check_follows_the_extras_of_cascade_json(tmp_path):
    result = run_cli("check", str(model_folder(REFERENCE, REFERENCE, tmp_path)))
    assert result.returncode == 0, result.stdout
    parts = [line.split()[1] for line in result.stdout.splitlines() if " ok: " in line]
    assert parts[-len(EXTRA_FILES):] == list(EXTRA_FILES) and "11 of 11 checks passed" in result.stdout


def test_check_of_an_uncached_repository_says_how_to_fetch_it(tmp_path):
    result = run_cli("check", "nobody/nothing", env={"HF_HOME": str(tmp_path)})
    assert result.returncode == 1 and "python -m cascade_core download --model nobody/nothing" in result.stdout
