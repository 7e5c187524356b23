"""Shared test fixtures: the reference data beside the repository and the tiny model."""
from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub.constants as hf_constants
import pytest
import torch

from tests.fake_hub import REPO, FakeHub, released_files

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"
TINY_CASCADE = REFERENCE / "pipeline" / "tiny-cascade"


def pytest_addoption(parser):
    parser.addoption("--screenshots", metavar="DIR", default=None,
                     help="folder for the browser tests' screenshots (default: a temporary folder); "
                          "docs/refresh_screenshots.py passes one to refresh the README's")


def relative_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """‖ours − ref‖ / ‖ref‖, the reference README's measure."""
    assert ours.shape == ref.shape, f"shape {tuple(ours.shape)} != reference {tuple(ref.shape)}"
    return ((ours.double() - ref.double()).norm() / ref.double().norm()).item()


@pytest.fixture(autouse=True)
def _torch_threads():
    """Each test starts with the process's thread count (benchmark mains set their own)."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model():
    import cascade_core as cc
    return cc.load(TINY_CASCADE, device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def pipeline_cases() -> list[dict]:
    return json.loads((REFERENCE / "pipeline" / "cases.json").read_text())


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    server = FakeHub(REPO, released_files(TINY_CASCADE)).start()
    monkeypatch.setattr(hf_constants, "ENDPOINT", server.url)  # as HF_ENDPOINT sets them at import
    monkeypatch.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "DOWNLOAD_CHUNK_SIZE", 1024)  # real files span many 10 MB chunks
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield server
    server.stop()
