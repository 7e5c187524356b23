"""Where each part of a model comes from, in whatever layout the user's files are.

`--model` names a folder or one safetensors file (then its folder supplies what the file lacks).
Each network is looked for in this order; the first place that has it is used:

1. `--stage-c` / `--stage-b` (options stage_c, stage_b): a file (one network or a ComfyUI bundle)
   or a diffusers folder (`prior/`, or the repository folder holding it);
2. the file `--model` names;
3. `cascade.json`'s files; else the released names (`stage_c_bf16.safetensors`, …); else diffusers'
   network folders (`prior/`, `decoder/`, `vqgan/`);
4. any other safetensors file at the top of the folder that holds it (a Civitai fine-tune, ComfyUI's
   `stable_cascade_stage_c.safetensors` …), told by its tensor names; two of the same size are
   refused as ambiguous.

The previewer is in neither diffusers' layout nor every single file: when the folder has none, the
cached or downloaded `previewer.safetensors` of stabilityai/stable-cascade is used (16 MB), and
offline, with no cached copy, a false-colour sketch of the latent stands in (models/latent_sketch.py).
The text encoder is the folder's `text_encoder/`, else the CLIP text model of a bundle; a bundle has
no tokenizer nor config.json, which come from the folder, else from stabilityai/stable-cascade
(cached, or downloaded: 2 MB).
"""
from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .. import hub
from ..config import STAGES
from ..errors import ModelLoadError, first_line
from ..released import EXTRA_FILES, TEXT_ENCODER_DIR, TOKENIZER_DIR, all_names
from ..weights import NetworkFile
from . import comfyui, diffusers_layout, networks
from .detect import LABELS, PIPELINE_PARTS, Contents, contents
from .plan import Plan
from .released_layout import find_custom, find_released, wanted_names

log = logging.getLogger(__name__)
Say = Callable[[str], None]
OVERRIDES = {"stage_c": "--stage-c", "stage_b": "--stage-b"}
PREVIEWER = "previewer.safetensors"
SIZE_ORDER = {"auto": ("full", "lite"), "full": ("full",), "lite": ("lite",)}


@dataclass(frozen=True)
class TextSource:
    """Where the CLIP text encoder and its tokenizer come from."""
    tokenizer: Path  # a tokenizer/ folder
    config: Path  # a folder with the text model's config.json (with its weights when `plan` is None)
    plan: Plan | None = None  # a bundle's text model: transformers names → its tensors
    label: str = "text_encoder/"  # the weights' file or folder, for messages


@dataclass(frozen=True)
class ModelSources:
    folder: Path  # the model folder (a file's folder): extra networks are looked for there
    name: str  # shown to users and written into image metadata
    networks: dict[str, NetworkFile | None]  # Stage C, B, A, previewer (None: the latent sketch stands in)
    text: TextSource
    notes: tuple[str, ...] = ()  # what was fetched or stands in, said once on load


class Place:
    """A model folder, or a file and the folder it is in; the folder's other files are read once, when needed."""

    def __init__(self, model: Path):
        if not model.exists():
            raise ModelLoadError(f"{model} is not a folder with a Stable Cascade model, a safetensors file, nor a "
                                 "Hugging Face repository id (owner/name)")
        self.file = model if model.is_file() else None
        self.folder = model.parent if self.file else model
        self.spec = _spec(self.folder)
        self.problems: dict[str, str] = {}  # unreadable single files: name → why

    @functools.cached_property
    def own(self) -> Contents | None:
        """What the file `--model` names holds."""
        if self.file is None:
            return None
        found = contents(self.file)
        if not any(part in found.parts for part in PIPELINE_PARTS):
            held = found.describe() if found.parts else "an unknown layout"
            raise ModelLoadError(
                f"{self.file} holds no network of Stable Cascade's text-to-image pipeline ({held}; {found.unknown} "
                "tensors of no known network): expected Stage C, Stage B, Stage A, the previewer or the CLIP text "
                "encoder, in the released, ComfyUI or diffusers naming")
        return found

    @functools.cached_property
    def singles(self) -> list[Contents]:
        """The other safetensors files at the top of the folder (not released names), by what they hold."""
        known = {name for stage in STAGES for name in all_names(stage)} | {path for _, path in EXTRA_FILES.values()}
        found = []
        for path in sorted(self.folder.glob("*.safetensors")):
            if path.name in known or path == self.file:
                continue
            try:
                found.append(contents(path))
            except ModelLoadError as e:
                self.problems[path.name] = str(e)
        return found


