"""Downloads through the real huggingface_hub code against a fake hub on 127.0.0.1."""
from __future__ import annotations

import errno
import hashlib
import sys

import huggingface_hub.constants as hf_constants
import pytest
from safetensors.torch import load_file, save

import cascade_core as cc
from cascade_core import hub
from cascade_core.units import format_bytes
from tests.conftest import TINY_CASCADE
from tests.fake_hub import COMMIT, NETWORKS, REPO, FakeHub


def fetch(**kwargs):
    lines = []
    folder = hub.fetch(REPO, variant=kwargs.pop("variant", "lite"), progress=lines.append, **kwargs)
    return folder, lines


def test_first_download_takes_only_what_the_variant_needs(fake_hub):
    folder, lines = fetch(variant="lite")
    assert sorted(fake_hub.downloads()) == sorted([
        "stage_c_lite_bf16.safetensors", "stage_b_lite_bf16.safetensors", "stage_a.safetensors",
        "previewer.safetensors", "text_encoder/config.json", "text_encoder/model.safetensors",
        *[f"tokenizer/{p.name}" for p in (TINY_CASCADE / "tokenizer").iterdir()]])
    assert folder == hf_constants.HF_HUB_CACHE / __import__("pathlib").Path(
        f"models--{REPO.replace('/', '--')}/snapshots/{COMMIT}")
    assert (folder / "stage_c_lite_bf16.safetensors").read_bytes() == fake_hub.files["stage_c_lite_bf16.safetensors"]
    assert lines[0].startswith(f"{REPO} at {COMMIT[:7]}: 10 files")
    assert any("downloading stage_c_lite_bf16.safetensors" in line for line in lines)


def test_fp32_weights_are_fetched_when_asked(fake_hub):
    fetch(variant="full", weights="fp32")
    assert "stage_c.safetensors" in fake_hub.downloads() and "stage_c_bf16.safetensors" not in fake_hub.downloads()


def test_cached_files_are_not_fetched_twice(fake_hub):
    first, _ = fetch()
    fake_hub.log.clear()
    second, lines = fetch()
    assert second == first and fake_hub.downloads() == []
    assert sum("in the cache" in line for line in lines) == 10


def test_load_from_the_hub_runs_end_to_end(fake_hub):
    lines = []
    model = cc.load(REPO, device="cpu", dtype="float32", variant="full", progress=lines.append)
    assert model.name == REPO and model.variant == "tiny"
    assert [item.stage for item in model.load_report] == NETWORKS + ["text_encoder"]
    assert any(line.startswith("loaded stage_c (tiny) from stage_c_bf16.safetensors") for line in lines)
    request = cc.GenerationRequest("a fox", width=256, height=256, seed=1, prior_steps=2, decoder_steps=2)
    finished = [e for e in cc.generate(model, request) if isinstance(e, cc.Finished)]
    assert finished[0].images[0].size == (256, 256)


def resumed_at(server: FakeHub, name: str) -> int:
    """The offset of the one ranged GET of `name` in the server's log."""
    ranges = [r for method, path, r in server.log if method == "GET" and path.endswith(f"/{name}") and r]
    assert len(ranges) == 1, ranges
    return int(ranges[0].removeprefix("bytes=").rstrip("-"))


def test_a_download_broken_mid_file_resumes_in_the_same_call(fake_hub):
    name = "stage_c_lite_bf16.safetensors"
    fake_hub.drop_once[name] = 4096
    folder, _ = fetch()
    assert hashlib.sha256((folder / name).read_bytes()).digest() == hashlib.sha256(fake_hub.files[name]).digest()
    assert 0 < resumed_at(fake_hub, name) <= 4096  # the retry asked only for the rest


def test_an_interrupted_download_resumes_on_the_next_run(fake_hub):
    name = "stage_b_lite_bf16.safetensors"
    fake_hub.break_after[name] = 4096
    with pytest.raises(cc.ModelLoadError, match=f"downloading {name} from {REPO} stopped.*Run the same command again: it resumes"):
        fetch()
    fake_hub.break_after.clear()
    fake_hub.log.clear()
    folder, lines = fetch()
    offset = resumed_at(fake_hub, name)
    assert 0 < offset <= 4096 and f"resuming {name} at {format_bytes(offset)}" in lines
    assert (folder / name).read_bytes() == fake_hub.files[name]
    assert "stage_c_lite_bf16.safetensors" not in fake_hub.downloads()  # it had arrived: not fetched again


def test_offline_uses_the_cache(fake_hub, monkeypatch):
    fetch()
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    fake_hub.log.clear()
    folder, lines = fetch()
    assert fake_hub.log == [] and (folder / "stage_a.safetensors").is_file()
    assert lines == [f"offline mode is on (HF_HUB_OFFLINE=1); using the cached copy of {REPO} ({COMMIT[:7]})"]


def test_offline_without_a_cache_says_how_to_get_the_files(fake_hub, monkeypatch):
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(cc.ModelLoadError) as error:
        fetch(variant="full")
    message = str(error.value)
    assert message.startswith("offline mode is on (HF_HUB_OFFLINE=1), and the cache")
    assert "lacks stage_c_bf16.safetensors" in message
    assert f"python -m cascade_core download --model {REPO} --variant full" in message


