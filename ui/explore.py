"""Explore, then finish: the compositions of many seeds (Stage C and its previewer only), chosen by
clicking, then finished (Stage B and Stage A on exactly those latents; see cascade_core.finish).

An exploration runs as requests of up to MAX_IMAGES consecutive seeds, so its previews arrive a
batch at a time. Each explored composition is kept in the session as a dict: the engine's
`Composition`, its preview and the settings to save with its finished image.
"""
from __future__ import annotations

from cascade_core.request import MAX_IMAGES

MAX_EXPLORE = 32


def batches(first_seed: int, count: int) -> list[tuple[int, int]]:
    """(first seed, images) of each request of an exploration of `count` consecutive seeds."""
    return [(first_seed + start, min(MAX_IMAGES, count - start)) for start in range(0, count, MAX_IMAGES)]


def gallery_value(explored: list[dict], picked: list[int]) -> list[tuple]:
    """The explore grid: each preview with its seed; a chosen one is marked."""
    return [(entry["preview"], f"{'✓ ' if k in picked else ''}seed {entry['composition'].request.seed}")
            for k, entry in enumerate(explored)]


def toggle(picked: list[int], index: int) -> list[int]:
    return [k for k in picked if k != index] if index in picked else sorted([*picked, index])


def finish_label(picked: list[int]) -> str:
    return f"Finish chosen ({len(picked)})" if picked else "Finish chosen"


def finish_groups(explored: list[dict], picked: list[int]) -> list[list[dict]]:
    """The chosen entries in runs of up to MAX_IMAGES (each run is one batch of Stage B)."""
    chosen = [explored[k] for k in picked if 0 <= k < len(explored)]
    return [chosen[start:start + MAX_IMAGES] for start in range(0, len(chosen), MAX_IMAGES)]