def find(model: Path, *, variant: str = "auto", dtype: torch.dtype = torch.float32, stage_c: str | None = None,
         stage_b: str | None = None, fetch: bool = True, say: Say | None = None) -> ModelSources:
    """Every part of a model; the previewer and a bundle's tokenizer may come from the hub (`fetch`)."""
    say = say or (lambda message: None)
    place = Place(model)
    found = locate(place, variant, dtype, {"stage_c": stage_c, "stage_b": stage_b})
    notes = []
    if found["previewer"] is None:
        found["previewer"], note = fallback_previewer(fetch, say)
        notes.append(note)
    text = text_source(place, found["stage_c"].path, fetch, say)
    name = place.file.stem if place.file else place.folder.resolve().name
    return ModelSources(place.folder, name, found, text, tuple(notes))


def locate(place: Place, variant: str, dtype: torch.dtype, overrides: dict[str, str | None]) -> dict:
    """Stage C, B, A (ModelLoadError when one is nowhere) and the previewer (None when it is nowhere)."""
    found = {stage: network(place, stage, variant, dtype, overrides.get(stage)) for stage in STAGES}
    for stage, file in found.items():
        if file is None and stage != "previewer":
            raise missing(place, stage, variant)
    return found


def network(place: Place, stage: str, variant: str, dtype: torch.dtype, override: str | None = None):
    """One network's NetworkFile, by the order of the module docstring; None when none is found."""
    prefer = "bf16" if dtype == torch.bfloat16 else "fp32"
    if override:
        return _override(stage, Path(override).expanduser(), variant, prefer)
    if place.own is not None and stage in place.own.parts:
        return networks.from_file(stage, place.own)
    if place.spec is not None:
        return find_custom(place.folder, place.spec, stage)
    found = find_released(place.folder, stage, variant, dtype)
    if found is None and stage in diffusers_layout.COMPONENTS:
        folders = diffusers_layout.components(place.folder, stage, variant)
        found = diffusers_layout.network(stage, folders[0], prefer) if folders else None
    return found or _single(place, stage, variant)


def _override(stage: str, path: Path, variant: str, prefer: str) -> NetworkFile:
    flag = OVERRIDES[stage]
    if path.is_file():
        other = next((s for s, f in OVERRIDES.items() if s != stage), "")
        found = contents(path)
        hint = f"; pass it with {OVERRIDES[other]}" if other in found.parts else ""
        return networks.from_file(stage, found, hint)
    if path.is_dir():
        folders = diffusers_layout.components(path, stage, variant)
        if folders:
            return diffusers_layout.network(stage, folders[0], prefer)
        if (path / "config.json").is_file():
            return diffusers_layout.network(stage, path, prefer)
        names = "/, ".join(n for names in diffusers_layout.COMPONENTS[stage].values() for n in names)
        raise ModelLoadError(f"{path} (given with {flag}) has no diffusers {names}/ folder nor a config.json; "
                             f"pass a .safetensors file or a diffusers folder")
    raise ModelLoadError(f"{path} (given with {flag}) does not exist")


def _single(place: Place, stage: str, variant: str) -> NetworkFile | None:
    """`stage` from the folder's other files: the variant's size first; ambiguous sizes are refused."""
    good, errors = [], []
    for found in place.singles:
        if stage in found.parts:
            try:
                good.append(networks.from_file(stage, found))
            except ModelLoadError as e:
                errors.append(e)
    allowed = [f for f in good if f.size in SIZE_ORDER[variant] or f.size not in ("full", "lite")]
    if not allowed:
        if errors:
            raise errors[0]
        return None
    rank = lambda f: SIZE_ORDER[variant].index(f.size) if f.size in SIZE_ORDER[variant] else len(SIZE_ORDER[variant])
    best = [f for f in allowed if rank(f) == min(map(rank, allowed))]
    if len(best) > 1:
        files = ", ".join(f.path.name for f in best)
        how = f"pass the one to use with {OVERRIDES[stage]} FILE" if stage in OVERRIDES else "keep one of them"
        raise ModelLoadError(f"{place.folder} has {len(best)} files that hold a {best[0].size} {LABELS[stage]}: "
                             f"{files}; {how}")
    return best[0]


def alternatives(stage: str) -> str:
    """The places other than the released names where `stage` is looked for, in words."""
    folders = [n for names in diffusers_layout.COMPONENTS.get(stage, {}).values() for n in names]
    return " nor ".join([f"a diffusers {'/ or '.join(folders)}/ folder"] * bool(folders) + ["a single file that holds it"])


