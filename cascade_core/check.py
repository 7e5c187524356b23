"""Validate a model folder (or file) without loading it: every file present and readable, every tensor
name and shape what the networks expect (for the released variants, the released layouts), in whichever
layout the files are (formats/): each row says the format found and what will be loaded from where.

The extra networks that only some modes need (extras.py) are optional: each one the folder holds,
in the released layout or named under cascade.json's "extras", is checked against its layout;
an absent one is a row marked `absent` (fetched from the hub when a mode needs it), not a failure."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from . import hub, memory
from .config import EXTRA_PRESETS, STAGES
from .errors import ModelLoadError
from .extras import declared, declared_config
from .formats import clip_text, comfyui, sources
from .formats.detect import LABELS, PIPELINE_PARTS
from .formats.plan import layout, stored_bytes
from .formats.released_layout import detect_size, find_custom
from .weights import NetworkFile, layout_problems, read_layout
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
    absent: bool = False  # an optional part the folder does not hold (ok: not a check)
    format: str = ""  # how the file names its tensors: released names, diffusers prior/, ComfyUI checkpoint, …


def check_folder(folder: Path, stage_c: str | None = None, stage_b: str | None = None) -> list[FileCheck]:
    """One row per file a model folder (or a file and its folder) needs or holds; a missing part is a row that
    is not ok. `stage_c` / `stage_b` replace the model's networks, as the engine options of those names do.
    Then a row per part the folder's single files hold that is not loaded, and one per extra network:
    checked when present, `absent` (and ok) when not."""
    if not folder.exists():
        return [FileCheck(str(folder), "folder", False, "not a folder nor a file")]
    try:
        place = sources.Place(folder)
        _ = place.own  # a --model file that holds no network fails here
    except ModelLoadError as e:
        return [FileCheck(folder.name, "model", False, str(e), _size(folder))]
    rows, found = [], {}
    for stage in STAGES:
        stage_rows, found[stage] = _stage(place, stage, {"stage_c": stage_c, "stage_b": stage_b}.get(stage))
        rows += stage_rows
    stage_c_path = found["stage_c"].path if found["stage_c"] else None
    unused = _unused(place) if place.spec is None else []
    return rows + _text(place, stage_c_path) + unused + _extras(place.folder)


def _stage(place: sources.Place, stage: str, override: str | None) -> tuple[list[FileCheck], NetworkFile | None]:
    """The rows of one network, and the file it is loaded from when one is found."""
    own = override is None and place.own is not None and stage in place.own.parts
    if override is None and not own:
        if place.spec is not None:
            return [_custom(place.folder, stage)], None
        present = [name for name in all_names(stage) if (place.folder / name).is_file()]
        if present:  # every released file present is checked, of every size and precision
            return [_network(place.folder / name, stage) for name in present], None
    try:
        file = sources.network(place, stage, "auto", torch.float32, override)
    except ModelLoadError as e:
        label = _label(Path(override).expanduser(), place.folder) if override else f"{place.folder.name}/"
        return [FileCheck(label, stage, False, str(e))], None
    if file is None:
        if stage == "previewer":
            return [_absent_previewer()], None
        return [FileCheck(" or ".join(all_names(stage)), stage, False,
                          f"missing (nor {sources.alternatives(stage)})")], None
    return [_loaded(file, place.folder)], file


def _network(path: Path, stage: str) -> FileCheck:
    try:
        file = detect_size(stage, path)
    except ModelLoadError as e:
        return FileCheck(path.name, stage, False, str(e), _size(path))
    return _loaded(file, path.parent)


def _loaded(file: NetworkFile, folder: Path) -> FileCheck:
    detail = f"{file.size}, {file.format}, {len(expected_layout(file.config))} tensors"
    weights = stored_bytes(file.plan) if file.plan is not None else _size(file.path)  # a bundle part: its share
    return FileCheck(_label(file.path, folder), file.stage, True, detail, weights, format=file.format)


def _absent_previewer() -> FileCheck:
    """No previewer in the model: what loading does instead (formats/sources.py)."""
    name = sources.PREVIEWER
    cached = hub.cache_snapshot(hub.REPO, None)
    if cached is not None and (cached / name).is_file():
        detail = f"absent: the cached {name} of {hub.REPO} is used"
    else:
        detail = (f"absent: {name} of {hub.REPO} is fetched on load (16 MB); offline, a false-colour sketch of the "
                  "latent stands in for the previews")
    return FileCheck(name, "previewer", True, detail, absent=True)


def _text(place: sources.Place, stage_c: Path | None) -> list[FileCheck]:
    """The folder's text_encoder/ and tokenizer/, or a bundle's CLIP text model and where its tokenizer comes from."""
    bundle = sources.text_bundle(place, stage_c)
    if bundle is None:
        return [_text_encoder(place.folder), _tokenizer(place.folder / "tokenizer")]
    plan = comfyui.text_plan(bundle.parts["text_encoder"])
    label, kind = _label(bundle.path, place.folder), bundle.kind or "single file"
    params = f"{sum(math.prod(shape) for shape in layout(plan).values()) / 1e6:.0f}M parameters, {len(plan)} tensors"
    try:
        text = sources.text_source(place, stage_c, fetch=False, say=lambda message: None)
    except ModelLoadError:  # its config and tokenizer come from the hub on load: check against the released config
        from transformers import CLIPTextConfig

        problems = layout_problems(layout(plan), clip_text.expected(CLIPTextConfig(**memory.BIGG_TEXT)))
        if problems:
            problems.insert(0, f"not the released CLIP ViT-bigG text model of {hub.REPO}, whose config.json a "
                               "checkpoint's text encoder is loaded with when the folder has none")
        return [FileCheck(label, "text_encoder", not problems, "; ".join(problems) or f"{params}, {kind}; its "
                          f"config.json is fetched from {hub.REPO} on load", stored_bytes(plan), format=kind),
                FileCheck("tokenizer/", "tokenizer", True, f"absent: fetched from {hub.REPO} on load (2 MB)",
                          absent=True)]
    try:
        problems = clip_text.problems(plan, text.config)
    except ModelLoadError as e:
        problems = [str(e)]
    where = "" if text.config.parent == place.folder else f" (config.json of {hub.REPO}, cached)"
    return [FileCheck(label, "text_encoder", not problems, "; ".join(problems) or f"{params}, {kind}{where}",
                      stored_bytes(plan), format=kind),
            _tokenizer(text.tokenizer, "tokenizer/" if text.tokenizer.parent == place.folder
                       else f"tokenizer/ of {hub.REPO} (cached)")]


def _unused(place: sources.Place) -> list[FileCheck]:
    """Parts of the folder's single files that are not loaded, and files that could not be read: reported, not checks."""
    rows = []
    for found in [*([place.own] if place.own else []), *place.singles]:
        others = [LABELS[p] for p in found.parts if p not in PIPELINE_PARTS]
        if others or not found.parts:
            what = f"also holds {', '.join(others)}: not loaded" if others else "holds no Stable Cascade network: ignored"
            rows.append(FileCheck(_label(found.path, place.folder), "other", True, what, absent=True))
    rows += [FileCheck(name, "other", True, f"ignored: {problem}", absent=True) for name, problem in place.problems.items()]
    return rows


