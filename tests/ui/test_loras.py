"""The studio's LoRA picker: slots into (name, strength) pairs; only the folder's files or hub files."""
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

import cascade_core as cc
from ui import loras

LORA = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "extras" / "lora" / "lora_tiny.safetensors"


def holder(folder):
    return SimpleNamespace(model=SimpleNamespace(loras=SimpleNamespace(folder=folder)))


def test_filled_slots_become_pairs():
    assert loras.chosen(["a ", 0.5, None, 1.0, "", 1.0, "b", -1]) == (("a", 0.5), ("b", -1))


def test_the_folder_lists_usable_loras_and_only_those_or_hub_files_are_allowed(tmp_path):
    if not LORA.is_file():
        pytest.skip(f"{LORA} is missing (CI has shared/ beside the repository)")
    shutil.copy(LORA, tmp_path / "fox.safetensors")
    (tmp_path / "broken.safetensors").write_bytes(b"not safetensors")
    assert loras.folder_choices(holder(tmp_path)) == ["fox"]
    assert loras.folder_choices(SimpleNamespace(model=None)) == []
    loras.check_names((("fox", 1.0), ("owner/repo/style.safetensors", 0.5)), holder(tmp_path))
    for name in (str(tmp_path / "fox.safetensors"), "/etc/passwd", "owner/repo/../../x.safetensors", "broken"):
        with pytest.raises(cc.RequestError, match="not a LoRA of the studio's folder"):
            loras.check_names(((name, 1.0),), holder(tmp_path))