def missing(place: Place, stage: str, variant: str) -> ModelLoadError:
    """Where `stage` was looked for, and how to supply it."""
    wanted = " or ".join(wanted_names(stage, variant, torch.bfloat16))
    where = f"{place.folder} has no {wanted}, nor {alternatives(stage)}"
    hint = ""
    if stage == "stage_c" and diffusers_layout.is_diffusers(place.folder):
        hint = "; diffusers keeps Stage C in stabilityai/stable-cascade-prior: pass its folder with --stage-c"
    elif stage in OVERRIDES:
        hint = f"; download it into the folder, pass a file with {OVERRIDES[stage]} (or point --model at the right one)"
    unreadable = "".join(f"; {problem}" for problem in place.problems.values())
    return ModelLoadError(where + hint + unreadable)


def fallback_previewer(fetch: bool, say: Say) -> tuple[NetworkFile | None, str]:
    """stabilityai/stable-cascade's previewer.safetensors from the cache, else the hub (`fetch`); else None (the
    sketch stands in). The second value says which, for the load's progress lines."""
    try:
        cached = hub.cache_snapshot(hub.REPO, None)
        if cached is not None and (cached / PREVIEWER).is_file():
            path, how = cached / PREVIEWER, "the cached"
        elif fetch:
            path, how = hub.fetch_files(hub.REPO, [PREVIEWER], progress=say) / PREVIEWER, "the downloaded"
        else:
            raise ModelLoadError(f"the cache has no {PREVIEWER} of {hub.REPO}")
        return networks.from_file("previewer", contents(path)), f"previewer: {how} {PREVIEWER} of {hub.REPO}"
    except ModelLoadError as e:
        why = first_line(e).split(". ")[0]  # the first sentence: the hub's remedy is for downloads, not this
        note = (f"no previewer in the model, and none from {hub.REPO} ({why}): Stage C's previews are a "
                f"false-colour sketch of its latent; the final image does not change. Put {PREVIEWER} of {hub.REPO} "
                "beside the model for real previews")
        log.warning(note)
        return None, note


def text_bundle(place: Place, stage_c: Path | None) -> Contents | None:
    """The file whose CLIP text model is used: the --model file's, else (when the folder's text_encoder/ has no
    weights) a single file's, Stage C's first. None: the folder's transformers text_encoder/."""
    if place.own is not None and "text_encoder" in place.own.parts:
        return place.own
    if any((place.folder / TEXT_ENCODER_DIR).glob("*.safetensors")):
        return None
    bundles = [c for c in place.singles if "text_encoder" in c.parts]
    return next((c for c in bundles if c.path == stage_c), bundles[0] if bundles else None)


def text_source(place: Place, stage_c: Path | None, fetch: bool, say: Say) -> TextSource:
    """The folder's transformers text_encoder/, else a bundle's CLIP text model with a tokenizer from the folder or the hub."""
    folder_text = place.folder / TEXT_ENCODER_DIR
    bundle = text_bundle(place, stage_c)
    if bundle is None:
        if not folder_text.is_dir():
            raise ModelLoadError(f"{folder_text} is missing: a model folder needs text_encoder/ and tokenizer/, "
                                 "or a single file that holds the CLIP text encoder (ComfyUI's checkpoints do)")
        return TextSource(place.folder / TOKENIZER_DIR, folder_text)
    plan = comfyui.text_plan(bundle.parts["text_encoder"])
    config_dir, tokenizer_dir = folder_text, place.folder / TOKENIZER_DIR
    if not (config_dir / "config.json").is_file() or not tokenizer_dir.is_dir():
        support = support_folder(fetch, say, bundle.path)
        config_dir = config_dir if (config_dir / "config.json").is_file() else support / TEXT_ENCODER_DIR
        tokenizer_dir = tokenizer_dir if tokenizer_dir.is_dir() else support / TOKENIZER_DIR
    return TextSource(tokenizer_dir, config_dir, plan, bundle.path.name)


def support_folder(fetch: bool, say: Say, bundle: Path) -> Path:
    """stabilityai/stable-cascade's tokenizer/ and text_encoder/config.json: cached, else downloaded (`fetch`)."""
    cached = hub.cache_snapshot(hub.REPO, None)
    if cached is not None and (cached / TEXT_ENCODER_DIR / "config.json").is_file() and (cached / TOKENIZER_DIR).is_dir():
        return cached
    reason = f"the cache has no copy of {hub.REPO}'s tokenizer"
    if fetch:
        try:
            return hub.fetch_text_support(hub.REPO, progress=say)
        except ModelLoadError as e:
            reason = str(e)
    raise ModelLoadError(
        f"{bundle.name} holds the CLIP text encoder's weights but not its tokenizer nor config.json, and {reason}. "
        f"Put the tokenizer/ folder and text_encoder/config.json of {hub.REPO} beside it, or connect to the internet "
        "once to fetch them (2 MB)")


def _spec(folder: Path) -> dict | None:
    path = folder / "cascade.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{path} is not valid JSON ({e})") from e
