"""Validate a model folder without loading it: every file present and readable, every tensor
name and shape what the networks expect (for the released variants, the released layouts)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import STAGES
from .errors import ModelLoadError
from .loading import detect_size, find_custom
from .weights import layout_problems, read_layout
from .models.layouts import expected_layout
from .released import TEXT_ENCODER_FILES, all_names

TEXT_FILES = tuple(TEXT_ENCODER_FILES.values())  # the bf16 file first


@dataclass(frozen=True)
class FileCheck:
    file: str  # relative to the folder
    part: str  # stage_c, …, text_encoder, tokenizer
    ok: bool
    detail: str  # the detected size and tensor count, or what is wrong
    bytes: int = 0


def check_folder(folder: Path) -> list[FileCheck]:
    """One row per file a model folder needs or holds; a missing part is a row that is not ok."""
    if not folder.is_dir():
        return [FileCheck(str(folder), "folder", False, "not a folder")]
    if (folder / "cascade.json").is_file():
        rows = [_custom(folder, stage) for stage in STAGES]
    else:
        rows = [row for stage in STAGES for row in _released(folder, stage)]
    return rows + [_text_encoder(folder), _tokenizer(folder)]


def _released(folder: Path, stage: str) -> list[FileCheck]:
    names = all_names(stage)
    present = [name for name in names if (folder / name).is_file()]
    if not present:
        return [FileCheck(" or ".join(names), stage, False, "missing")]
    return [_network(folder / name, stage) for name in present]


def _network(path: Path, stage: str) -> FileCheck:
    try:
        file = detect_size(stage, path)
    except ModelLoadError as e:
        return FileCheck(path.name, stage, False, str(e), _size(path))
    return FileCheck(path.name, stage, True, f"{file.size}, {len(expected_layout(file.config))} tensors", _size(path))


def _custom(folder: Path, stage: str) -> FileCheck:
    try:
        spec = json.loads((folder / "cascade.json").read_text())
        file = find_custom(folder, spec, stage)
    except (ModelLoadError, OSError, ValueError) as e:
        return FileCheck("cascade.json", stage, False, str(e))
    return FileCheck(file.path.name, stage, True, f"{file.size}, {len(expected_layout(file.config))} tensors",
                     _size(file.path))


def _text_encoder(folder: Path) -> FileCheck:
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    weights = next((folder / "text_encoder" / n for n in TEXT_FILES if (folder / "text_encoder" / n).is_file()), None)
    if weights is None:
        return FileCheck("text_encoder/", "text_encoder", False, f"missing {' or '.join(TEXT_FILES)}")
    name = f"text_encoder/{weights.name}"
    try:
        config = CLIPTextConfig.from_pretrained(folder / "text_encoder")
        found = read_layout(weights)
    except (OSError, ValueError, ModelLoadError) as e:
        return FileCheck(name, "text_encoder", False, str(e), _size(weights))
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in CLIPTextModelWithProjection(config).state_dict().items()}
    expected = {k: v for k, v in expected.items() if k in found or not k.endswith("position_ids")}  # a buffer
    problems = layout_problems(found, expected)
    if problems:
        return FileCheck(name, "text_encoder", False, "; ".join(problems), _size(weights))
    params = sum(math.prod(shape) for shape in found.values())
    return FileCheck(name, "text_encoder", True, f"{params / 1e6:.0f}M parameters, {len(found)} tensors", _size(weights))


def _tokenizer(folder: Path) -> FileCheck:
    from transformers import CLIPTokenizer

    try:
        tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    except (OSError, ValueError, TypeError) as e:
        return FileCheck("tokenizer/", "tokenizer", False, f"cannot be loaded ({str(e).splitlines()[0][:200]})")
    size = sum(_size(p) for p in (folder / "tokenizer").iterdir() if p.is_file())
    return FileCheck("tokenizer/", "tokenizer", True, f"{len(tokenizer)} tokens", size)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
