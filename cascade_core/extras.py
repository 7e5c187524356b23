"""The networks only some modes need, loaded the first time a request needs them, never before.

| network | modes | released file |
|---|---|---|
| `effnet_encoder` | remix, repaint, extend, upscale | `effnet_encoder.safetensors` |
| `controlnet_canny` | edges | `controlnet/canny.safetensors` |
| `controlnet_inpainting` | repaint, extend | `controlnet/inpainting.safetensors` |
| `controlnet_super_resolution` | upscale | `controlnet/super_resolution.safetensors` |
| `image_encoder` | image prompt | `image_encoder/` of stabilityai/stable-cascade-prior |

A model folder may hold them in that layout, or name them in its `cascade.json` under
`"extras"` (`{"effnet_encoder": {"file": "…", "args": {…official constructor args…}}`,
`{"image_encoder": {"folder": "…"}}`); otherwise they are fetched from the hub into its cache.
"""
from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Callable

import torch

from . import hub
from .config import EXTRA_PRESETS, ControlNetConfig, EffNetConfig
from .errors import ModelLoadError
from .models.layouts import expected_layout
from .released import EXTRA_FILES, IMAGE_ENCODER_FILES
from .weights import NetworkFile, layout_problems, load_network, read_layout

log = logging.getLogger(__name__)
Say = Callable[[str], None]
MODES = {"effnet_encoder": "remix, repaint, extend and upscale", "controlnet_canny": "edges",
         "controlnet_inpainting": "repaint and extend", "controlnet_super_resolution": "upscale",
         "image_encoder": "image prompts"}


class Extras:
    """A model's extra networks: each made by `make(name)` on first use, then kept (thread-safe)."""

    def __init__(self, make: Callable[[str], torch.nn.Module]):
        self._make, self._loaded, self._lock = make, {}, threading.Lock()

    def __call__(self, name: str) -> torch.nn.Module:
        if name not in EXTRA_FILES:
            raise KeyError(f"unknown extra network {name!r}; known: {', '.join(EXTRA_FILES)}")
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = self._make(name)
            return self._loaded[name]

    @property
    def loaded(self) -> tuple[str, ...]:
        return tuple(self._loaded)


def folder_extras(folder: Path | None, device: torch.device, dtype: torch.dtype, say: Say) -> Extras:
    """Extras from a model folder (cascade.json's "extras", or the released layout), else from the hub."""
    def make(name: str) -> torch.nn.Module:
        say(f"loading {name} for {MODES[name]}")
        if name == "image_encoder":
            return _load_image_encoder(_locate_folder(folder, say), device, dtype)
        file = _locate_file(folder, name, say)
        return load_network(file, device, dtype).eval()

    return Extras(make)


def declared(folder: Path | None) -> dict:
    """The folder's cascade.json "extras" (name → entry object); {} without one. Raises ModelLoadError."""
    spec_path = folder / "cascade.json" if folder else None
    if spec_path is None or not spec_path.is_file():
        return {}
    try:
        spec = json.loads(spec_path.read_text())
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{spec_path} is not valid JSON ({e})") from e
    extras = spec.get("extras", {}) if isinstance(spec, dict) else None
    if not isinstance(extras, dict) or not all(isinstance(v, dict) for v in extras.values()):
        raise ModelLoadError(f'{spec_path}: "extras" must map each network name to an object such as '
                             '{"file": "…", "args": {…}} (README, Image inputs)')
    return extras


def _locate_file(folder: Path | None, name: str, say: Say) -> NetworkFile:
    """The file and config of an extra network: named in cascade.json, in the folder, or fetched."""
    entry = declared(folder).get(name)
    fix = "replace the file with the released one"
    if entry is not None:
        try:
            config, path = declared_config(name, entry), folder / entry["file"]
        except (KeyError, TypeError, ValueError) as e:
            raise ModelLoadError(f"{folder / 'cascade.json'}: bad {name!r} entry under extras ({e})") from e
    else:
        config = EXTRA_PRESETS[name]
        repo, relative = EXTRA_FILES[name]
        path = folder / relative if folder else None
        if path is None or not path.is_file():
            path = hub.fetch_files(repo, [relative], progress=say) / relative
            fix = f"fetch it again with `python -m cascade_core download --model {repo} --extras --force`"
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing; cascade.json names it for {name}")
    problems = layout_problems(read_layout(path), expected_layout(config))
    if problems:
        raise ModelLoadError(f"{path} does not hold a {name} network: " + "; ".join(problems) + f". {fix[0].upper()}"
                             f"{fix[1:]}.")
    return NetworkFile(name, config, path, "custom" if entry else "full")


def declared_config(name: str, entry: dict):
    """The config of an EfficientNet encoder or ControlNet from its cascade.json entry's official "args"."""
    config_class = ControlNetConfig if name.startswith("controlnet") else EffNetConfig
    return config_class.from_official(entry.get("args", {}))


def _locate_folder(folder: Path | None, say: Say) -> Path:
    entry = declared(folder).get("image_encoder")
    if entry is not None:
        try:
            return folder / entry["folder"]
        except (KeyError, TypeError) as e:
            raise ModelLoadError(f"{folder / 'cascade.json'}: bad 'image_encoder' entry under extras ({e})") from e
    repo, relative = EXTRA_FILES["image_encoder"]
    if folder is not None and all((folder / relative / f).is_file() for f in IMAGE_ENCODER_FILES):
        return folder / relative
    return hub.fetch_files(repo, [f"{relative}/{f}" for f in IMAGE_ENCODER_FILES], progress=say) / relative


def _load_image_encoder(folder: Path, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """CLIP's vision tower with its projection (transformers `CLIPVisionModelWithProjection`)."""
    from transformers import CLIPVisionModelWithProjection

    try:
        model = CLIPVisionModelWithProjection.from_pretrained(folder, dtype=dtype, use_safetensors=True)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{folder} could not be loaded as CLIP's vision model ({e}); delete it and fetch "
                             "it again") from e
    return model.to(device).eval().requires_grad_(False)
