"""One network's tensors, in whatever naming → a `NetworkFile`: the plan to our names and the config that fits.

The config is the preset whose layout the converted tensors match exactly (full, lite, tiny), or
the one a diffusers config.json gives; a file that matches neither is refused with the differences
from the nearest preset.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ..config import PRESETS
from ..errors import ModelLoadError
from ..models.layouts import expected_layout
from ..weights import NetworkFile, layout_problems
from . import unet
from .detect import LABELS, PIPELINE_PARTS, Contents
from .plan import Header, Plan, identity, layout

_DIFFUSERS_CODEBOOK = "vquantizer.embedding.weight"  # diffusers' PaellaVQModel; ours (and the released) codebook.weight


def plan_for(stage: str, header: Header) -> Plan:
    """Our names → the part's tensors."""
    if stage in unet.MARKERS:
        return unet.plan(stage, header)
    plan = identity(header)
    if stage == "stage_a" and _DIFFUSERS_CODEBOOK in plan:
        plan["vquantizer.codebook.weight"] = plan.pop(_DIFFUSERS_CODEBOOK)
    return plan


def naming(stage: str, header: Header) -> str:
    if stage in unet.MARKERS:
        return unet.naming(header)
    return "diffusers names" if _DIFFUSERS_CODEBOOK in header else "released names"


def by_shapes(stage: str, header: Header, path: Path, where: str = "") -> NetworkFile:
    """The preset whose layout the converted tensors match; ModelLoadError naming the nearest otherwise.
    `where` says which part of a bundle it is ("" for a whole file)."""
    plan = plan_for(stage, header)
    found = layout(plan)
    problems = {}
    for size, config in PRESETS[stage].items():
        problems[size] = layout_problems(found, expected_layout(config))
        if not problems[size]:
            return NetworkFile(stage, config, path, size, plan, naming(stage, header))
    nearest = min(problems, key=lambda size: _mismatches(found, expected_layout(PRESETS[stage][size])))
    raise ModelLoadError(
        f"{path.name}{where} does not hold a {stage} network of any known size; nearest is {nearest}: "
        + "; ".join(problems[nearest]) + ". Delete the file and fetch it again."
    )


def configured(stage: str, config, header: Header, path: Path, label: str) -> NetworkFile:
    """A network of a given config (a diffusers config.json's): the tensors must match its layout."""
    plan = plan_for(stage, header)
    problems = layout_problems(layout(plan), expected_layout(config))
    if problems:
        raise ModelLoadError(f"{label} does not match its config.json: " + "; ".join(problems))
    size = next((s for s, c in PRESETS[stage].items() if c == config), "custom")
    return NetworkFile(stage, config, path, size, plan, naming(stage, header))


def from_file(stage: str, contents: Contents, hint: str = "") -> NetworkFile:
    """`stage` from a file's contents: a whole file or one part of a bundle. `hint` ends a wrong-kind error."""
    if stage not in contents.parts:
        raise wrong_kind(contents.path, [p for p in contents.parts if p in PIPELINE_PARTS], stage, hint)
    bundle = contents.kind == "ComfyUI checkpoint"
    file = by_shapes(stage, contents.parts[stage], contents.path, f" ({LABELS[stage]} part)" if bundle else "")
    if bundle:  # "ComfyUI checkpoint", with the naming of its parts where it is not the released one
        return dataclasses.replace(file, format=contents.kind + f" ({file.format})" * (file.format != "released names"))
    return dataclasses.replace(file, format=", ".join(filter(None, [file.format, contents.kind])))


def wrong_kind(path: Path, held: list[str], stage: str, hint: str = "") -> ModelLoadError:
    """A file that holds other networks than the one asked for."""
    what = ", ".join(LABELS[p] for p in held) or "no Stable Cascade network"
    return ModelLoadError(f"{path} holds {what}, not {LABELS[stage]}{hint}")


def _mismatches(found: dict, expected: dict) -> int:
    return len(found.keys() ^ expected.keys()) + sum(found[k] != v for k, v in expected.items() if k in found)
