"""Validate a model folder without loading it: every file present and readable, every tensor
name and shape what the networks expect (for the released variants, the released layouts).

The extra networks that only some modes need (extras.py) are optional: each one the folder holds,
in the released layout or named under cascade.json's "extras", is checked against its layout;
an absent one is a row marked `absent` (fetched from the hub when a mode needs it), not a failure."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import EXTRA_PRESETS, STAGES
from .errors import ModelLoadError
from .extras import declared, declared_config
from .loading import detect_size, find_custom
from .weights import layout_problems, read_layout
from .models.layouts import expected_layout
from .released import EXTRA_FILES, IMAGE_ENCODER_FILES, TEXT_ENCODER_FILES, all_names

TEXT_FILES = tuple(TEXT_ENCODER_FILES.values())  # the bf16 file first


@dataclass(frozen=True)
class FileCheck:
    file: str  # relative to the folder
    part: str  # stage_c, …, text_encoder, tokenizer
    ok: bool
    detail: str  # the detected size and tensor count, or what is wrong
    bytes: int = 0
    absent: bool = False  # an optional extra network the folder does not hold (ok: not a check)


def check_folder(folder: Path) -> list[FileCheck]:
    """One row per file a model folder needs or holds; a missing part is a row that is not ok. Then one row
    per extra network: checked when present, `absent` (and ok) when not."""
    if not folder.is_dir():
        return [FileCheck(str(folder), "folder", False, "not a folder")]
    if (folder / "cascade.json").is_file():
        rows = [_custom(folder, stage) for stage in STAGES]
    else:
        rows = [row for stage in STAGES for row in _released(folder, stage)]
    return rows + [_text_encoder(folder), _tokenizer(folder)] + _extras(folder)


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
    problems = layout_problems(found, _transformers_layout(CLIPTextModelWithProjection, config, found))
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


ABSENT = "absent: fetched when a mode needs it"


def _extras(folder: Path) -> list[FileCheck]:
    """The extra networks: each named under cascade.json's "extras" or held in the released layout."""
    try:
        entries = declared(folder)
    except ModelLoadError as e:
        return [FileCheck("cascade.json", "extras", False, f"unreadable extras ({e})")]
    rows = [FileCheck("cascade.json", name, False, f"unknown extra network {name!r} under extras; known: "
                      f"{', '.join(EXTRA_FILES)}") for name in entries if name not in EXTRA_FILES]
    for name in EXTRA_FILES:
        check = _image_encoder if name == "image_encoder" else _extra_network
        rows.append(check(folder, name, entries.get(name)))
    return rows


def _extra_network(folder: Path, name: str, entry) -> FileCheck:
    """An EfficientNet encoder or ControlNet: cascade.json's file and args, or the released file and preset."""
    if entry is None:
        label = EXTRA_FILES[name][1]
        path, config = folder / label, EXTRA_PRESETS[name]
        if not path.is_file():
            return FileCheck(label, name, True, ABSENT, absent=True)
    else:
        try:
            label = str(entry["file"])
            config = declared_config(name, entry)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            return FileCheck("cascade.json", name, False, f"bad {name!r} entry under extras ({e})")
        path = folder / label
        if not path.is_file():
            return FileCheck(label, name, False, "missing; cascade.json names it under extras")
    try:
        found = read_layout(path)
    except ModelLoadError as e:
        return FileCheck(label, name, False, str(e), _size(path))
    problems = layout_problems(found, expected_layout(config))
    if problems:
        return FileCheck(label, name, False, f"not a {name} network" + (" of the cascade.json args" if entry else "")
                         + ": " + "; ".join(problems), _size(path))
    return FileCheck(label, name, True, _parameters(found), _size(path))


def _image_encoder(folder: Path, name: str, entry) -> FileCheck:
    """CLIP's vision model with projection: a transformers folder (config.json, model.safetensors)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    if entry is None:
        label = EXTRA_FILES[name][1] + "/"
        path = folder / EXTRA_FILES[name][1]
        present = [f for f in IMAGE_ENCODER_FILES if (path / f).is_file()]
        if not present:
            return FileCheck(label, name, True, ABSENT, absent=True)
    else:
        try:
            label = str(entry["folder"]).rstrip("/") + "/"
        except (KeyError, TypeError) as e:
            return FileCheck("cascade.json", name, False, f"bad {name!r} entry under extras ({e})")
        path = folder / label
    missing = [f for f in IMAGE_ENCODER_FILES if not (path / f).is_file()]
    if missing:
        return FileCheck(label, name, False, f"missing {', '.join(missing)}")
    weights = path / next(f for f in IMAGE_ENCODER_FILES if f.endswith(".safetensors"))
    try:
        config = CLIPVisionConfig.from_pretrained(path)
        found = read_layout(weights)
    except (OSError, ValueError, ModelLoadError) as e:
        return FileCheck(label, name, False, str(e), _size(weights))
    problems = layout_problems(found, _transformers_layout(CLIPVisionModelWithProjection, config, found))
    if problems:
        return FileCheck(label, name, False, "not CLIP's vision model: " + "; ".join(problems), _size(weights))
    return FileCheck(label, name, True, _parameters(found), _size(weights))


def _transformers_layout(model_class, config, found: dict) -> dict[str, tuple[int, ...]]:
    """Names and shapes a transformers model of `config` holds (built on meta), less the `position_ids`
    buffer where the file leaves it out."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in model_class(config).state_dict().items()}
    return {k: v for k, v in expected.items() if k in found or not k.endswith("position_ids")}


def _parameters(layout: dict) -> str:
    params = sum(math.prod(shape) for shape in layout.values())
    return f"{params / 1e6:.1f}M parameters, {len(layout)} tensors"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