def test_unreachable_hub_falls_back_to_the_cache_or_says_so(fake_hub, monkeypatch):
    fetch()
    fake_hub.stop()
    folder, lines = fetch()
    assert "cannot be reached" in lines[0] and (folder / "previewer.safetensors").is_file()
    with pytest.raises(cc.ModelLoadError, match="cannot be reached.*lacks stage_c_bf16.safetensors"):
        fetch(variant="full")


def fail_with(monkeypatch, target, name, error):
    """`target.name` raises `error` when called."""
    def fail(*args, **kwargs):
        raise error
    monkeypatch.setattr(target, name, fail)


def test_a_timeout_asking_the_hub_falls_back_to_the_cache(fake_hub, monkeypatch):
    fetch()
    http = sys.modules[hub._HTTPError.__module__]  # the HTTP library huggingface_hub uses (httpx or httpx2)
    fail_with(monkeypatch, hub.HfApi, "model_info", http.ReadTimeout("The read operation timed out"))
    folder, lines = fetch()
    assert lines[0].startswith("the Hugging Face hub cannot be reached (ReadTimeout: The read operation timed out)")
    assert (folder / "stage_a.safetensors").is_file()


@pytest.mark.parametrize("target, name", [(hub.HfApi, "model_info"), (hub, "get_hf_file_metadata"),
                                          (hub, "http_get")], ids=["model info", "metadata", "download"])
def test_a_programming_error_is_raised_as_it_is(fake_hub, monkeypatch, target, name):
    bug = TypeError("unexpected keyword argument 'tqdm_class'")
    fail_with(monkeypatch, target, name, bug)
    with pytest.raises(TypeError) as raised:
        fetch()
    assert raised.value is bug  # not turned into "cannot be reached" or "run again"


def test_a_full_disk_during_a_download_says_free_space_and_run_again(fake_hub, monkeypatch):
    fail_with(monkeypatch, hub, "http_get", OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(cc.ModelLoadError) as error:
        fetch()
    message = str(error.value)
    assert "stopped (OSError: [Errno 28] No space left on device)" in message
    assert "Run the same command again: it resumes" in message and "free space in the Hugging Face cache" in message


def test_gated_repository_says_accept_the_licence_and_log_in(fake_hub):
    fake_hub.gated = True
    with pytest.raises(cc.ModelLoadError) as error:
        fetch()
    message = str(error.value)
    assert f"{REPO} is gated: accept its licence on https://huggingface.co/{REPO}" in message
    assert "hf auth login" in message and "HF_TOKEN" in message


def test_unauthorised_without_a_gate_says_check_name_or_token(fake_hub):
    fake_hub.private = True
    with pytest.raises(cc.ModelLoadError, match="not found, or it is private or gated and no valid token"):
        fetch()


def test_a_repository_without_the_released_files_is_named(fake_hub):
    del fake_hub.files["previewer.safetensors"]
    with pytest.raises(cc.ModelLoadError, match="has no previewer.safetensors: it is not a Stable Cascade repository"):
        fetch()


def test_a_truncated_file_is_named_and_force_fetches_it_again(fake_hub):
    folder, _ = fetch()
    blob = (folder / "stage_a.safetensors").resolve()
    blob.write_bytes(blob.read_bytes()[:5000])  # a disk or copy fault after the download
    with pytest.raises(cc.ModelLoadError) as error:
        cc.load(REPO, device="cpu", dtype="float32", variant="lite")
    message = str(error.value)
    assert "stage_a.safetensors is not a readable safetensors file" in message
    assert f"python -m cascade_core download --model {REPO} --variant lite --force" in message
    fetch(force=True)
    assert blob.read_bytes() == fake_hub.files["stage_a.safetensors"]
    cc.load(REPO, device="cpu", dtype="float32", variant="lite")


def test_wrong_shape_file_is_named(fake_hub, tmp_path):
    state = load_file(TINY_CASCADE / "stage_b.safetensors")
    name = next(k for k, v in state.items() if v.ndim == 4)
    state[name] = state[name][:, :1].contiguous()
    fake_hub.files["stage_b_lite_bf16.safetensors"] = save(state)
    with pytest.raises(cc.ModelLoadError, match=rf"stage_b_lite_bf16.safetensors does not hold a stage_b network.*{name}"):
        cc.load(REPO, device="cpu", dtype="float32", variant="lite")


def test_text_encoder_bf16_file_is_preferred_where_present():
    bf16, fp32 = "text_encoder/model.bf16.safetensors", "text_encoder/model.safetensors"
    available = {"stage_c_bf16.safetensors", "stage_b_bf16.safetensors", "stage_a.safetensors",
                 "previewer.safetensors", "text_encoder/config.json", "tokenizer/vocab.json"}
    fp32_only = hub.wanted_files("full", "bf16", available | {fp32})
    both = hub.wanted_files("full", "bf16", available | {bf16, fp32})
    assert fp32 in fp32_only and bf16 in both
    assert fp32 not in both


@pytest.mark.parametrize("source, expected", [
    ("stabilityai/stable-cascade", True), ("me/my.model-v2", True), ("./folder", False),
    ("/abs/path", False), ("a/b/c", False), ("name", False)])
def test_repo_ids_are_told_from_paths(source, expected):
    assert hub.is_repo_id(source) is expected


def test_progress_bar_reports_resume_and_completion():
    lines = []
    bar = hub._Bar(lines.append, "f.safetensors", total=2_000_000, initial=500_000)
    bar.update(1_500_000)
    assert lines == ["resuming f.safetensors at 500.0 kB", "f.safetensors: 2.0 MB of 2.0 MB (100%)"]
