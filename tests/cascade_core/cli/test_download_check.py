"""`download` and `check` from the command line, against the fake hub through the environment."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from safetensors.torch import load_file, save_file

from tests.conftest import ROOT, TINY_CASCADE
from tests.fake_hub import COMMIT, REPO, FakeHub, released_files


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "cascade_core", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


@pytest.fixture
def hub_env(tmp_path):
    server = FakeHub(REPO, released_files(TINY_CASCADE)).start()
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


def test_check_of_an_uncached_repository_says_how_to_fetch_it(tmp_path):
    result = run_cli("check", "nobody/nothing", env={"HF_HOME": str(tmp_path)})
    assert result.returncode == 1 and "python -m cascade_core download --model nobody/nothing" in result.stdout