def _label(path: Path, folder: Path) -> str:
    """A path as the table shows it: relative to the folder when inside it; folders end with /."""
    name = path.relative_to(folder).as_posix() if path.is_relative_to(folder) else str(path)
    return name + "/" if path.is_dir() else name


def _custom(folder: Path, stage: str) -> FileCheck:
    try:
        spec = json.loads((folder / "cascade.json").read_text())
        file = find_custom(folder, spec, stage)
    except (ModelLoadError, OSError, ValueError) as e:
        return FileCheck("cascade.json", stage, False, str(e))
    return FileCheck(file.path.name, stage, True, f"{file.size}, cascade.json, {len(expected_layout(file.config))} "
                     "tensors", _size(file.path), format="cascade.json")


def _text_encoder(folder: Path) -> FileCheck:
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    text_dir = folder / "text_encoder"
    single = next((text_dir / n for n in TEXT_FILES if (text_dir / n).is_file()), None)
    shards = [single] if single else sorted(text_dir.glob("model-*-of-*.safetensors"))  # as transformers shards
    if not shards:
        return FileCheck("text_encoder/", "text_encoder", False, f"missing {' or '.join(TEXT_FILES)}")
    name = f"text_encoder/{shards[0].name}" + (f" and {len(shards) - 1} more" if len(shards) > 1 else "")
    size = sum(_size(p) for p in shards)
    try:
        config = CLIPTextConfig.from_pretrained(text_dir)
        found = {k: v for path in shards for k, v in read_layout(path).items()}
    except (OSError, ValueError, ModelLoadError) as e:
        return FileCheck(name, "text_encoder", False, str(e), size)
    problems = layout_problems(found, _transformers_layout(CLIPTextModelWithProjection, config, found))
    if problems:
        return FileCheck(name, "text_encoder", False, "; ".join(problems), size)
    params = sum(math.prod(shape) for shape in found.values())
    return FileCheck(name, "text_encoder", True, f"{params / 1e6:.0f}M parameters, {len(found)} tensors", size)


def _tokenizer(path: Path, label: str = "tokenizer/") -> FileCheck:
    """A tokenizer/ folder: the model's, or the cached one of the hub's repository."""
    from transformers import CLIPTokenizer

    try:
        tokenizer = CLIPTokenizer.from_pretrained(path)
    except (OSError, ValueError, TypeError) as e:
        return FileCheck(label, "tokenizer", False, f"cannot be loaded ({str(e).splitlines()[0][:200]})")
    size = sum(_size(p) for p in path.iterdir() if p.is_file())
    return FileCheck(label, "tokenizer", True, f"{len(tokenizer)} tokens", size)


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
