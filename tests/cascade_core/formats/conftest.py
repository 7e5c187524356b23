"""A fake hub that serves stabilityai/stable-cascade's small support files, and an offline hub with an empty cache."""
import huggingface_hub.constants as hf_constants
import pytest

from cascade_core import hub
from tests.cascade_core.formats.helpers import support_files
from tests.fake_hub import FakeHub


def _point_at(monkeypatch, tmp_path, url: str, offline: bool) -> None:
    monkeypatch.setattr(hf_constants, "ENDPOINT", url)
    monkeypatch.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.delenv("HF_TOKEN", raising=False)


@pytest.fixture
def support_hub(monkeypatch, tmp_path):
    """stabilityai/stable-cascade as far as a bundle needs it: tokenizer/, text_encoder/config.json, previewer."""
    server = FakeHub(hub.REPO, support_files()).start()
    _point_at(monkeypatch, tmp_path, server.url, offline=False)
    yield server
    server.stop()


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No hub and an empty cache: what a bundle lacks cannot be had."""
    _point_at(monkeypatch, tmp_path, "http://127.0.0.1:9", offline=True)
