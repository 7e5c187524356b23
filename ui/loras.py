"""The studio's LoRA picker: up to SLOTS LoRAs, each a file of the LoRA folder (`--lora-dir`, listed
from the files' headers) or a hub file typed in as owner/repo/path.safetensors, with a strength."""
from __future__ import annotations

import re
from pathlib import Path

import cascade_core as cc
from cascade_core.lora import available

from .model_holder import ModelHolder

SLOTS = 3
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+/[\w./-]+\.safetensors")
MAX_STRENGTH = 2.0  # the sliders' range; the engine accepts more through the API (README, LoRAs)


def folder_choices(holder: ModelHolder) -> list[str]:
    """The usable LoRAs of the loaded model's LoRA folder, by the names a request gives; [] before it loads."""
    model = holder.model
    if model is None:
        return []
    return [info.name for info in available(Path(model.loras.folder)) if not info.problem]


def chosen(values) -> tuple[tuple[str, float], ...]:
    """(name, strength) of each filled slot; `values` alternate name, strength."""
    pairs = zip(values[0::2], values[1::2])
    return tuple((name.strip(), strength) for name, strength in pairs if isinstance(name, str) and name.strip())


def slot_values(pairs) -> tuple:
    """The picker's values (name, strength of each slot) for an image's LoRAs: the first SLOTS pairs, the other
    slots emptied; a strength beyond the sliders' range is held to it. Malformed entries are skipped."""
    values: list = []
    for pair in pairs if isinstance(pairs, (list, tuple)) else ():
        if len(values) == 2 * SLOTS:
            break
        if (isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str) and pair[0].strip()
                and isinstance(pair[1], (int, float)) and not isinstance(pair[1], bool)):
            values += [pair[0], max(-MAX_STRENGTH, min(MAX_STRENGTH, float(pair[1])))]
    return (*values, *[None, 1.0] * (SLOTS - len(values) // 2))


def check_names(pairs, holder: ModelHolder) -> None:
    """The studio names LoRAs as its picker does: a file of the LoRA folder or a hub file. A server path is
    refused (the command line may give one; a visitor may not read the server's files)."""
    if not isinstance(pairs, (tuple, list)):
        return  # not a list at all: the engine's validation says so
    allowed = set(folder_choices(holder))
    for pair in pairs:
        name = pair[0] if isinstance(pair, (tuple, list)) and pair else pair
        if isinstance(name, str) and (name in allowed or _HUB_NAME.fullmatch(name) and ".." not in name):
            continue
        listed = ", ".join(sorted(allowed)[:8]) or "none"
        raise cc.RequestError("loras", f"{name!r:.80} is not a LoRA of the studio's folder ({listed}) nor a hub file "
                              "owner/repo/file.safetensors")
