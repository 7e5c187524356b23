"""Shared test fixtures: the reference data beside the repository and the tiny model."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"
TINY_CASCADE = REFERENCE / "pipeline" / "tiny-cascade"


def relative_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """‖ours − ref‖ / ‖ref‖, the reference README's measure."""
    assert ours.shape == ref.shape, f"shape {tuple(ours.shape)} != reference {tuple(ref.shape)}"
    return ((ours.double() - ref.double()).norm() / ref.double().norm()).item()


@pytest.fixture(scope="session")
def tiny_model():
    import cascade_core as cc
    return cc.load(TINY_CASCADE, device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def pipeline_cases() -> list[dict]:
    return json.loads((REFERENCE / "pipeline" / "cases.json").read_text())
